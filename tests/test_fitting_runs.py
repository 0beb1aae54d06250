"""Fitting runs from the command line: every input validated before anything is written, a
fresh run folder with config.json and status.json, metrics.json with each method's history,
non-finite losses reported as null, contradictory settings refused with one line, Ctrl-C
keeping the finished methods. Tiny sizes throughout."""
import _thread
import json
import threading

import numpy as np
import pytest

import neuron_fitting_of_gif_model as gif
import neuron_fitting_of_hh_model as hh
from models.hh import HH_DEFAULTS, make_hh
from tests.fitting_helpers import python_sigint, write_csv
from utils.fitting.methods import METHODS, GradientFree
from utils.fitting.multistart import lbfgsb_multistart
from utils.fitting.optim import one_cell
from utils.fitting.optim import Tracker, clean
from utils.fitting.pipeline import format_table, problem_from_flags
from utils.fitting.problem import simulate_cell
from utils.run import cli

TINY = ["--methods", "DE", "--budget", "4", "--popsize", "4"]


def one_line_error(capsys, argv, main=hh.main, message="", code=1):
    """The run exits with `code` and its last stderr line (progress bars and warnings may come
    before it, on a run that failed after fitting) is one `error:` line holding `message`."""
    assert cli(main, argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1].split("\r")[-1].strip()
    assert last.startswith("error:") and message in last, err
    return last


def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


# --------------------------------------------------------------------------- A: lifecycle

