"""Simulate a population of HH cells with Brian2: the recordings of benchmarks/population_fit.py.

Runs in the Brian2 environment (README, "Benchmarks and speed"); benchmarks/population_fit.py
starts it. Every cell runs every current trace as one Brian2 network (cells x traces neurons,
Cython code generation), with the Traub-Miles equations of benchmarks/kit/brian2_model.py,
integrated by `--method` (RK4) at `--dt / --substeps` and recorded every `--dt`:

    .venv-brian2/bin/python benchmarks/brian2_population.py --current I.csv --params P.json \
        --dt 0.01 --substeps 10 --out V.npy

`--params` is JSON {"fixed": {name: value}, "cells": {name: [value per cell]}} in this
project's units (uS, nF, mV); `--out` receives V [cells, traces, samples] in mV (float64,
sample k at t = k dt, sample 0 the initial -65 mV). Prints one JSON line of timings.
"""
from __future__ import annotations

import argparse
import json
import os
import time

T_START = time.perf_counter()

import brian2 as b2  # noqa: E402
import numpy as np  # noqa: E402

from kit.brian2_model import build, set_initial, set_params  # noqa: E402  (from benchmarks/)


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--current", required=True, help="CSV, one trace per row, nA")
    p.add_argument("--params", required=True, help="JSON file: fixed and per-cell parameters")
    p.add_argument("--dt", type=float, required=True, help="sample spacing, ms")
    p.add_argument("--substeps", type=int, default=10, help="integration steps per sample")
    p.add_argument("--method", default="rk4", help="Brian2 integration method")
    p.add_argument("--out", required=True, help=".npy file for V [cells, traces, samples] mV")
    args = p.parse_args(argv)
    if args.substeps < 1:
        p.error("--substeps must be at least 1")
    return args


def simulate(current: np.ndarray, dt: float, fixed: dict, cells: dict, substeps: int,
             method: str) -> np.ndarray:
    """V [cells, traces, samples] (mV) of every cell on every trace of `current` (nA)."""
    n_cells = len(next(iter(cells.values())))
    n_traces, n_steps = current.shape
    net, group, monitor, duration = build("hh", current, dt, fixed, n_cells, method, substeps)
    # neuron c * n_traces + j is cell c on trace j (brian2_model.build tiles the traces)
    set_params(group, "hh", {k: np.asarray(v, float) for k, v in cells.items()}, n_traces)
    set_initial(group, "hh")
    net.run(duration)
    v = np.asarray(monitor.v / b2.mV)
    return v.reshape(n_cells, n_traces, -1)[..., :n_steps]


def main(argv=None) -> dict:
    args = parse(argv)
    b2.prefs.codegen.target = "cython"
    b2.prefs.logging.console_log_level = "ERROR"
    current = np.loadtxt(args.current, delimiter=",", ndmin=2)
    spec = json.loads(open(args.params).read())
    t0 = time.perf_counter()
    v = simulate(current, args.dt, spec["fixed"], spec["cells"], args.substeps, args.method)
    sim_s = time.perf_counter() - t0
    tmp = f"{args.out}.part.npy"
    np.save(tmp, v)
    os.replace(tmp, args.out)
    out = {"shape": list(v.shape), "finite": bool(np.all(np.isfinite(v))), "sim_s": sim_s,
           "wall_s": time.perf_counter() - T_START, "method": args.method,
           "substeps": args.substeps, "brian2": b2.__version__}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
