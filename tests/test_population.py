"""Many recorded cells in one run (--data): one row per cell in cells.csv and metrics.json, a
cell that cannot be fitted reported with its reason while the others are fitted, the same
table for the same seed, Ctrl-C keeping the finished cells, one cell as a single-cell run."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import neuron_fitting_of_hh_model as hh
from benchmarks.kit.nwb import write_nwb
from models import NEURON_MODELS
from tests.fitting_helpers import CUR, VOLT, delete, python_sigint, shorten, unpair, write_abf1
from tests.process_helpers import ROOT, free_port, process_env
from utils.fitting import population
from utils.fitting.rows import FIT_STATES, TEST_COLUMNS, cell_row
from utils.fitting.problem import simulate_cell
from utils.run import UserError, cli

# the plain voltage MSE over every sweep (the spike-aware loss and held-out sweeps of
# recordings: tests/test_real_cells.py)
TINY = ["--methods", "gradient", "--n_starts", "2", "--maxiter", "5", "--spike_weight", "0",
        "--test_sweeps", "none"]
G_NA_SCALES = {"e0": 1.0, "e1": 0.8, "e2": 1.2, "e3": 1.0}


def synthetic_cells() -> dict:
    """HH at its defaults with g_na scaled per electrode, three 6 ms steps each; e1 has a NaN
    sample, e3 steps of a hundredth (below threshold: no spikes)."""
    model = NEURON_MODELS["hh"]()
    current = np.zeros((3, 600))
    for k, amp in enumerate((2.0, 10.0, 20.0)):
        current[k, 100:500] = amp
    cells = {}
    for name, scale in G_NA_SCALES.items():
        i = current if name != "e3" else 0.01 * current
        v, _ = simulate_cell(model, {**model.defaults, "g_na": model.defaults["g_na"] * scale},
                             i, 0.01)
        cells[name] = (i, np.array(v))
    cells["e1"][1][1, 50] = np.nan
    return cells


@pytest.fixture(scope="module")
def lab_file(tmp_path_factory):
    return write_nwb(tmp_path_factory.mktemp("lab") / "lab.nwb", synthetic_cells())


def fitted(status: str) -> str:
    """'fit' for a row with fitted parameters (good or poor: tiny budgets), else its status."""
    return "fit" if status in FIT_STATES else status


def rows_of(out):
    with open(out / "cells.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def run(tmp_path, lab_file, name, *flags):
    out = tmp_path / name
    metrics = hh.main(["--data", lab_file, *TINY, *flags, "--out_dir", str(out)])
    return metrics, out


@pytest.fixture(scope="module")
def three_cells(lab_file, tmp_path_factory):
    return run(tmp_path_factory.mktemp("pop"), lab_file, "a", "--cells", "0,1,2")


def test_a_bad_cell_is_a_row_with_its_reason_and_the_others_are_fitted(three_cells):
    metrics, out = three_cells
    rows = rows_of(out)
    assert [r["cell"] for r in rows] == ["lab.nwb:e0", "lab.nwb:e1", "lab.nwb:e2"]
    assert [fitted(r["status"]) for r in rows] == ["fit", "skipped", "fit"]
    assert "sample 51 is nan" in rows[1]["reason"] and rows[1]["gl"] == ""
    assert list(rows[0]) == ["cell", "method", "gl", "g_na", "g_kd", "vth", "loss", "rmse_mV",
                             "gamma", "n_evals", "wall_s", "status", "reason", *TEST_COLUMNS]
    assert all(rows[0][c] == "" for c in TEST_COLUMNS)  # --test_sweeps none
    for r in (rows[0], rows[2]):
        assert r["method"] == "gradient" and np.isfinite(float(r["loss"]))
        assert float(r["rmse_mV"]) == pytest.approx(np.sqrt(float(r["loss"])), rel=1e-6)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert [fitted(c["status"]) for c in on_disk["cells"]] == ["fit", "skipped", "fit"]
    assert on_disk["cells"][0]["sweeps"] == [0, 1, 2] and on_disk["cells"][0]["dt_ms"] == 0.01
    assert on_disk["cells"][0]["loss"] == pytest.approx(float(rows[0]["loss"]))
    assert json.loads((out / "status.json").read_text())["state"] == "done"
    assert (out / "cells_fits.png").stat().st_size > 0
    assert (out / "cells_params.png").stat().st_size > 0


def test_same_seed_same_table(three_cells, lab_file, tmp_path):
    _, out = run(tmp_path, lab_file, "b", "--cells", "0,1,2")
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in rows_of(out)]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"}
                     for r in rows_of(three_cells[1])]


def test_a_spike_target_without_spikes_is_a_row(lab_file, tmp_path):
    _, out = run(tmp_path, lab_file, "s", "--target", "spike", "--cells", "lab.nwb:e0,3",
                 "--sweeps", "0,1,2,9,10,11")
    rows = rows_of(out)
    assert [fitted(r["status"]) for r in rows] == ["fit", "skipped"]
    assert "holds no spikes" in rows[1]["reason"]


def test_one_cell_runs_as_a_single_cell_run_plus_its_row(lab_file, tmp_path):
    metrics, out = run(tmp_path, lab_file, "one", "--cells", "2", "--sweeps", "6,8")
    assert metrics["methods"]["gradient"]["loss"] is not None
    assert metrics["dt_ms"] == 0.01 and metrics["source"] == "lab.nwb:e2"
    assert (out / "traces.png").exists() and (out / "loss_vs_time.png").exists()
    [row] = rows_of(out)
    assert row["cell"] == "lab.nwb:e2" and fitted(row["status"]) == "fit"
    assert float(row["loss"]) == pytest.approx(metrics["methods"]["gradient"]["loss"])


def test_one_unusable_cell_fails_in_one_line(lab_file, tmp_path):
    with pytest.raises(UserError, match="lab.nwb:e1: response of selected sweep 2"):
        run(tmp_path, lab_file, "bad", "--cells", "1")


def test_ctrl_c_keeps_the_finished_cells_and_exits_130(lab_file, tmp_path, monkeypatch):
    real = population._fit_batch
    calls = []

    def interrupted_second(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(population, "_fit_batch", interrupted_second)
    monkeypatch.setattr(population, "EVAL_BYTES", 1)  # one cell per batch
    out = tmp_path / "ctrl_c"
    with python_sigint():
        status = cli(hh.main, ["--data", lab_file, *TINY, "--cells", "0,2",
                               "--out_dir", str(out)])
    assert status == 130
    assert [r["cell"] for r in rows_of(out)] == ["lab.nwb:e0"]
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["interrupted"] is True and len(on_disk["cells"]) == 1
    assert json.loads((out / "status.json").read_text())["state"] == "interrupted"


def test_cells_fitted_together_or_one_by_one_give_the_same_table(three_cells, lab_file,
                                                                  tmp_path, monkeypatch):
    """The starts of every cell in one batch, or each cell in a batch of its own: the same
    rows (what lets the cells be split over processes)."""
    monkeypatch.setattr(population, "EVAL_BYTES", 1)
    _, out = run(tmp_path, lab_file, "apart", "--cells", "0,1,2")
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in rows_of(out)]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"}
                     for r in rows_of(three_cells[1])]


def test_a_folder_of_abf_cells_is_fitted(tmp_path):
    """Two ABF1 files (response in mV on channel 0, stimulus in nA on channel 1): two cells,
    identified by file name, fitted in one run."""
    folder = tmp_path / "abf"
    folder.mkdir()
    for name, (i, v) in list(synthetic_cells().items())[::2]:  # e0, e2
        # pyabf reads ABF1 header fields past the writer's header: 1000 samples per sweep
        write_abf1(folder / f"{name}.abf", np.tile(i, (1, 2))[:, :1000],
                   np.tile(v, (1, 2))[:, :1000])
    out = tmp_path / "out"
    metrics = hh.main(["--data", str(folder), *TINY, "--out_dir", str(out)])
    assert [c["cell"] for c in metrics["cells"]] == ["e0.abf", "e2.abf"]
    assert [fitted(r["status"]) for r in rows_of(out)] == ["fit", "fit"]
    assert metrics["cells"][0]["dt_ms"] == pytest.approx(0.01)


def test_two_processes_give_the_table_of_one(three_cells, lab_file, tmp_path):
    """The cells split over two local processes joined by jax.distributed: process 0 writes
    the same rows as a one-process run."""
    port, out = free_port(), tmp_path / "two"
    cmd = [sys.executable, "neuron_fitting_of_hh_model.py", "--data", str(lab_file), *TINY,
           "--cells", "0,1,2", "--out_dir", str(out)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env={**process_env(port, pid),
                                                  "MPLBACKEND": "Agg"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for pid in (0, 1)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-2000:] for r in results]
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in rows_of(out)]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"}
                     for r in rows_of(three_cells[1])]
    assert "lab.nwb:e2" in results[0][0] and (out / "cells_fits.png").exists()


# --------------------------------------------------------------------------- damaged files

@pytest.fixture(scope="module")
def damaged_lab(tmp_path_factory):
    """Two folders of tiny NWB files (3 sweeps of 50 samples per cell): a good cell in
    a/lab.nwb; in b/lab.nwb (the same name) a cell with one sweep shorter than its stimulus
    and a cell without stimuli; a garbage file; a cell whose sweeps cannot be paired, one
    with a stimulus scaled twice (1e-6 of its nA), one with a flat response, one with a
    sweep at another rate."""
    lab = tmp_path_factory.mktemp("damaged")
    a, b = lab / "a", lab / "b"
    a.mkdir(), b.mkdir()
    write_nwb(a / "lab.nwb", {"e0": (CUR, VOLT)})
    write_nwb(a / "tiny.nwb", {"e0": (1e-6 * CUR, VOLT)})
    write_nwb(a / "flat.nwb", {"e0": (CUR, np.full_like(VOLT, -65.0))})
    write_nwb(a / "rates.nwb", {"e0": (CUR, VOLT)}, rates_hz={("e0", 2): 50000.0})
    unpair(write_nwb(a / "unpaired.nwb", {"e0": (CUR, VOLT)}, table=False))
    four = (np.vstack([CUR, CUR[:1]]), np.vstack([VOLT, VOLT[:1]]))
    both = write_nwb(b / "lab.nwb", {"e0": four, "e1": (2 * CUR, VOLT)}, table=False)
    shorten(both, "acquisition/resp_e0_1", 40)
    delete(both, *(f"stimulus/presentation/stim_e1_{k}" for k in range(3)))
    (b / "bad.nwb").write_bytes(b"not hdf5")
    return lab


def test_damaged_files_are_rows_with_their_reasons_and_the_good_cells_are_fitted(
        damaged_lab, tmp_path, capsys):
    """Every cell of every file is a row, identified by its path below the folder holding
    both folders: fitted, or skipped with its reason; a sweep left out is a warning line."""
    metrics, out = run(tmp_path, str(damaged_lab / "*" / "*.nwb"), "d")
    rows = rows_of(out)
    reasons = {r["cell"]: (fitted(r["status"]), r["reason"] if r["status"] == "skipped"
                           else "") for r in rows}
    bad = str(damaged_lab / "b" / "bad.nwb")
    assert reasons == {
        "a/flat.nwb:e0": ("skipped", "a/flat.nwb:e0: the response is flat (it spans 0 mV over "
                          "the selected sweeps, below 0.5 mV): nothing to fit; a disconnected "
                          "or wrong channel?"),
        "a/lab.nwb:e0": ("fit", ""),
        "a/rates.nwb:e0": ("skipped", "a/rates.nwb:e0: sweep 2 is sampled every 0.02 ms, sweep "
                           "0 every 0.01 ms (mixed rates are not resampled; leave one out with "
                           "--sweeps)"),
        "a/tiny.nwb:e0": ("skipped", "a/tiny.nwb:e0: the stimulus never exceeds 2.5e-06 nA, "
                          "implausibly small (below 1 pA): is its unit or conversion applied "
                          "twice?"),
        "a/unpaired.nwb:e0": ("skipped", "a/unpaired.nwb:e0: 3 responses and 3 stimuli "
                              "without distinct sweep numbers or starting times: which "
                              "stimulus each response got is unknown (an intracellular "
                              "recordings table would say)"),
        "b/bad.nwb": ("skipped", f"{bad}: not a readable NWB file (Unable to synchronously "
                      "open file (file signature not found))"),
        "b/lab.nwb:e0": ("fit", ""),
        "b/lab.nwb:e1": ("skipped", "b/lab.nwb:e1: no usable sweep (sweep 4: the response "
                         "resp_e1_0 has no stimulus (no CurrentClampStimulusSeries of its "
                         "sweep); 2 more left out)")}
    assert [r["cell"] for r in rows] == sorted(reasons)
    printed = capsys.readouterr()
    assert "warning: b/lab.nwb:e0: sweep 1 left out: the stimulus stim_e0_1 has 50 samples, " \
           "the response resp_e0_1 40" in printed.err
    table = [[line.split()[0], fitted(line.split()[1])] for line in printed.out.splitlines()
             if len(line.split()) > 1]
    assert all([cell, status] in table for cell, (status, _) in reasons.items())
    done = {c["cell"]: c for c in metrics["cells"] if fitted(c["status"]) == "fit"}
    assert done["b/lab.nwb:e0"]["sweeps"] == [0, 2, 3]
    assert json.loads((out / "metrics.json").read_text())["cells"] == metrics["cells"]
    assert json.loads((out / "status.json").read_text())["state"] == "done"


def test_the_rate_check_sees_only_the_selected_sweeps(damaged_lab, tmp_path):
    metrics, out = run(tmp_path, str(damaged_lab / "a"), "r", "--cells",
                       "rates.nwb:e0,lab.nwb:e0", "--sweeps", "0,1")
    assert [(r["cell"], fitted(r["status"])) for r in rows_of(out)] == [
        ("rates.nwb:e0", "fit"), ("lab.nwb:e0", "fit")]


def test_a_folder_without_a_readable_cell_is_refused_before_writing(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "x.nwb").write_bytes(b"not hdf5")
    write_abf1(folder / "y.abf", None, np.zeros((2, 1000)) - 65.0, units="pA")
    with pytest.raises(UserError, match=f"none of the 2 cells can be fitted: {folder / 'x.nwb'}: "
                                        "not a readable NWB file .* \\(and 1 more\\)$"):
        run(tmp_path, str(folder), "out")
    assert not (tmp_path / "out").exists()


def test_the_printed_table_shows_long_identifiers_in_full():
    ids = ["recordings_2026/mouse_01/cell.nwb:e0", "recordings_2026/mouse_02/cell.nwb:e0"]
    rows = [cell_row(i, ["gl"], None, 0.1, "why") for i in ids]
    lines = population.format_cells_table(["gl"], rows, {"gl": "uS"}).splitlines()
    assert [line.split()[0] for line in lines[2::2]] == ids
    assert lines[3].strip() == "why" and lines[2].index("skipped") == len(ids[0]) + 1
