"""A population of HH cells simulated by Brian2, fitted by this project in one run, against the
single-cell script run once per cell and against Brian2 + nevergrad DE per cell.

    python -m benchmarks.population_fit                              # 100 cells, the bars
    python -m benchmarks.population_fit --cells 4 --single_cells 2 --brian2_cells 1

1. The recordings: `--cells` Traub-Miles cells whose gl, g_na and g_kd are drawn log-uniformly
   between (1 - spread) and (1 + spread) times models/hh.py's defaults (the rest at the
   defaults), each run on the authors' five step currents (the HH script's protocol, dt 0.01
   ms) by Brian2 (benchmarks/brian2_population.py, RK4 at dt / --substeps), plus Gaussian
   noise; written as ONE NWB file (one electrode per cell, its sweeps as CurrentClampSeries
   in mV with paired CurrentClampStimulusSeries in pA), the truth beside it (truth.json).
2. The population run: `neuron_fitting_of_hh_model.py --data FILE --methods gradient` in a
   fresh process with an empty JAX compilation cache, timed whole (imports included).
3. The single-cell script, once per cell (`--cells ID`), each a fresh process; the first
   starts with an empty cache, the others reuse it (as a user's repeated runs would);
   `--single_cells K` of them are timed and the total extrapolated to every cell.
4. Brian2 + nevergrad DE per cell (benchmarks/brian2_fit.py, as benchmarks/hh_peers.py runs
   it): seconds to the noise floor (RMSE within 3% of the noise) from its best-so-far history;
   `--brian2_cells K` cells timed, extrapolated to every cell.
5. The bars: every cell's RMSE / noise <= 1.03; at least 98% of cells with every free
   parameter within 5% of its truth, and each free parameter's median signed error over the
   cells within 0.5% (no bias from the model's step); population run <= 0.15 x Brian2 + DE's
   time to the floor for all cells; single-cell runs >= 5 x the population run.

Results: population_fit.json and population_fit.md in the run folder (default
results/benchmarks/population_fit/<time>/), a table on the terminal.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

import neuron_fitting_of_hh_model as hh_script
from benchmarks.common import time_to
from utils.run import (atomic_write_bytes, atomic_write_json, make_out_dir, nonneg_int,
                       positive_float, positive_int)

ROOT = Path(__file__).resolve().parents[1]
FREE = ("gl", "g_na", "g_kd")
FLOOR = 1.03          # the noise floor of benchmarks/hh_peers.py: RMSE within 3% of the noise
PARAM_TOL = 0.05      # a parameter is recovered within 5% of its truth
PARAM_SHARE = 0.98    # ... in at least 98% of cells
PARAM_BIAS = 0.005    # median signed error of each free parameter over the cells: at most
BRIAN2_BAR = 0.15      # population run / (Brian2 + DE to the floor, every cell): at most
SINGLE_BAR = 5.0      # single-cell runs, every cell / population run: at least
SPLIT_TOL = 1e-9      # the table split over processes: relative difference at most
NWB_NAME = "population.nwb"
T0 = time.perf_counter()


def say(text: str) -> None:
    """A progress line with the seconds since the benchmark started."""
    print(f"[{time.perf_counter() - T0:7.1f} s] {text}", flush=True)


# --------------------------------------------------------------------------- the recordings

def draw_population(n: int, seed: int, defaults: dict, spread: float) -> dict[str, np.ndarray]:
    """Free parameters of `n` cells, log-uniform in [(1 - spread), (1 + spread)] x default."""
    rng = np.random.default_rng([seed, 0])  # its own stream: the noise uses [seed, 1]
    lo, hi = math.log(1.0 - spread), math.log(1.0 + spread)
    return {k: defaults[k] * np.exp(rng.uniform(lo, hi, n)) for k in FREE}


def cell_names(n: int) -> list[str]:
    """Electrode names, one per cell: cell000, cell001, ..."""
    width = max(3, len(str(n - 1)))
    return [f"cell{k:0{width}d}" for k in range(n)]


def brian2_simulate(python: str, current: np.ndarray, dt: float, fixed: dict,
                    cells: dict[str, np.ndarray], substeps: int,
                    work: Path) -> tuple[np.ndarray, dict]:
    """V [cells, traces, samples] mV by benchmarks/brian2_population.py, and its timings."""
    work.mkdir(parents=True, exist_ok=True)
    np.savetxt(work / "current.csv", current, delimiter=",", fmt="%.10g")
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


def write_population_nwb(path: Path, names: Sequence[str], current: np.ndarray,
                         voltage: np.ndarray, dt: float) -> Path:
    """One NWB file: an IntracellularElectrode per cell, each trace a CurrentClampSeries
    (float32 mV: conversion 1e-3 to volts) paired with its CurrentClampStimulusSeries (float32
    pA: conversion 1e-12 to amperes) in the intracellular recordings table; written under a
    temporary name, then renamed."""
    import datetime

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries

    nwb = NWBFile(session_description="HH population simulated by Brian2 "
                                      "(benchmarks/population_fit.py)",
                  identifier="population_fit",
                  session_start_time=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    device = nwb.create_device(name="brian2")
    rate = 1000.0 / dt  # Hz from ms
    sweep = 0
    for c, name in enumerate(names):
        electrode = nwb.create_icephys_electrode(name=name, description="simulated cell",
                                                 device=device)
        for k in range(current.shape[0]):
            common = dict(electrode=electrode, rate=rate, gain=1.0,
                          sweep_number=np.uint32(sweep), starting_time=0.0)
            stim = CurrentClampStimulusSeries(
                name=f"stim_{name}_{k}", data=(current[k] * 1e3).astype(np.float32),
                conversion=1e-12, unit="amperes", **common)
            resp = CurrentClampSeries(
                name=f"resp_{name}_{k}", data=voltage[c, k].astype(np.float32),
                conversion=1e-3, unit="volts", **common)
            nwb.add_intracellular_recording(electrode=electrode, stimulus=stim, response=resp)
            sweep += 1
    tmp = path.with_name(path.stem + ".part.nwb")  # pynwb wants the .nwb suffix
    with NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwb)
    os.replace(tmp, path)
    return path


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
    t0 = time.perf_counter()
    nwb = write_population_nwb(data / NWB_NAME, names, current, noisy, dt)
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


# --------------------------------------------------------------------------- running fitters

def run_logged(argv: list[str], env: dict, log: Path) -> float:
    """Run `argv` from the repository root with stdout and stderr into `log`; the wall clock
    seconds; RuntimeError with the log's tail when it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        fh.write(shlex.join(argv) + "\n")
        fh.flush()
        t0 = time.perf_counter()
        code = subprocess.run(argv, cwd=ROOT, env=env, stdout=fh,
                              stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(f"exit {code}: {shlex.join(argv)}\n{log.read_text()[-3000:]}")
    return wall


def fit_argv(truth: dict, seed: int, out_dir: Path, extra: Sequence[str],
             cells: str | None = None) -> list[str]:
    """The fitting script's command line for the population file (one cell with `cells`)."""
    argv = [sys.executable, "neuron_fitting_of_hh_model.py", "--data", truth["file"],
            "--fit", ",".join(FREE), "--methods", "gradient", "--seed", str(seed),
            # the model's own recordings with Gaussian noise: the plain MSE over every sweep
            "--spike_weight", "0", "--test_sweeps", "none",
            "--out_dir", str(out_dir), *extra]
    return argv + (["--cells", cells] if cells is not None else [])


def script_env(cache: Path) -> dict:
    """The environment of a fitting run: no display, JAX's compilation cache in `cache`
    (utils/run.py compilation_cache_dir: $JAX_COMPILATION_CACHE_DIR wins)."""
    return {**os.environ, "MPLBACKEND": "Agg", "JAX_COMPILATION_CACHE_DIR": str(cache)}


def cell_rows(run_dir: Path) -> list[dict]:
    """metrics.json's `cells` rows of a fitting run."""
    return json.loads((run_dir / "metrics.json").read_text())["cells"]


def population_run(truth: dict, args: argparse.Namespace, out: Path) -> dict:
    """Every cell in one fresh process with an empty compilation cache, timed whole."""
    cache = out / "jax_cache_population"
    cache.mkdir()
    say(f"population run: {len(truth['ids'])} cells in one process (log: "
        f"{out / 'logs' / 'population.log'})")
    wall = run_logged(fit_argv(truth, args.seed, out / "population", args.fit_flags),
                      script_env(cache), out / "logs" / "population.log")
    rows = cell_rows(out / "population")
    entries = sum(1 for _ in cache.rglob("*") if _.is_file())
    say(f"population run: {wall:.1f} s, {wall / len(rows):.2f} s per cell "
        f"({entries} compilation cache entries written)")
    return {"wall_s": wall, "per_cell_s": wall / len(rows), "rows": rows,
            "load": os.getloadavg()[0],
            "in_process_cell_s": [r["wall_s"] for r in rows], "cache_entries": entries,
            "out_dir": str(out / "population")}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def split_run(truth: dict, args: argparse.Namespace, out: Path, one: list[dict]) -> dict | None:
    """The population split over `args.processes` local processes joined by jax.distributed
    (each fits a consecutive share, process 0 writes the table), against the one-process
    table: the largest relative difference of any cell's loss or parameter, and whether the
    evaluation counts agree."""
    if args.processes < 2:
        return None
    port, run_dir = free_port(), out / "population_split"
    argv = fit_argv(truth, args.seed, run_dir, args.fit_flags)
    say(f"population split over {args.processes} processes (logs: {out / 'logs'})")
    procs, t0 = [], time.perf_counter()
    for pid in range(args.processes):
        env = {**script_env(out / "jax_cache_split"), "JAX_COORDINATOR_ADDRESS":
               f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": str(args.processes),
               "JAX_PROCESS_ID": str(pid)}
        log = open(out / "logs" / f"split_{pid}.log", "w")
        procs.append((subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log,
                                       stderr=subprocess.STDOUT), log))
    codes = [p.wait() for p, _ in procs]
    wall = time.perf_counter() - t0
    for _, log in procs:
        log.close()
    if any(codes):
        raise RuntimeError(f"split run exits {codes}: see {out / 'logs'}")
    two = {r["cell"]: r for r in cell_rows(run_dir)}
    diffs, same_evals = [], True
    for r in one:
        other = two[r["cell"]]
        same_evals &= r["n_evals"] == other["n_evals"]
        if r["status"] == "fitted":
            diffs += [abs(other["loss"] / r["loss"] - 1.0)]
            diffs += [abs(other["params"][p] / r["params"][p] - 1.0) for p in FREE]
    say(f"split run: {wall:.1f} s; largest relative difference from one process "
        f"{max(diffs):.2g}; evaluation counts {'equal' if same_evals else 'differ'}")
    return {"processes": args.processes, "wall_s": wall, "max_rel_diff": max(diffs),
            "same_n_evals": bool(same_evals), "out_dir": str(run_dir)}


