"""task_training.py end to end on a tiny network and a short task, and utils/training."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import task_training
from models.networks import NEURONS
from tests.training_helpers import TINY, TINY_CONFIG, run, train_briefly
from utils.run import cli
from utils.training.checkpoint import load_checkpoint, upgrade_config
from utils.training.config import TrainingJob
from utils.training.config import RULES
from utils.training.rules import BPTT
from utils.training.task import make_task, trial_seed
from utils.training.trainer import TrainConfig, Trainer, make_trainer

# ----------------------------------------------------------------------------- task data
def test_task_channels_survive_a_second_instance():
    """docs/NOTES.md S5: a second EvidenceAccumulation must not shift the channels."""
    task = make_task("evidence_accumulation", 1.0, 50.0, 3)
    make_task("evidence_accumulation", 1.0, 80.0, 2)  # a second instance in the same process
    d = task.sample(16, 123)
    X = d.X  # (T, n, 100)
    assert X.shape[2] == 100 == task.num_inputs
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
    groups = task.input_groups()
    assert [(s.start, s.stop) for s in groups.values()] == [(0, 25), (25, 50), (50, 75),
                                                            (75, 100)]


def test_trials_are_reproducible_and_streams_differ(tiny_task):
    a = tiny_task.sample(4, trial_seed(0, 0, 5))
    b = tiny_task.sample(4, trial_seed(0, 0, 5))
    c = tiny_task.sample(4, trial_seed(0, 2, 5))
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)


def test_unknown_task_refused():
    with pytest.raises(ValueError, match="unknown task"):
        make_task("ring", 1.0, 50.0, 1)


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("conn_method", ["dense", "rand", "gaussian"])
def test_loss_falls_for_each_conn_method(conn_method, tiny_task):
    config = TINY_CONFIG.replace(conn_method=conn_method, conn_prob=0.3, conn_sigma=5.0,
                                 lr=0.01, batch_size=16)
    trainer, loss0, loss1 = train_briefly(config, tiny_task)
    assert loss1 < loss0 - 0.01, (loss0, loss1)
    # Dale's law after training: stored and effective weights non-negative
    for proj in (trainer.net.w_in, trainer.net.w_e, trainer.net.w_i):
        assert (np.asarray(proj.weight.value["weight"]) >= 0).all()
    signed = trainer.net.recurrent_matrix()
    assert (signed[:trainer.net.n_exc] >= 0).all() and (signed[trainer.net.n_exc:] <= 0).all()


class ReadoutOnly(BPTT):
    """A toy rule: BPTT's gradient for the readout, nothing for the other weights."""

    def transform_gradients(self, grads):
        return {k: g if k == "w_out" else jax.tree.map(jnp.zeros_like, g)
                for k, g in grads.items()}


def test_a_new_learning_rule_is_one_class_and_one_entry(monkeypatch, tiny_task):
    monkeypatch.setitem(RULES, "readout_only", ReadoutOnly())
    config = TINY_CONFIG.replace(method="readout_only", lr=0.01)
    config.validate()
    trainer = make_trainer(config, tiny_task)
    before = {k: np.asarray(v["weight"]).copy() for k, v in trainer.params().items()}
    val = tiny_task.sample(16, trial_seed(0, 1, 0))
    loss0, _ = trainer.evaluate(val)
    for ep in range(2):
        trainer.train_step(tiny_task.sample(8, trial_seed(0, 0, ep)))
    loss1, _ = trainer.evaluate(val)
    after = trainer.params()
    assert loss1 != loss0
    assert not np.array_equal(before["w_out"], np.asarray(after["w_out"]["weight"]))
    for k in ("w_in", "w_e", "w_i"):
        np.testing.assert_array_equal(before[k], np.asarray(after[k]["weight"]))
    # the command line offers it too (choices come from the registry)
    assert "readout_only" in task_training.build_parser().format_help()


