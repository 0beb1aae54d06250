"""The working-memory tasks, fast-spiking inhibitory cells and per-population rate targets,
on tiny sizes."""
from __future__ import annotations

import numpy as np
import pytest

from tests.training_helpers import TINY_CONFIG
from utils.run import UserError
from utils.training.task import make_task, trial_seed
from utils.training.trainer import make_trainer


@pytest.fixture(scope="module")
def comparison():
    return make_task("delay_comparison", 1.0, 60.0, 1)


@pytest.fixture(scope="module")
def dms():
    return make_task("delay_match_sample", 1.0, 60.0, 1)


def test_delay_comparison_periods_labels_and_stimulus(comparison):
    data = comparison.sample(40, 5)
    T = 500 + 500 + 60 + 500 + 100
    assert data.X.shape == (T, 40, 60) and data.X.dtype == bool
    assert np.flatnonzero(data.recall).tolist() == list(range(T - 100, T))  # decision period
    assert np.flatnonzero(data.delay).tolist() == list(range(1000, 1060))
    assert set(data.y) == {0, 1} and set(data.stimulus) <= set(range(10))
    choice = comparison.input_groups()["choice"]
    f1 = data.X[500:1000, :, choice].sum(axis=(0, 2))  # spikes of the first frequency
    assert np.corrcoef(f1, data.stimulus)[0, 1] > 0.5  # the stimulus is f1's rank
    again = comparison.sample(40, 5)
    np.testing.assert_array_equal(again.X, data.X)
    np.testing.assert_array_equal(again.stimulus, data.stimulus)


def test_delay_match_sample_labels_match_the_directions(dms):
    data = dms.sample(40, 6)
    assert data.X.shape[2] == 100 and data.recall.sum() == 500 and data.delay.sum() == 60
    sample = data.X[500:1000].sum(0).astype(float)   # (trials, channels)
    test = data.X[1060:1560].sum(0).astype(float)
    r = np.array([np.corrcoef(a, b)[0, 1] for a, b in zip(sample, test)])
    assert r[data.y == 1].min() > r[data.y == 0].max()  # match: same tuning profile
    assert set(data.stimulus) <= set(range(8))


@pytest.mark.slow  # 10-15 s each, mostly compilation
@pytest.mark.parametrize("task, method", [("delay_comparison", "expsm_diag"),
                                          ("delay_match_sample", "bptt")])
def test_each_task_trains_a_step(task, method):
    task_obj = make_task(task, 5.0, 60.0, 1)  # 5-ms steps: short trials
    config = TINY_CONFIG.replace(task=task, method=method, n_rec=20, batch_size=4, dt=5.0)
    trainer = make_trainer(config, task_obj)
    before = trainer.params()["w_out"]["weight"]
    loss, acc = trainer.train_step(task_obj.sample(4, trial_seed(0, 0, 0)))
    assert np.isfinite(loss) and 0.0 <= acc <= 1.0
    assert not np.array_equal(before, trainer.params()["w_out"]["weight"])


@pytest.mark.parametrize("neuron", ["gif", "alif"])
def test_fast_spiking_inhibitory_cells(neuron, tiny_task):
    cfg = TINY_CONFIG.replace(neuron=neuron, n_rec=20)
    regular = make_trainer(cfg, tiny_task).net
    fast = make_trainer(cfg.replace(inh_type="fast_spiking", inh_tau_ratio=0.5), tiny_task).net
    n_exc = regular.n_exc
    if neuron == "gif":
        assert float(regular.A2[-1]) == cfg.resolved().net.A2 and float(fast.A2[-1]) == 0.0
        assert float(fast.Ath[n_exc]) == 0.0 and float(fast.Ath[0]) == float(regular.Ath[0])
        np.testing.assert_allclose(fast.tau_neu[n_exc:], regular.tau_neu[n_exc:] * 0.5)
        np.testing.assert_array_equal(fast.tau_neu[:n_exc], regular.tau_neu[:n_exc])
    else:
        assert float(fast.beta[-1]) == 0.0 and float(fast.beta[0]) == float(regular.beta[0])
        np.testing.assert_allclose(fast.dt_tau[n_exc:], regular.dt_tau[n_exc:] * 2.0)
    weak = make_trainer(cfg.replace(inh_type="fast_spiking", inh_adapt_ratio=0.25),
                        tiny_task).net
    for name in ("A2", "Ath") if neuron == "gif" else ("beta",):
        np.testing.assert_allclose(getattr(weak, name)[n_exc:],
                                   getattr(regular, name)[n_exc:] * 0.25)
        np.testing.assert_array_equal(getattr(weak, name)[:n_exc],
                                      getattr(regular, name)[:n_exc])
    assert cfg.resolved().net.cell_types() == {"inh_type": "regular", "inh_tau_ratio": None,
                                               "inh_adapt_ratio": None}
    recorded = cfg.replace(inh_type="fast_spiking", inh_adapt_ratio=0.25).resolved().net
    assert recorded.cell_types() == {"inh_type": "fast_spiking", "inh_tau_ratio": 0.4,
                                     "inh_adapt_ratio": 0.25}


def test_rate_targets_by_population():
    assert TINY_CONFIG.replace(target_rates="I:20").population_targets() == {"E": 10.0,
                                                                             "I": 20.0}
    assert TINY_CONFIG.replace(target_rates=" E:2 , I:8").population_targets() == {"E": 2.0,
                                                                                  "I": 8.0}
    for bad in ("X:3", "E:0", "E=2", "I:abc"):
        with pytest.raises(UserError, match="--target_rates"):
            TINY_CONFIG.replace(target_rates=bad).population_targets()


def test_rate_term_uses_each_population_target(tiny_task):
    import jax.numpy as jnp
    from utils.training.rules import rate_term, target_per_step
    config = TINY_CONFIG.replace(n_rec=20, target_rates="E:2,I:10")
    net = make_trainer(config, tiny_task).net
    target = target_per_step(config, net)
    assert target[0] == pytest.approx(0.002) and target[-1] == pytest.approx(0.01)
    assert float(rate_term(jnp.asarray(target), jnp.asarray(target))) == 0.0
    assert float(rate_term(jnp.asarray(2 * target), jnp.asarray(target))) == pytest.approx(1.0)
