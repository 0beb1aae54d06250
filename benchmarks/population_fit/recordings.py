"""The recordings of the population benchmark: cells drawn around the HH defaults, simulated
by Brian2, with noise, in one NWB file beside their truth."""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np

import neuron_fitting_of_hh_model as hh_script
from benchmarks.kit.base import ROOT, write_csv
from benchmarks.kit.hh import FREE, draw_population
from benchmarks.kit.nwb import write_nwb
from benchmarks.population_fit import say
from utils.run import atomic_write_json

NWB_NAME = "population.nwb"


def cell_names(n: int) -> list[str]:
    """Electrode names, one per cell: cell000, cell001, ..."""
    width = max(3, len(str(n - 1)))
    return [f"cell{k:0{width}d}" for k in range(n)]


def brian2_simulate(python: str, current: np.ndarray, dt: float, fixed: dict,
                    cells: dict[str, np.ndarray], substeps: int,
                    work: Path) -> tuple[np.ndarray, dict]:
    """V [cells, traces, samples] mV by benchmarks/brian2_population.py, and its timings."""
    work.mkdir(parents=True, exist_ok=True)
    write_csv(work / "current.csv", current)
    (work / "params.json").write_text(json.dumps(
        {"fixed": fixed, "cells": {k: v.tolist() for k, v in cells.items()}}))
    argv = [python, str(ROOT / "benchmarks" / "brian2_population.py"), "--current",
            str(work / "current.csv"), "--params", str(work / "params.json"), "--dt", str(dt),
            "--substeps", str(substeps), "--out", str(work / "clean.npy")]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"Brian2 simulation failed:\n{done.stderr[-3000:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    v = np.load(work / "clean.npy")
    if not np.all(np.isfinite(v)):
        raise RuntimeError("Brian2 simulation gave non-finite voltages")
    return v, info


def integrator_check(clean: np.ndarray, noisy: np.ndarray, truth: dict[str, np.ndarray],
                     fixed: dict, current: np.ndarray, dt: float, noise: float) -> dict:
    """How far this project's integrator at dt is from Brian2's clean traces at each cell's
    truth (RMS mV), and the RMSE / noise the truth itself scores on the noisy recordings."""
    import jax

    from models.hh import simulate_hh

    jax.config.update("jax_enable_x64", True)  # as the fitting scripts simulate
    n = clean.shape[0]
    params = {**{k: np.full(n, v) for k, v in fixed.items()}, **truth}
    ours = np.asarray(simulate_hh(params, current, dt)[0])
    vs_brian2 = np.sqrt(np.mean((ours - clean) ** 2, axis=(1, 2)))
    at_truth = np.sqrt(np.mean((ours - noisy) ** 2, axis=(1, 2))) / noise
    realised = np.sqrt(np.mean((noisy - clean) ** 2, axis=(1, 2))) / noise
    return {"ours_vs_brian2_rms_mV": {"median": float(np.median(vs_brian2)),
                                      "max": float(vs_brian2.max())},
            "truth_rmse_over_noise_ours": {"median": float(np.median(at_truth)),
                                           "max": float(at_truth.max())},
            "noise_rms_over_noise": {"min": float(realised.min()), "max": float(realised.max())},
            "per_cell_ours_vs_brian2_rms_mV": vs_brian2.tolist()}


def make_recordings(args: argparse.Namespace, out: Path) -> dict:
    """Draw, simulate (Brian2), add noise, write population.nwb and truth.json into out/data;
    returns the truth record."""
    from models.hh import HH_DEFAULTS

    data = out / "data"
    dt = hh_script.DEFAULTS.dt
    current = hh_script.authors_protocol(dt)
    free = draw_population(args.cells, args.seed, HH_DEFAULTS, args.spread)
    fixed = {k: v for k, v in HH_DEFAULTS.items() if k not in FREE}
    say(f"simulating {args.cells} cells x {len(current)} traces with Brian2 (RK4, "
        f"{args.substeps} steps per {dt} ms sample)")
    clean, info = brian2_simulate(args.brian2_python, current, dt, fixed, free, args.substeps,
                                  data)
    rng = np.random.default_rng([args.seed, 1])
    # float32, as stored in the file: every fitter sees the same numbers
    noisy = (clean + rng.normal(0.0, args.noise_mV, clean.shape)).astype(np.float32)
    names = cell_names(args.cells)
    cells = {name: (current, noisy[c]) for c, name in enumerate(names)}
    t0 = time.perf_counter()
    nwb = Path(write_nwb(data / NWB_NAME, cells, dt, dtype=np.float32,
                         description="HH population simulated by Brian2 (population_fit)"))
    write_s = time.perf_counter() - t0
    np.save(data / "noisy.npy", noisy)
    ids = [f"{NWB_NAME}:{n}" for n in names]
    truth = {"file": str(nwb), "ids": ids, "free": list(FREE), "fixed": fixed, "dt_ms": dt,
             "noise_mV": args.noise_mV, "seed": args.seed, "spread": args.spread,
             "simulator": {**info, "dt_ms": dt / args.substeps},
             "cells": {i: {k: float(free[k][c]) for k in FREE} for c, i in enumerate(ids)}}
    truth["check"] = integrator_check(clean, noisy.astype(float), free, fixed, current, dt,
                                      args.noise_mV)
    truth["nwb_write_s"] = write_s
    atomic_write_json(data / "truth.json", truth)
    say(f"wrote {nwb} ({nwb.stat().st_size / 2**20:.1f} MiB) and truth.json; our integrator "
        f"at the truth is {truth['check']['ours_vs_brian2_rms_mV']['max']:.3f} mV RMS from "
        "Brian2's at most")
    return truth


def load_recordings(folder: Path) -> dict:
    """The truth record of recordings made by an earlier run (--data_from RUN/data)."""
    truth = json.loads((folder / "truth.json").read_text())
    truth["file"] = str(folder / NWB_NAME)
    return truth


def time_reader(path: str) -> float:
    """Seconds our reader takes to read every cell of the file (in this process, pynwb
    imported already): what each single-cell run pays before it selects its cell."""
    import pynwb  # noqa: F401  (its import is not the reading)

    from utils.fitting.recordings import find_files, read_cells

    t0 = time.perf_counter()
    read_cells(find_files(path))
    return time.perf_counter() - t0