def test_main_writes_config_metrics_checkpoint_and_figures(trained):
    out, m, _ = trained
    for f in ("config.json", "metrics.json", "checkpoint.npz", "last.npz", "training_curve.png",
              "activity.png", "weights.png", "activity_stats.png", "connectivity.png"):
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
    tests = saved["weight_distributions"]
    assert set(tests) == {"before", "after"} and set(tests["after"]) == {"w_in", "w_e", "w_i"}
    assert "isi_cv_median" in saved["activity"] and "ei_corr_median" in saved["activity"]
    config = json.loads((out / "config.json").read_text())
    assert config["n_rec"] == 40 and config["seed"] == 0
    assert TrainConfig.from_flat(config) == TINY_CONFIG.replace(batches=4, save_every=1).resolved()
    ck = load_checkpoint(out / "checkpoint.npz")
    assert ck["config"]["n_rec"] == 40


def test_a_run_creates_one_task(trained):
    """brainpy-datasets tasks share state between instances: a run makes exactly one."""
    _, _, created = trained
    assert created == [{"dt": 1.0, "t_delay": 50.0, "num_cue": 1}]


def test_rate_regulariser_pulls_rates_towards_target(tiny_task):
    # measured on the adaptive-LIF network (readout from spikes); the GIF network reads its
    # membrane potentials out, and its rates moved less than 1.2x in these 6 batches
    config = TINY_CONFIG.replace(neuron="alif", rate_reg=5.0, target_rate=40.0, lr=0.02)
    trainer = make_trainer(config, tiny_task)
    data = tiny_task.sample(8, 5)
    rate0 = trainer.record(data)["spikes"].mean()
    for ep in range(6):
        trainer.train_step(tiny_task.sample(8, trial_seed(0, 0, ep)))
    assert trainer.record(data)["spikes"].mean() > rate0 * 1.2


def test_same_seed_same_history_other_seed_differs(trained, tmp_path, unrendered_figures):
    _, a, _ = trained
    _, b = run(tmp_path, "b", "--epochs", "4")
    _, c = run(tmp_path, "c", "--epochs", "2", "--seed", "8")
    la = [h["loss"] for h in a["history"]]
    assert la == [h["loss"] for h in b["history"]]
    assert la[:2] != [h["loss"] for h in c["history"]]
    assert a["test_acc"] == b["test_acc"]


def test_resume_continues_where_it_stopped(trained, tmp_path, unrendered_figures):
    _, full, _ = trained
    out, _ = run(tmp_path, "part", "--epochs", "2", "--save_every", "1")
    resumed = task_training.main(["--resume", str(out), "--epochs", "4"])
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4]
    np.testing.assert_allclose([h["loss"] for h in resumed["history"]],
                               [h["loss"] for h in full["history"]], rtol=1e-5)
    assert resumed["test_acc"] == full["test_acc"]


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, tiny_task,
                                                      unrendered_figures):
    out, _ = run(tmp_path, "rt", "--epochs", "2", "--conn_method", "rand", "--conn_prob", "0.3")
    ck = load_checkpoint(out / "checkpoint.npz")
    config = TINY_CONFIG.replace(**{k: ck["config"][k] for k in ("conn_method", "conn_prob")})
    data = tiny_task.sample(8, 99)
    a = make_trainer(config, tiny_task, structure=ck["structure"])
    a.set_params(ck["params"])
    b = make_trainer(config, tiny_task, structure=ck["structure"])
    b.set_params(load_checkpoint(out)["params"])
    ra, rb = a.record(data)["readout"], b.record(data)["readout"]
    np.testing.assert_array_equal(ra, rb)
    fresh = make_trainer(config, tiny_task).record(data)["readout"]
    assert not np.array_equal(ra, fresh)  # the checkpoint really holds trained weights


