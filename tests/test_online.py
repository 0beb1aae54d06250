"""Online learning (brainscale D-RTRL / ES-D-RTRL): shim, gradient agreement with BPTT, training."""
import json

import jax
import numpy as np
import pytest

import task_training
from conftest import train_briefly
from utils.online import brainscale_needs_shim, ensure_brainscale_compat, make_online_algorithm
from utils.run import cli
from utils.training import get_task, sample_trials, trial_seed

TINY = ["--n_rec", "40", "--t_delay", "50", "--num_cue", "1", "--batch_size", "8",
        "--conn_prob", "0.3", "--conn_sigma", "5"]


def test_brainscale_shim_still_needed_and_working():
    """Fails when jax has `jax.core.get_aval` again (drop the shim) or the alias breaks."""
    assert brainscale_needs_shim(), "jax has jax.core.get_aval again: remove the shim in utils/online.py"
    ensure_brainscale_compat()
    aval = jax.core.get_aval(np.zeros((2, 3), np.float32))
    assert aval.shape == (2, 3)
    assert hasattr(aval, "at_least_vspace") or hasattr(aval, "to_tangent_aval")


def _args(conn_method, method, seed=0, **over):
    args = task_training.build_parser().parse_args(
        TINY + ["--conn_method", conn_method, "--method", method, "--seed", str(seed)])
    for k, v in over.items():
        setattr(args, k, v)
    return args


def _synapse_grads(trainer, grads):
    net = trainer.net
    projs = {"w_in": net.w_in, "w_e": net.w_e, "w_i": net.w_i}
    return {k: projs[k].synapse_values(v) if k in projs else v.ravel() for k, v in grads.items()}


def _cos(a, b):
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("conn_method", ["dense", "rand", "gaussian"])
def test_online_gradients_point_like_bptt(conn_method):
    """Whole-trial online gradients vs BPTT's, per weight group, same weights and trials.

    Bound: the diagonal approximations drop the cross-neuron terms of the recurrent Jacobian,
    so agreement is partial; across seeds we measured cosines of 0.1-0.86 for the input and
    recurrent groups (most 0.5-0.85) and >= 0.93 for the readout. Two random directions in
    these >= 320-dimensional groups have |cos| < 0.2 with probability > 0.999, so we require
    > 0.4 (recurrent, input) and > 0.9 (readout) at this fixed seed.
    """
    task = get_task(1.0, 50.0, 1)
    data = sample_trials(task, 8, trial_seed(0, 0, 0))
    bptt = task_training.make_trainer(_args(conn_method, "bptt"))
    g_bptt = _synapse_grads(bptt, bptt.gradients(data))
    for method in ("diag", "expsm_diag"):
        tr = task_training.make_trainer(_args(conn_method, method))
        g = _synapse_grads(tr, tr.gradients(data))
        for k in ("w_in", "w_e", "w_i"):
            assert g[k].shape == g_bptt[k].shape
            assert _cos(g[k], g_bptt[k]) > 0.4, (method, k, _cos(g[k], g_bptt[k]))
        assert _cos(g["w_out"], g_bptt["w_out"]) > 0.9
        # not BPTT in disguise: the online gradient differs from the exact one
        assert _cos(g["w_e"], g_bptt["w_e"]) < 0.999


_SPARSE_ONLINE = pytest.mark.xfail(
    reason="open problem: on this 40-neuron sparse net (p 0.3 / sigma 5) the online methods "
           "do not lower the validation loss within 12 batches (BPTT does; the online "
           "gradients' cosine with BPTT is 0.6-0.8, see test above)", strict=False)


@pytest.mark.parametrize("method", ["diag", "expsm_diag"])
@pytest.mark.parametrize("conn_method", [
    "dense", pytest.param("rand", marks=[pytest.mark.slow, _SPARSE_ONLINE]),
    pytest.param("gaussian", marks=[pytest.mark.slow, _SPARSE_ONLINE])])
def test_online_loss_falls(method, conn_method):
    args = _args(conn_method, method, lr=0.01, batch_size=16)
    trainer, loss0, loss1 = train_briefly(args)
    assert loss1 < loss0 - 0.01, (loss0, loss1)
    signed = trainer.net.recurrent_matrix()
    assert (signed[:trainer.net.n_exc] >= 0).all() and (signed[trainer.net.n_exc:] <= 0).all()


def test_update_every_step_changes_weights_within_a_trial():
    args = _args("dense", "expsm_diag", update_every_step=True, lr=0.01)
    task = get_task(args.dt, args.t_delay, args.num_cue)
    tr = task_training.make_trainer(args)
    w0 = np.asarray(tr.params()["w_out"]["weight"]).copy()
    opt0 = int(jax.tree.leaves(tr.opt_state)[0])  # adam step count
    tr.train_step(sample_trials(task, 8, 1))
    count = [int(x) for x in jax.tree.leaves(tr.opt_state) if np.ndim(x) == 0][0]
    assert count - opt0 == len(task.sample_a_trial(0)[0])  # one update per time step
    assert not np.array_equal(w0, np.asarray(tr.params()["w_out"]["weight"]))


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


def test_make_online_algorithm_rejects_bad_input():
    args = _args("dense", "bptt")
    tr = task_training.make_trainer(args)
    x0 = np.zeros((8, 100), np.float32)
    with pytest.raises(ValueError):
        make_online_algorithm(tr.net, "expsm_diag", 1.0, x0)
    with pytest.raises(ValueError):
        make_online_algorithm(tr.net, "rtrl", 0.5, x0)


def test_benchmark_bar_checks_and_sequence_lengths():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "online_vs_bptt.py"
    spec = importlib.util.spec_from_file_location("online_vs_bptt", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
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
