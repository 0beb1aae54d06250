"""task_training.py end to end on a tiny network and a short task."""
import json

import numpy as np
import pytest

import task_training
from conftest import train_briefly
from utils.run import cli
from utils.training import (Trainer, get_task, load_checkpoint, net_config_from_args,
                            sample_trials, trial_seed)

TINY = ["--n_rec", "40", "--t_delay", "50", "--num_cue", "1", "--batch_size", "8",
        "--n_val", "16", "--n_test", "16", "--n_sim", "4", "--eval_every", "2"]


def run(tmp_path, name, *extra):
    out = tmp_path / name
    metrics = task_training.main(TINY + ["--out_dir", str(out), *extra])
    return out, metrics


def tiny_args(**over):
    args = task_training.build_parser().parse_args(TINY)
    for k, v in over.items():
        setattr(args, k, v)
    return args


# ----------------------------------------------------------------------------- task data
def test_task_channels_survive_a_second_instance():
    """ECOSYSTEM.md item 11: a second EvidenceAccumulation must not shift the channels."""
    task = get_task(1.0, 50.0, 3)
    get_task(1.0, 80.0, 2)  # a second, different instance in the same process
    assert get_task(1.0, 50.0, 3) is task
    d = sample_trials(task, 16, 123)
    X = d.X  # (T, n, 100)
    assert X.shape[2] == 100
    recall = d.recall
    # recall channels 50-74 fire only in the recall period, and do fire there
    assert X[~recall][:, :, 50:75].sum() == 0 and X[recall][:, :, 50:75].mean() > 0.01
    # noise channels 75-99 fire throughout
    assert X[~recall][:, :, 75:].mean() > 0.002
    # cue channels 0-49 are silent in the recall period
    assert X[recall][:, :, :50].sum() == 0
    # each cue (50 ms gap, 100 ms cue) drives either left (0-24) or right (25-49) channels;
    # label 1 <=> more left cues than right ones
    n_left = np.zeros(16, int)
    for k in range(3):
        win = X[50 + k * 150: 150 + k * 150]
        left, right = win[:, :, :25].sum((0, 2)), win[:, :, 25:50].sum((0, 2))
        assert np.all((left == 0) != (right == 0))  # exactly one side per cue
        n_left += left > 0
    assert np.array_equal(d.y == 1, n_left >= 2)