def test_sim_mode_from_checkpoint_and_fresh(trained, tmp_path, capsys, monkeypatch):
    out, _, _ = trained
    sim_out = tmp_path / "sim"
    m = task_training.main(["--mode", "sim", "--checkpoint", str(out / "checkpoint.npz"),
                            "--out_dir", str(sim_out), "--n_sim", "4"])
    for f in ("activity.png", "weights.png", "activity_stats.png", "connectivity.png",
              "metrics.json", "config.json"):
        assert (sim_out / f).is_file(), f
    assert m["n_rec"] == 40 and m["checkpoint"].endswith("checkpoint.npz")
    # the simulated network is the checkpoint's (its n_rec, t_delay), recorded as such
    assert json.loads((sim_out / "config.json").read_text())["t_delay"] == 50.0
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(len(plt.get_fignums())))
    fresh = task_training.main(TINY + ["--mode", "sim", "--show",
                                       "--out_dir", str(tmp_path / "fresh")])
    assert fresh["checkpoint"] is None
    assert "freshly initialised" in capsys.readouterr().err
    assert shown == [4]  # --show opens the four saved figures
    plt.close("all")


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("argv", [
    ["--conn_method", "ring"], ["--method", "sgd"], ["--lr", "-1"], ["--dt", "0"],
    ["--epochs", "0"], ["--batch_size", "-2"], ["--opt", "rmsprop"], ["--n_rec", "abc"],
    ["--task", "ring"], ["--inh_type", "fs"],
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
    (["--target_rates", "E:2,X:3"], "--target_rates"), (["--inh_tau_ratio", "2"], "--inh_tau_ratio"),
    (["--inh_adapt_ratio", "1.5"], "--inh_adapt_ratio"),
])
def test_bad_values_one_line_error(argv, words, capsys, tmp_path):
    assert cli(task_training.main, argv + ["--out_dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0]


def test_config_validation_names_unknown_registry_entries():
    with pytest.raises(Exception, match="--method"):
        TINY_CONFIG.replace(method="rtrl").validate()
    with pytest.raises(Exception, match="--conn_method"):
        TINY_CONFIG.replace(conn_method="ring").validate()


def test_mismatched_checkpoint_is_refused(trained, tmp_path, capsys):
    out, _, _ = trained
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
                 "--conn_sigma", "--task"):
        assert flag in text, flag


def test_every_setting_is_a_flag_and_every_flag_a_setting():
    """TrainingJob (TrainConfig with its NetConfig, RunOptions) and the command line cannot
    drift apart: one flag per setting, defaults from the settings."""
    values = vars(task_training.build_parser().parse_args([]))
    assert set(values) == set(TrainingJob.flag_names())
    assert TrainingJob.from_flat(values) == TrainingJob()
    assert TrainConfig.from_flat(values) == TrainConfig()
    cli_off = {f.name for _, f in TrainingJob.settings()} - set(TrainingJob.flag_names())
    assert cli_off == {"n_in", "n_out", "n_background"}  # set by the task


def test_old_flag_names_stay_aliases():
    args = task_training.build_parser().parse_args(["--epochs", "7"])
    assert args.batches == 7
    assert upgrade_config({"epochs": 7, "neuron": "gif"})["batches"] == 7


def test_ctrl_c_saves_state_and_evaluates(tmp_path, monkeypatch, unrendered_figures):
    real = Trainer.train_step
    calls = {"n": 0}

    def interrupt_at_third(self, data):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, data)

    monkeypatch.setattr(Trainer, "train_step", interrupt_at_third)
    out = tmp_path / "ctrlc"
    assert cli(task_training.main, TINY + ["--epochs", "10", "--out_dir", str(out)]) == 130
    m = json.loads((out / "metrics.json").read_text())
    assert m["interrupted"] and m["epochs_run"] == 2 and m["test_acc"] is not None
    assert load_checkpoint(out / "last.npz")["state"]["epoch"] == 2
    assert (out / "checkpoint.npz").is_file()


def test_each_rule_trains_with_its_surrogate(tiny_task):
    """BPTT trains with the neuron's narrow surrogate (with width 1 the recurrent gradients
    of the default task explode, docs/NOTES.md); online rules keep 1; an explicit
    surrogate_width overrides the rule's."""
    bptt = make_trainer(TINY_CONFIG, tiny_task)
    assert bptt.net.spk_fun.width == NEURONS[TINY_CONFIG.net.neuron].bptt_surrogate_width < 1.0
    alif = make_trainer(TINY_CONFIG.replace(neuron="alif"), tiny_task)
    assert alif.net.spk_fun.width == NEURONS["alif"].bptt_surrogate_width
    online = make_trainer(TINY_CONFIG.replace(method="expsm_diag"), tiny_task)
    assert online.net.spk_fun.width == 1.0
    assert make_trainer(TINY_CONFIG, tiny_task, surrogate_width=1.0).net.spk_fun.width == 1.0

