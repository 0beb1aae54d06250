"""benchmarks/device_check.sh's command line and benchmarks/device_check.py's plan, budget and
tables: no wheels, no network, nothing timed (the check itself: bash
benchmarks/device_check.sh --cpu OUT)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from benchmarks import device_check
from benchmarks.kit.training import speed_bars

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device_check.sh"


def sh(*args, cwd=ROOT):
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=30)


def test_help_prints_usage():
    proc = sh("--help")
    assert proc.returncode == 0
    assert "device_check.sh [--cpu] [--wheels DIR] OUT_DIR" in proc.stdout
    assert "--cpu" in proc.stdout and "make_wheels.sh" in proc.stdout


def test_argument_errors_are_one_line(tmp_path):
    for args, words in [((), "no OUT_DIR"), (("--bogus", tmp_path), "unknown option --bogus"),
                        ((tmp_path / "a", tmp_path / "b"), "one OUT_DIR only"),
                        (("--wheels",), "--wheels needs a folder")]:
        proc = sh(*args)
        assert proc.returncode == 2, args
        assert proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr


def test_missing_or_empty_wheels_folder_names_the_wheels_script(tmp_path):
    out = tmp_path / "out"
    proc = sh("--wheels", tmp_path / "absent", out)
    assert proc.returncode == 2 and "run bash benchmarks/make_wheels.sh" in proc.stderr
    assert not out.exists()  # refused before anything was made
    (tmp_path / "empty").mkdir()
    proc = sh("--cpu", "--wheels", tmp_path / "empty", out, cwd=tmp_path)
    assert proc.returncode == 2 and "no wheels in" in proc.stderr
    assert "run bash benchmarks/make_wheels.sh" in proc.stderr


def test_wheels_never_replace_the_machines_jax(tmp_path):
    (tmp_path / "whl").mkdir()
    (tmp_path / "whl" / "jaxlib-0.11.2-cp312-cp312-manylinux_2_27_x86_64.whl").write_bytes(b"")
    proc = sh("--wheels", tmp_path / "whl", tmp_path / "out")
    assert proc.returncode == 2 and "would replace the machine's own jaxlib" in proc.stderr


def test_smallest_network_then_the_fit_then_the_larger_ones():
    plan = device_check.PLANS["gpu"]
    order = [("hh",) if kind == "hh" else (s["n_rec"], s["conn_method"], s["method"])
             for kind, s in device_check.steps(plan)]
    assert order[:5] == [(200, "dense", "bptt"), (200, "dense", "expsm_diag"),
                         (200, "gaussian", "bptt"), (200, "gaussian", "expsm_diag"), ("hh",)]
    assert [o[0] for o in order[5:]] == [1000] * 4 + [4000] * 4
    assert all(s["batch_size"] == 32 and s["backend"] is None
               for kind, s in device_check.steps(plan) if kind == "train")
    cpu = [s for kind, s in device_check.steps(device_check.PLANS["cpu"]) if kind == "train"]
    assert {s["backend"] for s in cpu} == {"jax_raw"}  # no numba among the wheels


def test_an_exhausted_budget_skips_every_step_and_still_writes_the_tables(tmp_path):
    assert device_check.MIN_STEP_S > 1
    result = device_check.main([str(tmp_path), "--cpu", "--budget", "1"])
    saved = json.loads((tmp_path / "device_check.json").read_text())
    assert len(saved["train"]) == 8 and saved["checks"] == []
    assert all(r["error"] == "skipped: out of time" for r in saved["train"] + [saved["hh_fit"]])
    assert len(device_check.failures(result)) == 9
    md = (tmp_path / "device_check.md").read_text()
    assert md.count("skipped: out of time") == 9 and "| 80 | gaussian | expsm_diag |" in md


def test_tables_show_times_ratios_and_the_fit():
    row = {"conn_method": "dense", "n_rec": 200, "s_per_batch": 0.5, "first_step_s": 20.0,
           "peak_rss_mb": 900.0}
    result = {"plan": vars(device_check.PLANS["gpu"]) | {"hh_args": []},
              "train": [{**row, "method": "bptt"},
                        {**row, "method": "expsm_diag", "s_per_batch": 0.25}],
              "hh_fit": {"loss": 1e-9, "rmse_mV": 3e-5, "wall_s": 40.0, "process_s": 55.0,
                         "n_evals": 900}}
    result["checks"] = ["dense: " + line for line in speed_bars(result["train"])]
    md = device_check.markdown(result, {"backend": "gpu", "packages": {"jax": "0.11.2",
                                                                      "numba": None}})
    assert "- backend: gpu" in md and "jax 0.11.2" in md and "numba" not in md
    assert "| 200 | dense | expsm_diag | 0.250 | 20.0 | 900 |" in md
    assert "expsm_diag takes 0.50x BPTT's time per batch (PASS <= 1)" in md
    assert "| 1e-09 | 3e-05 | 40.0 | 55.0 | 900 |" in md
    assert device_check.failures(result) == []