def test_trials_are_reproducible_and_streams_differ():
    task = get_task(1.0, 50.0, 1)
    a = sample_trials(task, 4, trial_seed(0, 0, 5))
    b = sample_trials(task, 4, trial_seed(0, 0, 5))
    c = sample_trials(task, 4, trial_seed(0, 2, 5))
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("conn_method", ["dense", "rand", "gaussian"])
def test_loss_falls_for_each_conn_method(conn_method):
    args = tiny_args(conn_method=conn_method, conn_prob=0.3, conn_sigma=5.0, lr=0.01,
                     batch_size=16)
    trainer, loss0, loss1 = train_briefly(args)
    assert loss1 < loss0 - 0.01, (loss0, loss1)
    # Dale's law after training: stored and effective weights non-negative
    for proj in (trainer.net.w_in, trainer.net.w_e, trainer.net.w_i):
        assert (np.asarray(proj.weight.value["weight"]) >= 0).all()
    signed = trainer.net.recurrent_matrix()
    assert (signed[:trainer.net.n_exc] >= 0).all() and (signed[trainer.net.n_exc:] <= 0).all()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run shared by the tests that only read its outputs."""
    return run(tmp_path_factory.mktemp("trained"), "run", "--epochs", "4")


def test_main_writes_config_metrics_checkpoint_and_figures(trained):
    out, m = trained
    for f in ("config.json", "metrics.json", "checkpoint.npz", "last.npz", "training_curve.png",
              "activity.png", "weights.png", "connectivity.png"):
        assert (out / f).is_file(), f
    saved = json.loads((out / "metrics.json").read_text())
    for k in ("method", "conn_method", "etrace_decay", "history", "best_acc", "test_acc",
              "checkpoint"):
        assert k in saved
    assert saved["method"] == "bptt" and saved["conn_method"] == "dense"
    assert [h["epoch"] for h in saved["history"]] == [1, 2, 3, 4]
    assert all({"epoch", "loss", "acc", "wall_s"} <= set(h) for h in saved["history"])
    assert 0.0 <= saved["test_acc"] <= 1.0 and saved["dale_ok"]
    assert saved["checkpoint"] == str(out / "checkpoint.npz")
    config = json.loads((out / "config.json").read_text())
    assert config["n_rec"] == 40 and config["seed"] == 0
    ck = load_checkpoint(out / "checkpoint.npz")
    assert ck["config"]["n_rec"] == 40


def test_rate_regulariser_pulls_rates_towards_target():
    args = tiny_args(rate_reg=5.0, target_rate=40.0, lr=0.02)
    task = get_task(args.dt, args.t_delay, args.num_cue)
    trainer = task_training.make_trainer(args)
    data = sample_trials(task, 8, 5)
    rate0 = trainer.simulate(data)["spikes"].mean()
    for ep in range(6):
        trainer.train_step(sample_trials(task, 8, trial_seed(0, 0, ep)))
    assert trainer.simulate(data)["spikes"].mean() > rate0 * 1.2


def test_same_seed_same_history_other_seed_differs(tmp_path):
    _, a = run(tmp_path, "a", "--epochs", "3", "--seed", "7")
    _, b = run(tmp_path, "b", "--epochs", "3", "--seed", "7")
    _, c = run(tmp_path, "c", "--epochs", "2", "--seed", "8")
    la = [h["loss"] for h in a["history"]]
    assert la == [h["loss"] for h in b["history"]]
    assert la[:2] != [h["loss"] for h in c["history"]]
    assert a["test_acc"] == b["test_acc"]


def test_resume_continues_where_it_stopped(tmp_path):
    _, full = run(tmp_path, "full", "--epochs", "4", "--save_every", "1")
    out, _ = run(tmp_path, "part", "--epochs", "2", "--save_every", "1")
    resumed = task_training.main(["--resume", str(out), "--epochs", "4"])
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4]
    np.testing.assert_allclose([h["loss"] for h in resumed["history"]],
                               [h["loss"] for h in full["history"]], rtol=1e-5)
    assert resumed["test_acc"] == full["test_acc"]


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    out, _ = run(tmp_path, "rt", "--epochs", "2", "--conn_method", "rand", "--conn_prob", "0.3")
    ck = load_checkpoint(out / "checkpoint.npz")
    args = tiny_args(**{k: ck["config"][k] for k in ("conn_method", "conn_prob")})
    task = get_task(args.dt, args.t_delay, args.num_cue)
    data = sample_trials(task, 8, 99)
    a = task_training.make_trainer(args, structure=ck["structure"])
    a.set_params(ck["params"])
    b = task_training.make_trainer(args, structure=ck["structure"])
    b.set_params(load_checkpoint(out)["params"])
    ra, rb = a.simulate(data)["readout"], b.simulate(data)["readout"]
    np.testing.assert_array_equal(ra, rb)
    fresh = task_training.make_trainer(args).simulate(data)["readout"]
    assert not np.array_equal(ra, fresh)  # the checkpoint really holds trained weights


def test_sim_mode_from_checkpoint_and_fresh(trained, tmp_path, capsys):
    out, _ = trained
    sim_out = tmp_path / "sim"
    m = task_training.main(["--mode", "sim", "--checkpoint", str(out / "checkpoint.npz"),
                            "--out_dir", str(sim_out), "--n_sim", "4"])
    for f in ("activity.png", "weights.png", "connectivity.png", "metrics.json", "config.json"):
        assert (sim_out / f).is_file(), f
    assert m["n_rec"] == 40 and m["checkpoint"].endswith("checkpoint.npz")
    fresh = task_training.main(TINY + ["--mode", "sim", "--out_dir", str(tmp_path / "fresh")])
    assert fresh["checkpoint"] is None
    assert "freshly initialised" in capsys.readouterr().err


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("argv", [
    ["--conn_method", "ring"], ["--method", "sgd"], ["--lr", "-1"], ["--dt", "0"],
    ["--epochs", "0"], ["--batch_size", "-2"], ["--opt", "rmsprop"], ["--n_rec", "abc"],
])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as e:
        task_training.main(argv)
    assert e.value.code == 2


@pytest.mark.parametrize("argv, words", [
    (["--n_rec", "3"], "--n_rec"), (["--etrace_decay", "1.5"], "--etrace_decay"),
    (["--etrace_decay", "0"], "--etrace_decay"), (["--conn_prob", "2"], "--conn_prob"),
    (["--mode", "sim", "--checkpoint", "/nonexistent/x.npz"], "checkpoint not found"),
    (["--resume", "/nonexistent"], "--resume"),
    (["--rate_reg", "1", "--method", "diag"], "--rate_reg"),
    (["--loss", "mean", "--method", "expsm_diag"], "--loss"),
])
def test_bad_values_one_line_error(argv, words, capsys, tmp_path):
    assert cli(task_training.main, argv + ["--out_dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0]


def test_mismatched_checkpoint_is_refused(trained, tmp_path, capsys):
    out, _ = trained
    capsys.readouterr()
    argv = ["--mode", "sim", "--checkpoint", str(out), "--n_rec", "60",
            "--out_dir", str(tmp_path / "s")]
    assert cli(task_training.main, argv) == 1
    err = capsys.readouterr().err
    assert "n_rec" in err and err.count("\n") == 1
    argv = ["--mode", "sim", "--checkpoint", str(out), "--conn_method", "rand",
            "--out_dir", str(tmp_path / "s2")]
    assert cli(task_training.main, argv) == 1


def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit):
        task_training.main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--conn_method", "--n_rec", "--w_ei_ratio", "--mode", "--method",
                 "--etrace_decay", "--lr", "--epochs", "--opt", "--batch_size", "--dt",
                 "--tau_neu", "--tau_syn", "--tau_a", "--tau_out", "--beta", "--ff_scale",
                 "--rec_scale", "--weight_L1", "--weight_L2", "--seed", "--out_dir",
                 "--checkpoint", "--resume", "--show", "--t_delay", "--num_cue", "--conn_prob",
                 "--conn_sigma"):
        assert flag in text, flag


def test_ctrl_c_saves_state_and_evaluates(tmp_path, monkeypatch):
    from utils import training

    real = training.Trainer.train_step
    calls = {"n": 0}

    def interrupt_at_third(self, data):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, data)

    monkeypatch.setattr(training.Trainer, "train_step", interrupt_at_third)
    out = tmp_path / "ctrlc"
    assert cli(task_training.main, TINY + ["--epochs", "10", "--out_dir", str(out)]) == 130
    m = json.loads((out / "metrics.json").read_text())
    assert m["interrupted"] and m["epochs_run"] == 2 and m["test_acc"] is not None
    assert load_checkpoint(out / "last.npz")["state"]["epoch"] == 2
    assert (out / "checkpoint.npz").is_file()


def test_bptt_uses_the_narrow_surrogate():
    """BPTT trains with BPTT_SURROGATE_WIDTH (0.5): with width 1 the recurrent gradients of
    the default task explode during training (models/network.py); online methods keep 1."""
    from models.network import BPTT_SURROGATE_WIDTH

    assert BPTT_SURROGATE_WIDTH == 0.5
    bptt = task_training.make_trainer(tiny_args(method="bptt"))
    assert bptt.net.spk_fun.width == BPTT_SURROGATE_WIDTH
    online = task_training.make_trainer(tiny_args(method="expsm_diag"))
    assert online.net.spk_fun.width == 1.0