def spaced(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n)."""
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, min(k, n))})


def single_runs(truth: dict, args: argparse.Namespace, out: Path) -> dict | None:
    """The single-cell script once per chosen cell, fresh processes, one compilation cache
    (empty before the first); the total for every cell extrapolated."""
    ids = truth["ids"]
    picked = spaced(len(ids), args.single_cells)
    if not picked:
        return None
    cache = out / "jax_cache_single"
    cache.mkdir()
    runs = []
    for n, k in enumerate(picked):
        name = f"single_{k:04d}"
        wall = run_logged(fit_argv(truth, args.seed, out / name, args.fit_flags, ids[k]),
                          script_env(cache), out / "logs" / f"{name}.log")
        [row] = cell_rows(out / name)
        runs.append({"cell": ids[k], "wall_s": wall, "row": row, "load": os.getloadavg()[0]})
        say(f"single-cell run {n + 1}/{len(picked)} ({ids[k]}): {wall:.1f} s")
    walls = [r["wall_s"] for r in runs]
    n_all, k = len(ids), len(walls)
    plain = sum(walls) * n_all / k
    # the first run fills the cache: count it once, the others' mean for the rest
    cache_aware = walls[0] + (n_all - 1) * float(np.mean(walls[1:])) if k > 1 else plain
    total = min(plain, cache_aware)
    return {"cells_timed": k, "walls_s": walls, "runs": runs,
            "total_s_scaled": plain, "total_s_first_plus_mean": cache_aware,
            "total_s": total,
            "how": (f"{k} of {n_all} cells timed; total = the smaller of sum x {n_all}/{k} "
                    f"({plain:.1f} s) and first (cold cache) + mean of the others x "
                    f"{n_all - 1} ({cache_aware:.1f} s)" if k < n_all else
                    f"every cell timed ({sum(walls):.1f} s)")}


def brian2_runs(truth: dict, args: argparse.Namespace, out: Path) -> dict | None:
    """Brian2 + nevergrad DE (benchmarks/brian2_fit.py, RK4 at dt) per chosen cell, stopped
    at the noise floor; seconds to it from the best-so-far history (process start excluded,
    Brian2's import and compilation included), extrapolated to every cell."""
    ids = truth["ids"]
    picked = spaced(len(ids), args.brian2_cells)
    if not picked:
        return None
    noisy = np.load(Path(truth["file"]).parent / "noisy.npy").astype(float)
    work = out / "brian2"
    work.mkdir()
    current = hh_script.authors_protocol(truth["dt_ms"])
    np.savetxt(work / "current.csv", current, delimiter=",", fmt="%.10g")
    level = (FLOOR * truth["noise_mV"]) ** 2
    runs = []
    for n, k in enumerate(picked):
        np.savetxt(work / f"voltage_{k:04d}.csv", noisy[k], delimiter=",", fmt="%.10g")
        argv = [args.brian2_python, str(ROOT / "benchmarks" / "brian2_fit.py"),
                "--current", str(work / "current.csv"), "--voltage",
                str(work / f"voltage_{k:04d}.csv"), "--dt", str(truth["dt_ms"]),
                "--fixed", json.dumps(truth["fixed"]),
                "--bounds", json.dumps({p: hh_script.BOUNDS[p] for p in FREE}),
                "--seed", str(args.seed), "--rounds", str(args.brian2_rounds),
                "--target_mse", str(level)]
        log = out / "logs" / f"brian2_{k:04d}.log"
        wall = run_logged(argv, os.environ.copy(), log)
        result = json.loads(log.read_text().strip().splitlines()[-1])
        to_floor = time_to(result["history"], level)
        last = result["history"][-1][0]
        cell_truth = truth["cells"][ids[k]]
        runs.append({"cell": ids[k], "reached": to_floor is not None, "to_floor_s": to_floor,
                     "seconds_counted": to_floor if to_floor is not None else last,
                     "whole_s": wall, "n_evals": result["n_evals"],
                     "rmse_over_noise": math.sqrt(result["best_mse"]) / truth["noise_mV"],
                     "max_rel_err": max(abs(result["params"][p] / cell_truth[p] - 1.0)
                                        for p in FREE),
                     "first_round_s": result["first_round_s"], "load": os.getloadavg()[0],
                     "later_round_s": result["later_round_s"]})
        say(f"Brian2 + DE {n + 1}/{len(picked)} ({ids[k]}): "
            + (f"noise floor after {to_floor:.1f} s" if to_floor is not None else
               f"no noise floor in {result['n_evals']} simulations ({last:.1f} s)")
            + f", whole run {wall:.1f} s")
    counted = [r["seconds_counted"] for r in runs]
    return {"cells_timed": len(runs), "runs": runs, "rounds_at_most": args.brian2_rounds,
            "per_cell_s": float(np.mean(counted)),
            "total_s": float(np.mean(counted)) * len(ids),
            "all_reached": all(r["reached"] for r in runs),
            "how": f"{len(runs)} of {len(ids)} cells timed, mean time to the floor x "
                   f"{len(ids)}" + ("" if all(r["reached"] for r in runs) else
                                    "; a cell that never reached it counts its whole search "
                                    "(a lower bound)")}


def code_version() -> dict | None:
    """The commit of the code the runs used, and the paths changed since (None outside git)."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.rstrip("\n")
    try:
        return {"commit": git("rev-parse", "HEAD"),
                "changed": [line[3:] for line in git("status", "--porcelain").splitlines()]}
    except (OSError, subprocess.CalledProcessError):
        return None


# --------------------------------------------------------------------------- the bars

def accuracy(rows: list[dict], truth: dict) -> list[dict]:
    """Per cell: status, RMSE / noise, each free parameter's relative error, and how far our
    integrator is from Brian2's at the cell's truth (RMS mV)."""
    gap = dict(zip(truth["ids"], truth.get("check", {}).get("per_cell_ours_vs_brian2_rms_mV",
                                                             [])))
    out = []
    for r in rows:
        t = truth["cells"][r["cell"]]
        fitted = r["status"] == "fitted"
        signed = {p: r["params"][p] / t[p] - 1.0 if fitted else None for p in FREE}
        rel = {p: None if e is None else abs(e) for p, e in signed.items()}
        out.append({"cell": r["cell"], "status": r["status"], "wall_s": r["wall_s"],
                    "rmse_over_noise": r["rmse_mV"] / truth["noise_mV"] if fitted else None,
                    "max_rel_err": max(rel.values()) if fitted else None, "rel_err": rel,
                    "signed_err": signed,
                    "params": r["params"], "truth": t,
                    "ours_vs_brian2_at_truth_rms_mV": gap.get(r["cell"])})
    return out


def bars(cells: list[dict], pop: dict, single: dict | None, brian2: dict | None,
         split: dict | None) -> list[dict]:
    """Each bar: its measured value, the bar and PASS / FAIL (None: not measured)."""
    n = len(cells)
    ratios = [c["rmse_over_noise"] for c in cells]
    worst = None if any(r is None for r in ratios) else max(ratios)
    within = sum(1 for c in cells if c["max_rel_err"] is not None and c["max_rel_err"] <= PARAM_TOL)
    need = math.ceil(PARAM_SHARE * n - 1e-9)
    out = [{"bar": "accuracy: worst RMSE / noise over every cell", "value": worst,
            "target": f"<= {FLOOR}", "pass": worst is not None and worst <= FLOOR},
           {"bar": f"accuracy: cells with every free parameter within {PARAM_TOL:.0%}",
            "value": within, "target": f">= {need} of {n}", "pass": within >= need}]
    for p in FREE:  # a bias the step or the fit puts into every cell shows in the median
        errs = [c["signed_err"][p] for c in cells if c["signed_err"][p] is not None]
        median = float(np.median(errs)) if errs else None
        out.append({"bar": f"accuracy: median signed error of {p} over the cells",
                    "value": median, "target": f"within +-{PARAM_BIAS:.1%}",
                    "pass": median is not None and abs(median) <= PARAM_BIAS})
    vs_brian2 = pop["wall_s"] / brian2["total_s"] if brian2 else None
    out.append({"bar": "speed: population run / (Brian2 + DE to the floor x cells)"
                + ("" if not brian2 or brian2["all_reached"] else " (an upper bound)"),
                "value": vs_brian2, "target": f"<= {BRIAN2_BAR}",
                "pass": None if vs_brian2 is None else vs_brian2 <= BRIAN2_BAR})
    vs_single = single["total_s"] / pop["wall_s"] if single else None
    out.append({"bar": "speed: single-cell script x cells / population run", "value": vs_single,
                "target": f">= {SINGLE_BAR:g}",
                "pass": None if vs_single is None else vs_single >= SINGLE_BAR})
    out.append({"bar": "scale: the table split over processes, largest relative difference",
                "value": split["max_rel_diff"] if split else None,
                "target": f"<= {SPLIT_TOL:g}, same evaluations",
                "pass": None if split is None else
                split["max_rel_diff"] <= SPLIT_TOL and split["same_n_evals"]})
    return out


def _num(x, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def report(result: dict) -> str:
    """The markdown printed and saved: the timings, the bars and the worst cells."""
    pop, single, b2, n = (result["population"], result["single"], result["brian2"],
                          result["config"]["cells"])
    lines = [f"Population of {n} HH cells (Brian2 RK4, {result['data']['noise_mV']} mV noise), "
             f"fitted gl, g_na, g_kd; load average at the start "
             f"{result['load_average'][0]:.2f}.", "",
             "| what | seconds |", "|---|---|",
             f"| population run, one process (cold compilation cache), whole | "
             f"{pop['wall_s']:.1f} |",
             f"| ... per cell | {pop['per_cell_s']:.2f} |",
             f"| ... per cell inside the run (cells.csv wall_s, median) | "
             f"{np.median(pop['in_process_cell_s']):.2f} |"]
    if single:
        lines += [f"| single-cell script, per run (median of {single['cells_timed']}) | "
                  f"{np.median(single['walls_s']):.1f} |",
                  f"| single-cell script x {n} cells | {single['total_s']:.1f} |"]
    if b2:
        lines += [f"| Brian2 + DE to the noise floor, per cell (mean of {b2['cells_timed']}) | "
                  f"{b2['per_cell_s']:.1f} |",
                  f"| Brian2 + DE to the noise floor x {n} cells | {b2['total_s']:.1f} |"]
    lines += ["", "| bar | measured | target | result |", "|---|---|---|---|"]
    for b in result["bars"]:
        verdict = "not measured" if b["pass"] is None else "PASS" if b["pass"] else "FAIL"
        lines.append(f"| {b['bar']} | {_num(b['value'], '.4g')} | {b['target']} | {verdict} |")
    cells = sorted(result["cells"], key=lambda c: -1.0 if c["max_rel_err"] is None
                   else -c["max_rel_err"])
    lines += ["", f"Cells by largest parameter error ({min(len(cells), 10)} of {n}):", "",
              "| cell | status | RMSE / noise | " + " | ".join(f"{p} err" for p in FREE)
              + " | s in run | ours vs Brian2 at truth, RMS mV |",
              "|---|---|---|" + "---|" * len(FREE) + "---|---|"]
    for c in cells[:10]:
        lines.append(f"| {c['cell']} | {c['status']} | {_num(c['rmse_over_noise'], '.4f')} | "
                     + " | ".join(_num(None if c["rel_err"][p] is None else 100 * c["rel_err"][p],
                                       '.2f') + "%" for p in FREE)
                     + f" | {_num(c['wall_s'], '.2f')} "
                     f"| {_num(c['ours_vs_brian2_at_truth_rms_mV'], '.3f')} |")
    if b2:
        lines += ["", "| Brian2 + DE cell | reached floor | s to floor | whole s | sims | "
                  "RMSE / noise | max param err |", "|---|---|---|---|---|---|---|"]
        for r in b2["runs"]:
            lines.append(f"| {r['cell']} | {'yes' if r['reached'] else 'no'} | "
                         f"{_num(r['to_floor_s'], '.1f')} | {r['whole_s']:.1f} | {r['n_evals']} "
                         f"| {r['rmse_over_noise']:.4f} | {100 * r['max_rel_err']:.2f}% |")
    notes = [single["how"]] if single else []
    notes += [b2["how"]] if b2 else []
    return "\n".join(lines + [""] + [f"- {t}" for t in notes])


# --------------------------------------------------------------------------- command line

def brian2_python(path: str) -> str:
    """argparse type: the Brian2 environment's Python, which must exist."""
    if not Path(path).exists():
        raise argparse.ArgumentTypeError(
            f"no Brian2 environment at {path}; set it up as the README says ('Benchmarks and "
            "speed')")
    return path


def spread_value(text: str) -> float:
    """argparse type: a spread in (0, 1)."""
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be below 1, got {text}")
    return value


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cells", type=positive_int, default=100, help="cells in the population")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the parameters, the noise, the fits and DE")
    p.add_argument("--noise_mV", type=positive_float, default=1.0, help="recording noise, mV")
    p.add_argument("--spread", type=spread_value, default=0.5,
                   help="free parameters drawn log-uniformly in [1 - s, 1 + s] x default")
    p.add_argument("--substeps", type=positive_int, default=10,
                   help="Brian2 RK4 steps per 0.01 ms sample when simulating the cells")
    p.add_argument("--single_cells", type=nonneg_int, default=10,
                   help="cells timed with the single-cell script (0: skip)")
    p.add_argument("--brian2_cells", type=nonneg_int, default=3,
                   help="cells timed with Brian2 + DE (0: skip)")
    p.add_argument("--brian2_rounds", type=positive_int, default=30,
                   help="DE rounds of 100 candidates at most per cell (stops at the floor)")
    p.add_argument("--brian2_python", type=brian2_python,
                   default=str(ROOT / ".venv-brian2" / "bin" / "python"),
                   help="Python of the Brian2 environment")
    p.add_argument("--processes", type=nonneg_int, default=2,
                   help="the population also split over this many local processes, its "
                   "table compared with one process's (0 or 1: skip)")
    p.add_argument("--fit_flags", type=shlex.split, default=[],
                   help="extra flags for this project's runs, quoted (e.g. '--n_starts 8')")
    p.add_argument("--data_from", type=Path, default=None,
                   help="reuse the recordings of an earlier run (its data/ folder) instead "
                        "of simulating")
    p.add_argument("--keep_caches", action="store_true",
                   help="keep the runs' JAX compilation caches in the run folder")
    p.add_argument("--out_dir", default=None,
                   help="run folder; none: results/benchmarks/population_fit/<time>/")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse(argv)
    out = make_out_dir("benchmarks/population_fit", args.out_dir).resolve()  # runs use ROOT
    load = os.getloadavg()
    say(f"run folder {out}; load average {load[0]:.2f} on {os.cpu_count()} cores")
    truth = (load_recordings(args.data_from.resolve()) if args.data_from
             else make_recordings(args, out))
    args.cells = len(truth["ids"])
    read_s = time_reader(truth["file"])
    say(f"our reader reads the {args.cells} cells in {read_s:.2f} s")
    pop = population_run(truth, args, out)
    split = split_run(truth, args, out, pop["rows"])
    single = single_runs(truth, args, out)
    brian2 = brian2_runs(truth, args, out)
    cells = accuracy(pop["rows"], truth)
    result = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "load_average": load, "load_average_end": os.getloadavg(),
              "code": code_version(),
              "data": {k: truth[k] for k in ("file", "noise_mV", "dt_ms", "seed", "spread",
                                             "simulator", "check", "fixed")
                       if k in truth}, "reader_s": read_s,
              "population": {k: v for k, v in pop.items() if k != "rows"},
              "single": single, "brian2": brian2, "split": split, "cells": cells,
              "bars": bars(cells, pop, single, brian2, split)}
    if single:  # each single run reads every cell of the file before it selects its own
        single["total_s_reading_one_cell"] = single["total_s"] - read_s * (args.cells - 1)
        single["how"] += (f"; each run reads all {args.cells} cells ({read_s:.2f} s here): "
                          f"reading only its own, the total would be about "
                          f"{single['total_s_reading_one_cell']:.1f} s, "
                          f"{single['total_s_reading_one_cell'] / pop['wall_s']:.2f}x the "
                          "population run")
    if single:  # the single-cell fits against the same cells' fits in the population run
        by_id = {c["cell"]: c for c in cells}
        result["single_vs_population_max_rel_diff"] = max(
            abs(s["row"]["params"][p] / by_id[s["cell"]]["params"][p] - 1.0)
            for s in single["runs"] for p in FREE if by_id[s["cell"]]["status"] == "fitted")
    result["table"] = report(result)
    atomic_write_json(out / "population_fit.json", result)
    atomic_write_bytes(out / "population_fit.md", (result["table"] + "\n").encode())
    if not args.keep_caches:
        for cache in out.glob("jax_cache_*"):
            shutil.rmtree(cache)
    print()
    print(result["table"])
    for b in result["bars"]:
        verdict = "not measured" if b["pass"] is None else "PASS" if b["pass"] else "FAIL"
        print(f"{verdict:>12}  {b['bar']}: {_num(b['value'], '.4g')} ({b['target']})")
    print(f"results in {out}")
    return result


if __name__ == "__main__":
    main()
