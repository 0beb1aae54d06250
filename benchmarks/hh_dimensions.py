"""HH fitting as the number of free parameters grows: 3 (gl, g_na, g_kd), 6 (+ vth, C, EL) and
8 (+ EK, ENa), on accurate recordings with noise (benchmarks/hh_peers.py makes them), by this
project's gradient, lm, DE and PSO (one fresh run of the script each size) and by Brian2 +
nevergrad DE when its environment is set up.

    python -m benchmarks.hh_dimensions
    python -m benchmarks.hh_dimensions --sizes 3 6 --budget 3000

For each method: seconds to the noise floor (RMSE within 3% of the noise) from its best-so-far
history, its whole time, final RMSE / noise and largest parameter error, and the best loss
every method had reached at the wall time the gradient method (L-BFGS-B) needed in all
(equal wall time).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

import neuron_fitting_of_hh_model as hh_script
from benchmarks.hh_peers import (FLOOR, ROOT, brian2_python, reference_voltage, run_peer,
                                 time_to, write_csv)
from models.hh import HH_DEFAULTS
from utils.run import atomic_write_json, make_out_dir, positive_float, positive_int

ORDER = ("gl", "g_na", "g_kd", "vth", "C", "EL", "EK", "ENa")
METHODS = ("gradient", "lm", "DE", "PSO")


def best_at(history: list, seconds: float) -> float | None:
    """The best loss a history [[s, n, best], ...] had reached by `seconds`."""
    reached = [h[2] for h in history if h[0] <= seconds]
    return min(reached) if reached else None


def run_size(out: Path, files: dict, free: tuple, args: argparse.Namespace) -> dict:
    """One fit of `free` by every method of this project, and by Brian2 + DE."""
    fixed = [k for k in ORDER if k not in free]
    folder = out / f"ours_{len(free)}"
    argv = [sys.executable, "neuron_fitting_of_hh_model.py", "--data_current", str(files["I"]),
            "--data_voltage", str(files["V"]), "--dt", str(hh_script.DEFAULTS.dt),
            "--spike_weight", "0",  # the model's own recordings: the plain MSE
            "--fit", ",".join(free), "--methods", ",".join(METHODS), "--budget",
            str(args.budget), "--popsize", "100", "--seed", str(args.seed),
            "--out_dir", str(folder)]
    if fixed:
        argv += ["--fix", ",".join(f"{k}={HH_DEFAULTS[k]}" for k in fixed)]
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True,
                   env={**os.environ, "MPLBACKEND": "Agg"})
    methods = json.loads((folder / "metrics.json").read_text())["methods"]
    runs = {m: {"history": r["history"], "mse": r["loss"], "params": r["params"],
                "wall_s": r["wall_s"], "n_evals": r["n_evals"]} for m, r in methods.items()}
    if args.brian2_python:
        runs["Brian2 + DE"] = brian2_run(args.brian2_python, files, hh_script.DEFAULTS.dt,
                                         args.seed, ["--rounds", str(args.budget // 100)], free)
    return size_rows(runs, free, args.noise_mV, HH_DEFAULTS)


def brian2_run(python: str, files: dict, dt: float, seed: int, extra: list, free: tuple,
               **peer) -> dict:
    """benchmarks/brian2_fit.py fitting `free` (run_peer's keywords in `peer`), its history's
    clock moved to its optimizer's start, as this project's methods report theirs."""
    r = run_peer([python, str(ROOT / "benchmarks" / "brian2_fit.py")], files, dt, seed, extra,
                 free=free, **peer)
    start = r["history"][0][0] - r["first_round_s"]
    r["history"] = [[h[0] - start, h[1], h[2]] for h in r["history"]]
    return {**r, "wall_s": r["history"][-1][0]}


def size_rows(runs: dict, free: tuple, noise_mV: float, truth: dict) -> dict:
    """The table of one size: per method (runs: name -> history, mse, params, wall_s,
    n_evals), time to the noise floor, wall time, RMSE / noise, largest parameter error against
    `truth`, and the best loss at the wall time of the gradient method."""
    equal = runs["gradient"]["wall_s"]
    floor = (FLOOR * noise_mV) ** 2
    rows = [{"method": name, "to_floor_s": time_to(r["history"], floor), "wall_s": r["wall_s"],
             "rmse_over_noise": float(np.sqrt(r["mse"]) / noise_mV),
             "max_rel_err": max(abs(r["params"][k] / truth[k] - 1.0) for k in free),
             "n_evals": r["n_evals"], "best_at_equal_time": best_at(r["history"], equal)}
            for name, r in runs.items()]
    return {"free": list(free), "equal_time_s": equal, "rows": rows}


def report(out: Path, name: str, noise_mV: float, results: list, **extra) -> dict:
    """Print every size's table and write them (and `extra`) to out/<name>.json."""
    text = "\n\n".join(markdown(r) for r in results)
    atomic_write_json(out / f"{name}.json", {"noise_mV": noise_mV, "sizes": results, **extra})
    print(text)
    return {"sizes": results, "table": text}


def markdown(result: dict) -> str:
    lines = [f"{len(result['free'])} free ({', '.join(result['free'])}); equal wall time = "
             f"L-BFGS-B's {result['equal_time_s']:.1f} s", "",
             "| method | s to noise floor | wall s | RMSE / noise | max param error | sims | "
             "best MSE at equal time |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        floor = "never" if r["to_floor_s"] is None else f"{r['to_floor_s']:.2f}"
        at = "-" if r["best_at_equal_time"] is None else f"{r['best_at_equal_time']:.4g}"
        lines.append(f"| {r['method']} | {floor} | {r['wall_s']:.1f} | {r['rmse_over_noise']:.3f}"
                     f" | {100 * r['max_rel_err']:.1f}% | {r['n_evals']} | {at} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[3, 6, 8], choices=[3, 6, 8])
    p.add_argument("--noise_mV", type=positive_float, default=1.0)
    p.add_argument("--budget", type=positive_int, default=3000,
                   help="simulations of DE, PSO and Brian2 + DE (rounds of 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--brian2_python", type=brian2_python,
                   default=str(ROOT / ".venv-brian2" / "bin" / "python"),
                   help="the Python of the Brian2 environment ('' skips the Brian2 peer)")
    p.add_argument("--out_dir", default=None)
    args = p.parse_args(argv)
    out = make_out_dir("benchmarks/hh_dimensions", args.out_dir)
    jax.config.update("jax_enable_x64", True)
    dt = hh_script.DEFAULTS.dt
    current = hh_script.authors_protocol(dt)
    clean = reference_voltage(HH_DEFAULTS, current, dt)
    noisy = clean + np.random.default_rng(args.seed).normal(0.0, args.noise_mV, clean.shape)
    files = {"I": write_csv(out / "current.csv", current),
             "V": write_csv(out / "voltage.csv", noisy)}
    return report(out, "hh_dimensions", args.noise_mV,
                  [run_size(out, files, ORDER[:n], args) for n in args.sizes])


if __name__ == "__main__":
    main()
