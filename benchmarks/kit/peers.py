"""Fitters in fresh processes, as a user runs them: this project's fitting scripts, and the
peers (benchmarks/brian2_fit.py in the Brian2 environment, benchmarks/jaxley_hh_fit.py)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import neuron_fitting_of_hh_model as hh_script
from benchmarks.kit.base import ROOT
from benchmarks.kit.hh import FREE
from models.hh import HH_DEFAULTS

BRIAN2_PYTHON = ROOT / ".venv-brian2" / "bin" / "python"
BRIAN2_FIT = ROOT / "benchmarks" / "brian2_fit.py"


def brian2_python(path: str) -> str:
    """argparse type of --brian2_python: the Brian2 environment's Python, or '' (no Brian2)
    when `path` is '' or does not exist, saying so in one line on stderr.

    A missing peer costs its rows, not the run: Brian2 lives in an environment of its own that
    many machines lack, and every benchmark measures this project first. A benchmark that
    cannot run at all without Brian2 checks for '' where it needs it and stops there."""
    if path and not Path(path).exists():
        print(f"no Brian2 environment at {path} (README, 'Benchmarks and speed'): its rows "
              "are skipped", file=sys.stderr)
        return ""
    return path


def add_brian2_python(parser: argparse.ArgumentParser) -> None:
    """The --brian2_python flag, defaulting to the repository's .venv-brian2."""
    parser.add_argument("--brian2_python", type=brian2_python, default=str(BRIAN2_PYTHON),
                        help="the Python of the Brian2 environment ('' skips Brian2)")


def run_fit_script(script: str, flags: list[str], folder: Path,
                   cache: Path | None = None) -> tuple[dict, float]:
    """A fitting script of this project (`script`, e.g. neuron_fitting_of_hh_model.py) with
    `flags` and --out_dir `folder` in a fresh process, without a display, JAX's compilation
    cache in `cache` when given: its metrics.json and the wall-clock seconds of the whole run."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    if cache is not None:
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, script, *flags, "--out_dir", str(folder)], cwd=ROOT,
                   check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    return json.loads((Path(folder) / "metrics.json").read_text()), wall


def run_peer(command: list, files: dict, dt: float, seed: int, extra: list,
             free: tuple = FREE, truth: dict = HH_DEFAULTS,
             all_bounds: dict = hh_script.BOUNDS) -> dict:
    """A peer fitter (benchmarks/brian2_fit.py or jaxley_hh_fit.py: `command`) in a fresh
    process on the recordings `files` ({"I": current CSV, "V": voltage CSV}), fitting `free`
    within `all_bounds` with the others fixed at the `truth`; its JSON, with "mse" (its best)
    and "whole_s" (the process's wall clock) added. RuntimeError with its stderr's end if it
    fails."""
    fixed = {k: v for k, v in truth.items() if k not in free}
    bounds = {k: all_bounds[k] for k in free}
    argv = [*command, "--current", str(files["I"]), "--voltage", str(files["V"]), "--dt", str(dt),
            "--fixed", json.dumps(fixed), "--bounds", json.dumps(bounds), "--seed", str(seed),
            *extra]
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {' '.join(argv)}\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["mse"] = result["best_mse"]
    result["whole_s"] = time.perf_counter() - t0
    return result


def brian2_run(python: str, files: dict, dt: float, seed: int, extra: list, free: tuple,
               **peer) -> dict:
    """benchmarks/brian2_fit.py fitting `free` (run_peer's keywords in `peer`), its history's
    clock moved to its optimizer's start, as this project's methods report theirs."""
    r = run_peer([python, str(BRIAN2_FIT)], files, dt, seed, extra, free=free, **peer)
    start = r["history"][0][0] - r["first_round_s"]
    r["history"] = [[h[0] - start, h[1], h[2]] for h in r["history"]]
    return {**r, "wall_s": r["history"][-1][0]}
