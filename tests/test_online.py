"""Online learning (braintrace D-RTRL / ES-D-RTRL): gradient agreement with BPTT, training."""
import json

import jax
import numpy as np
import pytest

import task_training
from benchmarks import online_vs_bptt as bench
from tests.training_helpers import train_briefly
from utils.run import cli
from utils.training.rules import RULES, online_rules
from utils.training.task import trial_seed
from utils.training.trainer import TrainConfig, make_trainer

TINY = ["--n_rec", "40", "--t_delay", "50", "--num_cue", "1", "--batch_size", "8",
        "--conn_prob", "0.3", "--conn_sigma", "5"]
# These tests and their bounds were measured on the adaptive-LIF network (--neuron alif) with
# ES-D-RTRL's trace decay 0.98; the GIF network (the default) has its own in
# tests/test_training_gif.py.
TINY_CONFIG = TrainConfig.make(neuron="alif", n_rec=40, t_delay=50.0, num_cue=1,
                               batch_size=8, conn_prob=0.3, conn_sigma=5.0, etrace_decay=0.98)


def _config(conn_method, method, **over):
    return TINY_CONFIG.replace(conn_method=conn_method, method=method, **over)


def _synapse_grads(trainer, grads):
    net = trainer.net
    projs = {"w_in": net.w_in, "w_e": net.w_e, "w_i": net.w_i}
    return {k: projs[k].synapse_values(v) if k in projs else v.ravel() for k, v in grads.items()}


def _cos(a, b):
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("conn_method", ["dense", "rand",
                                         pytest.param("gaussian", marks=pytest.mark.slow)])
def test_online_gradients_point_like_bptt(conn_method, tiny_task):
    """Whole-trial online gradients vs BPTT's, per weight group, same weights and trials.

    Bound: the diagonal approximations drop the cross-neuron terms of the recurrent Jacobian,
    so agreement is partial; across seeds we measured cosines of 0.1-0.86 for the input and
    recurrent groups (most 0.5-0.85) and >= 0.93 for the readout. Two random directions in
    these >= 320-dimensional groups have |cos| < 0.2 with probability > 0.999, so we require
    > 0.4 (recurrent, input) and > 0.9 (readout) at this fixed seed.
    """
    data = tiny_task.sample(8, trial_seed(0, 0, 0))
    bptt = make_trainer(_config(conn_method, "bptt"), tiny_task)
    g_bptt = _synapse_grads(bptt, bptt.gradients(data))
    for method in online_rules():
        tr = make_trainer(_config(conn_method, method), tiny_task)
        g = _synapse_grads(tr, tr.gradients(data))
        for k in ("w_in", "w_e", "w_i"):
            assert g[k].shape == g_bptt[k].shape
            assert _cos(g[k], g_bptt[k]) > 0.4, (method, k, _cos(g[k], g_bptt[k]))
        assert _cos(g["w_out"], g_bptt["w_out"]) > 0.9
        # not BPTT in disguise: the online gradient differs from the exact one
        assert _cos(g["w_e"], g_bptt["w_e"]) < 0.999


# ES-D-RTRL on the sparse 40-neuron nets (p 0.3 / sigma 5): the validation loss rises over
# 12 batches (measured with braintrace 0.2.6: 0.690 -> 0.700 rand, 0.701 -> 0.715 gaussian),
# the documented limitation that its cue-input credit points against BPTT's
# (tests/test_online_credit.py, README "Online learning"). Strict: fails once it learns here.
_ESDRTRL_SPARSE = pytest.mark.xfail(
    reason="expsm_diag's cue-input credit has the wrong sign (see test_online_credit.py)",
    strict=True)


@pytest.mark.parametrize("conn_method, method", [
    ("dense", "diag"), ("dense", "expsm_diag"),
    pytest.param("rand", "diag", marks=pytest.mark.slow),
    pytest.param("gaussian", "diag", marks=pytest.mark.slow),
    pytest.param("rand", "expsm_diag", marks=[pytest.mark.slow, _ESDRTRL_SPARSE]),
    pytest.param("gaussian", "expsm_diag", marks=[pytest.mark.slow, _ESDRTRL_SPARSE])])
def test_online_loss_falls(method, conn_method, tiny_task):
    config = _config(conn_method, method, lr=0.01, batch_size=16)
    trainer, loss0, loss1 = train_briefly(config, tiny_task)
    assert loss1 < loss0 - 0.01, (loss0, loss1)
    signed = trainer.net.recurrent_matrix()
    assert (signed[:trainer.net.n_exc] >= 0).all() and (signed[trainer.net.n_exc:] <= 0).all()


