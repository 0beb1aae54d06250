"""The fitters of the population benchmark, each in fresh processes: this project's population
run (one process, and split over several), the single-cell script once per cell, and Brian2 +
nevergrad DE per cell."""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

import neuron_fitting_of_hh_model as hh_script
from benchmarks.kit.base import ROOT, free_port, time_to, write_csv
from benchmarks.kit.hh import FLOOR, FREE
from benchmarks.kit.peers import BRIAN2_FIT, run_peer
from benchmarks.population_fit import say


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
    Brian2's import and compilation included), extrapolated to every cell. None without
    cells to time or without the Brian2 environment."""
    ids = truth["ids"]
    picked = spaced(len(ids), args.brian2_cells) if args.brian2_python else []
    if not picked:
        return None
    noisy = np.load(Path(truth["file"]).parent / "noisy.npy").astype(float)
    work = out / "brian2"
    work.mkdir()
    current = write_csv(work / "current.csv", hh_script.authors_protocol(truth["dt_ms"]))
    level = (FLOOR * truth["noise_mV"]) ** 2
    runs = []
    for n, k in enumerate(picked):
        files = {"I": current, "V": write_csv(work / f"voltage_{k:04d}.csv", noisy[k])}
        result = run_peer([args.brian2_python, str(BRIAN2_FIT)], files, truth["dt_ms"],
                          args.seed, ["--rounds", str(args.brian2_rounds),
                                      "--target_mse", str(level)],
                          free=FREE, truth=truth["fixed"])
        wall = result["whole_s"]
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
