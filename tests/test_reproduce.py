"""Each reproduction command runs end to end in its --quick form and leaves its figures
(slow: each runs every method or learning rule), and its table is built from run results."""
import json

import pytest

import reproduce


@pytest.mark.slow
@pytest.mark.parametrize("what,figures", [
    ("hh", ["hh_potential_traces.png", "hh_potential_repeats.png", "hh_spike_traces.png",
            "hh_spike_repeats.png"]),
    ("gif", ["gif_potential_traces.png", "gif_spike_repeats.png"]),
    ("network", ["network_bptt_activity.png", "network_expsm_diag_weights.png",
                 "network_diag_training_curve.png", "network_learning_curves.png"]),
    ("online", ["online_memory.png", "online_credit.png"]),
])
def test_quick_reproduction(tmp_path, what, figures):
    out, figs = tmp_path / "out", tmp_path / "figures"
    fitting = what in reproduce.FIT_SCRIPTS
    table = reproduce.main([what, "--quick", "--out", str(out), "--figures", str(figs),
                            *(["--repeats", "3"] if fitting else [])])
    for name in figures:
        assert (figs / name).stat().st_size > 5_000, name
    assert (out / f"{what}.md").read_text() == table
    assert table.startswith("|") and "min" in table
    if fitting:  # every method on both targets, mean +/- std over the 3 repeats asked for
        rows = [line for line in table.splitlines()
                if line.startswith(("| potential", "| spike"))]
        assert len(rows) == 2 * len(reproduce.FIT_METHODS.split(","))
        assert all(line.count("+/-") == 2 for line in rows)
        m = json.loads((out / f"{what}_spike" / "metrics.json").read_text())
        assert all(r["repeats"]["n"] == 3 for r in m["methods"].values())


def test_unknown_job_is_refused(capsys):
    with pytest.raises(SystemExit) as err:
        reproduce.main(["everything"])
    assert err.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_repeats_table_reports_mean_and_spread():
    run = {"repeats": {"loss_mean": 1.5, "loss_std": 0.25, "wall_s_mean": 2.0, "wall_s_std": 0.5},
           "n_evals": 120, "rmse_mV": 0.1234, "gamma": None}
    table = reproduce.repeats_table({"potential": {"methods": {"DE": run}}})
    assert table.splitlines()[-1] == "| potential | DE | 1.5 +/- 0.25 | 2.00 +/- 0.50 | 120 | 0.123 | - |"


def test_figures_record_their_command_date_and_code_version(tmp_path):
    src = tmp_path / "run.png"
    src.write_bytes(b"png")
    figures = reproduce.Figures(tmp_path / "figs", "python reproduce.py network")
    figures.copy(src, "network_activity.png")
    manifest = json.loads((tmp_path / "figs" / reproduce.MANIFEST).read_text())
    entry = manifest["network_activity.png"]
    assert entry["command"] == "python reproduce.py network" and entry["date"]
    assert entry["code_version"] != "unknown"  # the tests run in a git checkout


def test_a_quick_run_leaves_the_committed_figures_alone(tmp_path, monkeypatch):
    """--quick without --figures writes its figures into its own run folder."""
    seen = {}

    def job(out, figures, quick, repeats, resume):
        seen["folder"] = figures.folder
        return "| table |"

    monkeypatch.setitem(reproduce.JOBS, "network", job)
    reproduce.main(["network", "--quick", "--out", str(tmp_path / "out")])
    assert seen["folder"] == tmp_path / "out" / "figures"
    reproduce.main(["network", "--out", str(tmp_path / "out2")])
    assert seen["folder"] == reproduce.Path("figures")


def test_seed_table_gives_each_seed_and_their_mean_and_range():
    runs = {"bptt": [{"test_acc": a, "epochs_run": n, "wall_s": 60.0}
                     for a, n in ((0.99, 560), (0.97, 460), (0.98, 300))]}
    row = reproduce.seed_table(runs).splitlines()[-1]
    assert row == "| bptt | 3 | 0.990 / 0.970 / 0.980 | 0.980 | 0.970-0.990 | 560 / 460 / 300 | 3.0 |"


def test_network_resume_reuses_finished_runs_and_continues_interrupted_ones(tmp_path,
                                                                          monkeypatch):
    """network_run with resume: a finished run is read back, not trained again; an interrupted
    one goes on from its last.npz; a missing one is made; a folder with neither is refused."""
    calls = []

    def fake_main(argv):
        calls.append(list(argv))
        return {"test_acc": 0.5, "argv": list(argv)}

    monkeypatch.setattr(reproduce.task_training, "main", fake_main)
    done, stopped, missing, broken = (tmp_path / n for n in ("done", "stopped", "new", "broken"))
    done.mkdir()
    (done / "metrics.json").write_text(json.dumps({"test_acc": 0.99, "interrupted": False,
                                                   "epochs_run": 140}))
    stopped.mkdir()
    (stopped / "metrics.json").write_text(json.dumps({"test_acc": 0.7, "interrupted": True}))
    (stopped / "last.npz").write_bytes(b"state")
    broken.mkdir()
    (broken / "config.json").write_text("{}")

    assert reproduce.network_run("bptt", 0, done, False, resume=True)["epochs_run"] == 140
    assert calls == []
    m = reproduce.network_run("bptt", 1, stopped, False, resume=True)
    assert m["argv"][-2:] == ["--resume", str(stopped)] and "--seed" in m["argv"]
    m = reproduce.network_run("diag", 2, missing, False, resume=True)
    assert "--resume" not in m["argv"] and m["argv"][:4] == ["--method", "diag", "--seed", "2"]
    with pytest.raises(reproduce.UserError, match="remove it"):
        reproduce.network_run("bptt", 0, broken, False, resume=True)
    calls.clear()  # without resume every run is trained afresh
    reproduce.network_run("bptt", 0, done, False)
    assert len(calls) == 1 and "--resume" not in calls[0]


def test_resume_needs_the_network_job_and_its_folder(tmp_path):
    for argv in (["network", "--resume"], ["hh", "--resume", "--out", str(tmp_path)]):
        with pytest.raises(reproduce.UserError, match="--resume"):
            reproduce.main(argv)
