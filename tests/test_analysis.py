"""utils/training/analysis.py on data of known statistics, Trainer.record's extra outputs, and
multiplicative weight updates."""
from __future__ import annotations

import numpy as np
import pytest

from utils.training import analysis

N = 2000


@pytest.mark.parametrize("family, sample", [
    ("lognormal", lambda rng: np.exp(rng.normal(-2.0, 0.6, N))),
    ("halfnormal", lambda rng: np.abs(rng.normal(0.0, 0.3, N))),
    ("gamma", lambda rng: rng.gamma(3.0, 0.1, N)),
    ("exponential", lambda rng: rng.exponential(0.2, N)),
])
def test_weight_test_picks_the_family_the_weights_were_drawn_from(family, sample):
    res = analysis.weight_distribution_test(sample(np.random.default_rng(1)))
    assert res["best"] == family
    assert res["delta_aic"][family] == 0.0 and set(res["fits"]) == set(analysis.FAMILIES)
    fit = res["fits"][family]
    assert fit["ks_d"] < 0.05 and fit["ks_p"] > 0.01
    assert np.isfinite(fit["aic"]) and fit["bic"] > fit["aic"]  # k ln 2000 > 2k


def test_lognormal_parameters_are_the_moments_of_ln_w():
    w = np.exp(np.random.default_rng(2).normal(-2.0, 0.5, N))
    p = analysis.weight_distribution_test(w)["fits"]["lognormal"]["params"]
    assert p["s"] == pytest.approx(np.log(w).std(), rel=1e-3)
    assert np.log(p["scale"]) == pytest.approx(np.log(w).mean(), abs=1e-3)


def test_weights_at_zero_are_counted_apart_from_the_fits():
    rng = np.random.default_rng(0)
    w = np.concatenate([np.exp(rng.normal(-2.0, 0.5, 1500)), np.zeros(400), np.full(100, 1e-15)])
    res = analysis.weight_distribution_test(w)
    assert res["fraction_exact_zero"] == pytest.approx(0.2)
    assert res["fraction_below_tol"] == pytest.approx(0.25)
    assert res["n_positive"] == 1500 and res["best"] == "lognormal"
    assert abs(res["skew_log_w"]) < 0.2
    assert analysis.weight_distribution_test(np.zeros(5))["best"] is None


def test_log_density_integrates_to_one():
    params = {"a": 3.0, "scale": 0.1}
    y = np.linspace(-12, 4, 20001)
    dens = analysis.family_log_density("gamma", params, y)
    assert np.trapezoid(dens, y) == pytest.approx(1.0, abs=1e-3)


def _poisson(rng, rate_hz, T=2000, trials=40, cells=30, dt=1.0):
    return (rng.random((T, trials, cells)) < rate_hz * dt / 1e3).astype(np.float32)


def _windows(spikes, w=100):
    T = spikes.shape[0] // w * w
    return spikes[:T].reshape(-1, w, *spikes.shape[1:]).sum(axis=1)


def test_poisson_trains_have_cv_and_fano_near_one_and_no_correlation():
    spikes = _poisson(np.random.default_rng(0), 20.0)
    cv = analysis.isi_cv(analysis.isi_moments(spikes))
    assert cv["median"] == pytest.approx(1.0, abs=0.1) and cv["fraction_with_enough"] == 1.0
    counts = _windows(spikes)
    assert analysis.fano_factor(counts)["median"] == pytest.approx(1.0, abs=0.1)
    corr = analysis.count_correlation(counts, labels=np.arange(40) % 2)
    assert abs(corr["mean"]) < 0.02 and corr["n_pairs"] == 30 * 29 // 2


def test_regular_train_has_cv_zero_and_silent_cells_are_left_out():
    spikes = np.zeros((1000, 2, 3))
    spikes[::25, :, 0] = 1  # 40 Hz, regular
    spikes[[10, 500], 0, 1] = 1  # two spikes: one ISI only
    cv = analysis.isi_cv(analysis.isi_moments(spikes))
    assert cv["cv"][0] == pytest.approx(0.0) and np.isnan(cv["cv"][1:]).all()
    assert cv["fraction_with_enough"] == pytest.approx(1 / 3)


def test_shared_input_gives_positive_count_correlation():
    rng = np.random.default_rng(3)
    shared = rng.poisson(2.0, (10, 60, 1))
    counts = shared + rng.poisson(2.0, (10, 60, 20))
    assert analysis.count_correlation(counts)["mean"] == pytest.approx(0.5, abs=0.1)


def test_cells_whose_delay_rate_depends_on_the_label_are_selective():
    rng = np.random.default_rng(4)
    labels = np.arange(200) % 2
    rates = np.full((200, 40), 5.0)
    rates[:, :10] = np.where(labels[:, None] == 1, 15.0, 5.0)  # 10 selective cells
    counts = rng.poisson(rates)  # 1 s delay: counts = rates in Hz
    counts[:, -5:] = 0  # silent cells
    res = analysis.delay_selectivity(counts, labels, delay_ms=1000.0)
    assert (res["p"][:10] < 0.01).all() and np.isnan(res["p"][-5:]).all()
    assert 10 / 40 <= res["fraction_selective"] <= 12 / 40
    assert res["fraction_active"] == pytest.approx(35 / 40)
    three = labels + (np.arange(200) % 4 == 0)  # three values: Kruskal-Wallis
    assert (analysis.delay_selectivity(counts, three, 1000.0)["p"][:10] < 0.01).all()
    one_label = analysis.delay_selectivity(counts[labels == 1], labels[labels == 1], 1000.0)
    assert np.isnan(one_label["p"]).all() and one_label["fraction_selective"] == 0.0


