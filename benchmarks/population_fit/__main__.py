"""The command line of the population benchmark: python -m benchmarks.population_fit."""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import benchmarks.population_fit as benchmark
from benchmarks.kit.base import ROOT, run_folder, write_result
from benchmarks.kit.hh import FREE
from benchmarks.kit.peers import add_brian2_python
from benchmarks.population_fit import say
from benchmarks.population_fit.fitters import brian2_runs, population_run, single_runs, split_run
from benchmarks.population_fit.recordings import load_recordings, make_recordings, time_reader
from benchmarks.population_fit.verdict import accuracy, bar_lines, bars, report
from utils.run import atomic_write_bytes, nonneg_int, positive_float, positive_int


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


def spread_value(text: str) -> float:
    """argparse type: a spread in (0, 1)."""
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be below 1, got {text}")
    return value


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=benchmark.__doc__.split("\n\n")[0],
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
    add_brian2_python(p)
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
    args = p.parse_args(argv)
    if args.data_from is None and not args.brian2_python:
        p.error("simulating the recordings needs the Brian2 environment (README, 'Benchmarks "
                "and speed'); --data_from reuses an earlier run's")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse(argv)
    out = run_folder("population_fit", args.out_dir).resolve()  # runs use ROOT
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
    write_result("population_fit", result, out)
    atomic_write_bytes(out / "population_fit.md", (result["table"] + "\n").encode())
    if not args.keep_caches:
        for cache in out.glob("jax_cache_*"):
            shutil.rmtree(cache)
    print()
    print(result["table"])
    print("\n".join(bar_lines(result["bars"])))
    print(f"results in {out}")
    return result


if __name__ == "__main__":
    main()