def test_update_every_step_changes_weights_within_a_trial(tiny_task):
    config = _config("dense", "expsm_diag", update_every_step=True, lr=0.01)
    tr = make_trainer(config, tiny_task)
    w0 = np.asarray(tr.params()["w_out"]["weight"]).copy()
    opt0 = int(jax.tree.leaves(tr.opt_state)[0])  # adam step count
    data = tiny_task.sample(8, 1)
    tr.train_step(data)
    count = [int(x) for x in jax.tree.leaves(tr.opt_state) if np.ndim(x) == 0][0]
    assert count - opt0 == data.recall.sum()  # one update per time step with loss
    assert not np.array_equal(w0, np.asarray(tr.params()["w_out"]["weight"]))


@pytest.mark.slow  # the same run (GIF, expsm_diag, decay 0.9, 2 batches) and checks are in
# tests/test_training_gif.py::test_gif_run_records_neuron_and_sim_refuses_another
def test_online_main_records_method_and_decay(tmp_path):
    out = tmp_path / "run"
    m = task_training.main(TINY + ["--method", "expsm_diag", "--etrace_decay", "0.9",
                                   "--epochs", "2", "--eval_every", "2", "--n_val", "8",
                                   "--n_test", "8", "--n_sim", "2", "--out_dir", str(out)])
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["method"] == "expsm_diag" and saved["etrace_decay"] == 0.9
    assert m["test_acc"] is not None and (out / "checkpoint.npz").is_file()


@pytest.mark.parametrize("value", ["0", "1", "-0.5", "1.01"])
def test_bad_etrace_decay_refused(value, capsys, tmp_path):
    code = cli(task_training.main, ["--method", "expsm_diag", "--etrace_decay", value,
                                    "--out_dir", str(tmp_path)])
    assert code == 1
    assert "--etrace_decay" in capsys.readouterr().err


def test_rules_and_make_trainer_reject_bad_input(tiny_task):
    tr = make_trainer(_config("dense", "bptt"), tiny_task)
    with pytest.raises(ValueError, match="etrace_decay"):
        RULES["expsm_diag"].make_algorithm(tr.net, TINY_CONFIG.replace(etrace_decay=1.0))
    with pytest.raises(ValueError, match="unknown learning rule"):
        make_trainer(_config("dense", "rtrl"), tiny_task)


def test_benchmark_bar_checks_and_sequence_lengths():
    # 2 cues: 2 x (50 + 100) ms + delay + 150 ms recall
    assert bench.delay_for(500, 2) == 50 and bench.delay_for(5000, 2) == 4550
    rows = [{"n_rec": 8, "method": "expsm_diag", "T": 500, "xla_step_mb": 10.0},
            {"n_rec": 8, "method": "expsm_diag", "T": 5000, "xla_step_mb": 11.0},
            {"n_rec": 8, "method": "bptt", "T": 500, "xla_step_mb": 20.0},
            {"n_rec": 8, "method": "bptt", "T": 5000, "xla_step_mb": 200.0}]
    lines = bench.check_bars(rows)
    assert any("x1.10 (PASS" in line for line in lines)
    assert any("18.2x" in line and "PASS" in line for line in lines)
    rows[1]["xla_step_mb"] = 50.0
    assert any("FAIL <= 1.2" in line for line in bench.check_bars(rows))


def test_rule_speed_bars():
    from benchmarks.kit.training import speed_bars
    rows = [{"n_rec": 200, "method": "bptt", "s_per_batch": 1.0},
            {"n_rec": 200, "method": "diag", "s_per_batch": 4.0},
            {"n_rec": 200, "method": "expsm_diag", "s_per_batch": 1.5},
            {"n_rec": 400, "method": "diag", "error": "timed out"}]
    lines = speed_bars(rows)
    assert "n_rec 200: diag takes 4.00x BPTT's time per batch (PASS <= 10)" in lines
    assert "n_rec 200: expsm_diag takes 1.50x BPTT's time per batch (FAIL <= 1)" in lines
    assert len(lines) == 2


def test_loss_segments_split_the_trial_and_drop_steps_after_the_last_loss():
    from utils.training.rules import loss_segments
    recall = np.array([0, 0, 1, 1, 0, 1, 0, 0], dtype=bool)
    assert loss_segments(recall) == [(0, 2, False), (2, 4, True), (4, 5, False), (5, 6, True)]
    assert loss_segments(np.ones(3, bool)) == [(0, 3, True)]
    with pytest.raises(ValueError, match="no step with loss"):
        loss_segments(np.zeros(4, bool))