def test_a_run_writes_config_status_and_metrics_with_history(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(hh.main, [*TINY, "--out_dir", str(out)]) == 0
    assert json.loads((out / "status.json").read_text())["state"] == "done"
    config = json.loads((out / "config.json").read_text())
    assert config["budget"] == 4 and set(config) == set(hh.DEFAULTS.config.flag_names())
    m = json.loads((out / "metrics.json").read_text())
    hist = m["methods"]["DE"]["history"]  # E: [[wall_s, n_evals, best_loss], ...]
    assert [h[1] for h in hist] == [4] and hist[-1][2] == m["methods"]["DE"]["loss"]
    assert m["gamma_window_ms"] == 0.5 and "interrupted" not in m
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary file


def test_refused_inputs_print_only_the_error_line(tmp_path, capsys):
    assert cli(hh.main, [*TINY, "--fit", "gl,gl", "--out_dir", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_an_existing_run_folder_is_refused_and_left_as_it_was(tmp_path, capsys):
    out = tmp_path / "old"
    out.mkdir()
    (out / "metrics.json").write_text('{"mine": 1}')
    (out / "config.json").write_text('{"old": true}')
    before = snapshot(out)
    one_line_error(capsys, [*TINY, "--out_dir", str(out)], message="already holds files")
    assert snapshot(out) == before


@pytest.mark.parametrize("args, message", [
    (["--fit", "gl,gl"], "--fit: gl is named twice"),
    (["--fix", "C=0.1,C=0.2"], "--fix: C is given twice"),
    (["--fit", "gl", "--fix", "gl=1"], "both fitted"),
    (["--bounds", "gl=0.001:0.1,gl=0.002:0.1"], "--bounds: gl is given twice"),
    (["--bounds", "gl=-0.1:0.1"], "gl must be > 0 (uS), so its lower bound must be too"),
    (["--bounds", "g_na=-1:40"], "g_na must be >= 0"),
    (["--fix", "C=0"], "--fix: C must be > 0 (nF), got 0"),
    (["--fix", "C=-0.2"], "C must be > 0"),
    (["--fit", "gl,g_na", "--fix", "g_kd=-1"], "g_kd must be >= 0"),
])
def test_contradictory_or_non_physical_settings(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    one_line_error(capsys, [*TINY, *args, "--out_dir", str(out)], message=message)
    assert not out.exists()


def test_gif_positive_parameters(tmp_path, capsys):
    out = tmp_path / "never"
    one_line_error(capsys, [*TINY, "--fix", "tau=0", "--out_dir", str(out)], main=gif.main,
                   message="tau must be > 0 (ms)")
    one_line_error(capsys, [*TINY, "--fit", "a,R", "--bounds", "R=-5:50", "--out_dir",
                            str(out)], main=gif.main, message="R must be > 0")
    assert not out.exists()


def test_gif_presearch_grid_longer_than_the_trace(tmp_path, capsys):
    out = tmp_path / "never"
    one_line_error(capsys, ["--methods", "gradient", "--presearch_dt", "5000", "--out_dir",
                            str(out)], main=gif.main,
                   message="--presearch_dt 5000 ms leaves fewer than 2 steps in traces of "
                           "1000 ms")
    assert not out.exists()


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Three HH traces recorded at dt 0.01 ms (the true model) as CSV files."""
    folder = tmp_path_factory.mktemp("rec")
    cur = hh.authors_protocol(0.01)[:3]
    v, _ = simulate_cell(make_hh(), HH_DEFAULTS, cur, 0.01)
    return folder, write_csv(folder / "I.csv", cur), write_csv(folder / "V.csv", v), v


def test_recording_refusals(tmp_path, capsys, recordings):
    folder, i_csv, v_csv, v = recordings
    base = ["--data_current", i_csv, "--dt", "0.01", *TINY, "--out_dir", str(tmp_path / "o")]
    one_line_error(capsys, [*base, "--data_voltage", v_csv, "--noise_mV", "1"],
                   message="--noise_mV adds noise to the synthetic target only")
    one_line_error(capsys, [*base, "--data_voltage", str(folder)],
                   message="is a folder, not a file")
    volts = write_csv(tmp_path / "V_volts.csv", v / 1000.0)
    one_line_error(capsys, [*base, "--data_voltage", volts], message="in volts")
    one_line_error(capsys, [*base, "--data_voltage", v_csv, "--current_unit", "A"],
                   message="implausible for a neuron")
    assert not (tmp_path / "o").exists()


def test_pandas_header_in_recordings_is_not_a_trace(tmp_path, capsys, recordings):
    """to_csv(index=False) writes a header 0,1,...,T-1: it used to become a 4th trace."""
    import pandas as pd
    _, i_csv, _, v = recordings
    v_csv = tmp_path / "V.csv"
    pd.DataFrame(v).to_csv(v_csv, index=False)
    out = tmp_path / "o"
    assert cli(hh.main, ["--data_current", i_csv, "--data_voltage", str(v_csv), "--dt", "0.01",
                         *TINY, "--out_dir", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["source"] == "recordings" and m["methods"]["DE"]["loss"] is not None


# --------------------------------------------------------------------------- F: non-finite

def nan_search(loss, dim, *, budget, popsize, seed, progress=None):
    """A method whose every loss is NaN (as when a simulation blows up)."""
    tracker = Tracker("nan", progress)
    z = np.random.default_rng(seed).uniform(size=(budget, dim))
    tracker.record(z, clean(np.full(budget, np.nan)))
    return tracker.result()


def test_non_finite_loss_is_null_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(METHODS, "nan", GradientFree(nan_search, "always NaN"))
    out = tmp_path / "run"
    assert cli(hh.main, ["--methods", "nan,DE", "--budget", "4", "--popsize", "4",
                         "--out_dir", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("method nan: loss is not finite") == 1
    m = json.loads((out / "metrics.json").read_text())
    assert m["methods"]["nan"]["loss"] is None and m["methods"]["nan"]["gamma"] is None
    assert all(h[2] is None for h in m["methods"]["nan"]["history"])
    assert m["methods"]["DE"]["loss"] is not None
    assert "1e+12" not in captured.out and "1e12" not in (out / "metrics.json").read_text()
    # every method non-finite: the run fails with one line, its metrics are kept
    out2 = tmp_path / "run2"
    one_line_error(capsys, ["--methods", "nan", "--budget", "4", "--out_dir", str(out2)],
                   message="no method reached a finite loss")
    assert json.loads((out2 / "status.json").read_text())["state"] == "failed"


# --------------------------------------------------------------------------- D: gamma

def truth_search(loss, dim, *, budget, popsize, seed, progress=None):
    """A method that evaluates the true parameters of the HH default problem only."""
    box = problem_from_flags(hh.DEFAULTS, []).box
    x = np.array([HH_DEFAULTS[n] for n in hh.DEFAULTS.fit])
    z = np.where(box.log, np.log(x / box.lo) / np.log(box.hi / box.lo),
                 (x - box.lo) / (box.hi - box.lo))[None]
    tracker = Tracker("truth", progress)
    tracker.record(z, clean(loss(z)))
    return tracker.result()


def test_no_gamma_above_1_in_a_tiny_hh_run_and_one_warning_when_undefined(tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.setitem(METHODS, "truth", GradientFree(truth_search, "the truth"))
    out = tmp_path / "run"
    assert cli(hh.main, ["--methods", "DE,PSO", "--budget", "8", "--popsize", "4",
                         "--target", "spike", "--out_dir", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    for r in m["methods"].values():
        assert r["gamma"] is None or r["gamma"] <= 1.0
    out2 = tmp_path / "wide"
    capsys.readouterr()
    # the true model fires 4 spikes in 15 ms on trace 4: at 2 ms, 2 nu delta = 1.07
    assert cli(hh.main, ["--methods", "truth,DE", "--budget", "4", "--gamma_window", "2",
                         "--out_dir", str(out2)]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "gamma factor undefined" in line]
    assert len(warnings) == 1 and "--gamma_window 2 ms" in warnings[0], err
    assert "267.2 Hz" in warnings[0]
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert m2["methods"]["truth"]["gamma"] is None and m2["methods"]["truth"]["loss"] < 1e-20


# --------------------------------------------------------------------------- I: table

def test_table_columns_stay_aligned_with_huge_values():
    problem = problem_from_flags(hh.DEFAULTS, [])
    row = {"params": {n: 1.2345678e30 for n in problem.free}, "wall_s": 12345.678,
           "n_evals": 123456789, "rmse_mV": 9.87654e300, "gamma": -1234.5678}
    table = format_table(problem, {"DE": {**row, "loss": 1.234567e300},
                                   "PSO": {**row, "loss": None, "rmse_mV": None,
                                           "gamma": None}})
    lines = table.splitlines()
    assert len({len(line) for line in lines[:2] + lines[3:]}) == 1, table
    titles = ["loss", "RMSE mV", "gamma", "wall s", "sims", "gl (uS)", "vth (mV)"]
    ends = [lines[0].index(t) + len(t) for t in titles]
    for line in lines[3:]:  # every cell ends where its column title ends, after a space
        for end in ends:
            cell = line[:end].split(" ")[-1]
            assert cell and line[end - len(cell) - 1] == " ", (end, table)


# --------------------------------------------------------------------------- H: Ctrl-C

def interrupting(loss, dim, *, budget, popsize, seed, progress=None):
    loss(np.full((1, dim), 0.5))
    raise KeyboardInterrupt


def test_ctrl_c_keeps_the_finished_methods(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(METHODS, "stop", GradientFree(interrupting, "Ctrl-C"))
    out = tmp_path / "run"
    assert cli(hh.main, ["--methods", "DE,stop,PSO", "--budget", "4", "--popsize", "4",
                         "--out_dir", str(out)]) == 130
    m = json.loads((out / "metrics.json").read_text())
    assert m["interrupted"] is True and list(m["methods"]) == ["DE"]
    assert m["not_finished"] == ["stop", "PSO"]
    assert json.loads((out / "status.json").read_text())["state"] == "interrupted"
    assert "Traceback" not in capsys.readouterr().err


def test_lockstep_threads_stop_cleanly_on_ctrl_c():
    """Ctrl-C reaching the main thread while L-BFGS-B runs wait in lockstep: every worker
    thread ends (no thread left inside a compiled call), then KeyboardInterrupt."""
    calls = []

    def value_and_grad(z):
        calls.append(len(z))
        if len(calls) == 3:
            _thread.interrupt_main()  # as SIGINT would, from a worker thread
        return np.sum((z - 0.3) ** 2, axis=1), 2 * (z - 0.3)

    before = threading.active_count()
    starts = np.random.default_rng(0).uniform(size=(6, 2))
    with python_sigint(), pytest.raises(KeyboardInterrupt):
        lbfgsb_multistart(one_cell(value_and_grad), [starts], maxiter=1000)
    assert threading.active_count() == before
    n = len(calls)
    assert 3 <= n <= 4  # at most the evaluation already under way finishes