def test_ei_balance_of_tracking_and_independent_currents():
    rng = np.random.default_rng(5)
    drive = np.abs(rng.normal(1.0, 0.5, (500, 4, 6)))
    I_e = drive + 0.1 * rng.random(drive.shape)
    def balance(I_e, I_i):
        return analysis.ei_balance(analysis.trial_balance(analysis.current_sums(I_e, I_i), 500))

    res = balance(I_e, -2.0 * drive)
    assert res["corr_median"] > 0.95 and res["ratio_median"] == pytest.approx(0.5, rel=0.05)
    assert res["corr"][0] == pytest.approx(np.mean([np.corrcoef(I_e[:, k, 0], 2.0 * drive[:, k, 0])
                                                    [0, 1] for k in range(4)]))
    res = balance(I_e, -np.abs(rng.normal(1.0, 0.5, drive.shape)))
    assert abs(res["corr_median"]) < 0.1
    I_e, I_i = analysis.synaptic_currents(np.ones(2), np.ones(2), np.array([0.0, 1.0]), 5., -10.)
    assert I_e.tolist() == [5.0, 4.0] and I_i.tolist() == [-10.0, -11.0]


def test_delay_mask_and_window_bins():
    X = np.zeros((20, 2, 3), dtype=bool)
    X[4, 0, 0] = X[7, 1, 1] = X[9, 0, 2] = True  # channel 2 is not a cue
    recall = np.arange(20) >= 16
    delay = analysis.delay_mask(X, recall, np.array([0, 1]))
    assert np.flatnonzero(delay).tolist() == list(range(8, 16))
    assert analysis.window_bins(delay, 3).tolist() == [-1] * 8 + [0, 0, 0, 1, 1, 1, -1, -1] + \
        [-1] * 4


# ----------------------------------------------------------------------------- the trainer
def test_record_accumulates_what_whole_trials_would_give(tiny_task):
    from tests.training_helpers import TINY_CONFIG
    from utils.training.recording import isi_index
    from utils.training.trainer import make_trainer
    trainer = make_trainer(TINY_CONFIG, tiny_task)
    data = tiny_task.sample(8, 3)
    T = data.X.shape[0]
    half = np.arange(T) < T // 2
    rec = trainer.record(data, keep=8, currents=True, bins={"half": np.where(half, 0, 1)},
                         isi={"all": isi_index(np.ones(T)), "first": isi_index(half)})
    assert rec["counts"]["trial"].shape == (1, 8, 40) and rec["counts"]["half"].shape == (2, 8, 40)
    np.testing.assert_array_equal(rec["counts"]["half"].sum(0), rec["counts"]["trial"][0])
    np.testing.assert_array_equal(rec["counts"]["trial"][0], rec["spikes"].sum(0))
    for name, mask in (("all", np.ones(T, bool)), ("first", half)):
        want = analysis.isi_moments(rec["spikes"][mask])
        for k in ("n", "s", "s2"):
            np.testing.assert_allclose(rec["isi"][name][k], want[k], rtol=1e-6)
    assert rec["rate_exc_hz"] == pytest.approx(rec["spikes"][..., :32].mean() * 1e3, rel=1e-5)
    assert rec["correct"].mean() == pytest.approx(trainer.evaluate(data)[1])
    one = trainer.record(data.take(np.array([0])), currents=True)
    assert one["I_e"].shape == (T, 40) and (one["I_e"] >= 0).all() and (one["I_i"] <= 0).all()
    want = analysis.trial_balance(analysis.current_sums(one["I_e"][:, None], one["I_i"][:, None]),
                                  T)
    for k in want:
        np.testing.assert_allclose(one["balance"][k], want[k], rtol=2e-3, atol=1e-3)


def test_multiplicative_step_scales_weights_by_exp_of_the_update():
    import jax.numpy as jnp
    from utils.training.trainer import log_space_gradients, multiplicative_step
    w = jnp.array([0.5, 0.0, 2.0])
    params = {"w_e": {"weight": w}, "w_out": {"weight": jnp.array([-1.0])}}
    grads = log_space_gradients({"w_e": {"weight": jnp.array([1.0, 3.0, -1.0])},
                                 "w_out": {"weight": jnp.array([2.0])}}, params, ("w_e",))
    np.testing.assert_allclose(grads["w_e"]["weight"], [0.5, 0.0, -2.0])
    assert float(grads["w_out"]["weight"][0]) == 2.0
    u = {"w_e": {"weight": jnp.array([0.1, 0.3, -0.2])}, "w_out": {"weight": jnp.array([0.5])}}
    new = multiplicative_step(params, u, ("w_e",))
    np.testing.assert_allclose(new["w_e"]["weight"], [0.5 * np.exp(0.1), 0.0, 2.0 * np.exp(-0.2)],
                               rtol=1e-6)
    assert float(new["w_out"]["weight"][0]) == pytest.approx(-0.5)


def test_multiplicative_training_keeps_positive_weights_positive(tiny_task):
    from tests.training_helpers import TINY_CONFIG
    from utils.training.trainer import make_trainer
    trainer = make_trainer(TINY_CONFIG.replace(method="expsm_diag",
                                               weight_update="multiplicative"), tiny_task)
    before = trainer.synapse_weights()
    for seed in range(2):
        loss, _ = trainer.train_step(tiny_task.sample(8, seed))
        assert np.isfinite(loss)
    after = trainer.synapse_weights()
    for k, w in after.items():
        assert (w[before[k] > 0] > 0).all() and (w[before[k] == 0] == 0).all(), k
        assert not np.array_equal(w, before[k]), k
        ratio = w[before[k] > 0] / before[k][before[k] > 0]
        assert np.abs(np.log(ratio)).max() < 0.05, k  # two Adam steps of lr 3e-3 in ln w
