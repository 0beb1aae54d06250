"""GIF fitting as the number of free parameters grows: 4 (a, b, k1, k2) and 8 (+ tau, R, A1,
A2), by this project's gradient, lm, DE and PSO (one fresh run of the script each size) and by
Brian2 + nevergrad DE when its environment is set up (README, "Benchmarks").

    python -m benchmarks.gif_dimensions
    python -m benchmarks.gif_dimensions --sizes 8 --budget 6000

The recordings are the script's target simulated at a 10x finer step (dt 0.01 ms, sampled
every 0.1 ms, the fitting dt) plus Gaussian noise, so a fit also meets the integrator's own
error; the spike times come from that fine run (as a user passes detected spikes with
--data_spikes). Brian2 integrates exactly between its steps but resets at the end of the step
in which V passed the threshold, so it runs 10 steps per sample (dt 0.01 ms); the run reports
how far each simulator is from the reference at the truth. For each method: seconds to the
noise floor (RMSE within 3% of the noise) from its best-so-far history, its whole time, final
RMSE / noise, largest parameter error, and the best loss each method had reached at the wall
time L-BFGS-B needed in all (equal wall time).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import neuron_fitting_of_gif_model as gif_script
from benchmarks.kit.base import run_folder, write_csv
from benchmarks.kit.peers import (BRIAN2_FIT, add_brian2_python, brian2_run, run_fit_script,
                                  run_peer)
from benchmarks.kit.sizes import report, size_rows
from models.gif import GIF, gif_spike_times
from utils.fitting.problem import simulate_cell
from utils.run import positive_float, positive_int

ORDER = ("a", "b", "k1", "k2", "tau", "R", "A1", "A2")
METHODS = ("gradient", "lm", "DE", "PSO")
FINE = 10  # the recordings' integration step is dt / FINE
BRIAN2 = ["--model", "gif", "--method", "exact", "--substeps", str(FINE)]


def recordings(out: Path, noise_mV: float, seed: int) -> dict:
    """current.csv, voltage.csv (fine-step run sampled at dt, plus noise), voltage_clean.csv
    (without the noise) and spikes.csv."""
    dt = gif_script.DEFAULTS.dt
    v_fine, s_fine = simulate_cell(GIF, gif_script.TRUTH,
                                   gif_script.authors_protocol(dt / FINE), dt / FINE)
    v = v_fine[:, ::FINE]
    spikes = gif_spike_times(None, s_fine, dt / FINE)
    noisy = v + np.random.default_rng(seed).normal(0.0, noise_mV, v.shape)
    (out / "spikes.csv").write_text("\n".join(",".join(f"{t:.6f}" for t in row)
                                              for row in spikes) + "\n")
    return {"I": write_csv(out / "current.csv", gif_script.authors_protocol(dt)),
            "V": write_csv(out / "voltage.csv", noisy), "S": out / "spikes.csv",
            "V_clean": write_csv(out / "voltage_clean.csv", v)}


def accuracy(files: dict, brian2_python: str, seed: int) -> dict:
    """MSE (mV^2) at the truth against the fine-step reference: this project at dt, and Brian2
    as the benchmark runs it."""
    dt = gif_script.DEFAULTS.dt
    ours, _ = simulate_cell(GIF, gif_script.TRUTH, gif_script.authors_protocol(dt), dt)
    clean = np.loadtxt(files["V_clean"], delimiter=",")
    out = {"ours_dt_vs_reference_mse": float(np.mean((ours - clean) ** 2))}
    if brian2_python:
        truth = json.dumps({k: gif_script.TRUTH[k] for k in ORDER})
        out["brian2_vs_reference_mse"] = run_peer(
            [brian2_python, str(BRIAN2_FIT)],
            {"I": files["I"], "V": files["V_clean"]}, dt, seed,
            [*BRIAN2, "--popsize", "1", "--evaluate", truth], free=ORDER,
            truth=gif_script.TRUTH, all_bounds=gif_script.BOUNDS)["best_mse"]
    return out


def run_size(out: Path, files: dict, free: tuple, args: argparse.Namespace) -> dict:
    """One fit of `free` (the other parameters fixed at the truth) by every method."""
    fixed = [k for k in gif_script.TRUTH if k not in free]
    flags = ["--data_current", str(files["I"]), "--data_voltage", str(files["V"]),
             "--data_spikes", str(files["S"]), "--dt", str(gif_script.DEFAULTS.dt),
             "--fit", ",".join(free),
             "--fix", ",".join(f"{k}={gif_script.TRUTH[k]}" for k in fixed),
             "--methods", ",".join(METHODS), "--budget", str(args.budget), "--popsize", "100",
             "--seed", str(args.seed)]
    metrics, _ = run_fit_script("neuron_fitting_of_gif_model.py", flags, out / f"ours_{len(free)}")
    runs = {m: {**r, "mse": r["loss"]} for m, r in metrics["methods"].items()}
    if args.brian2_python:
        runs["Brian2 + DE"] = brian2_run(args.brian2_python, files, gif_script.DEFAULTS.dt,
                                         args.seed, [*BRIAN2, "--rounds",
                                                     str(args.budget // 100)], free,
                                         truth=gif_script.TRUTH, all_bounds=gif_script.BOUNDS)
    return size_rows(runs, free, args.noise_mV, gif_script.TRUTH)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[4, 8], choices=[4, 8])
    p.add_argument("--noise_mV", type=positive_float, default=0.5)
    p.add_argument("--budget", type=positive_int, default=3000,
                   help="simulations of DE, PSO and Brian2 + DE (rounds of 100)")
    add_brian2_python(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out_dir", default=None)
    args = p.parse_args(argv)
    out = run_folder("gif_dimensions", args.out_dir)
    files = recordings(out, args.noise_mV, args.seed)
    errors = accuracy(files, args.brian2_python, args.seed)
    print("integration error at the truth against the reference (MSE, mV^2):",
          ", ".join(f"{k} {v:.3g}" for k, v in errors.items()))
    return report(out, "gif_dimensions", args.noise_mV,
                  [run_size(out, files, ORDER[:n], args) for n in args.sizes],
                  accuracy=errors)


if __name__ == "__main__":
    main()
