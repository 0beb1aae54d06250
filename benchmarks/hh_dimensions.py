"""HH fitting as the number of free parameters grows: 3 (gl, g_na, g_kd), 6 (+ vth, C, EL) and
8 (+ EK, ENa), on accurate recordings with noise (those of benchmarks/hh_peers.py), by this
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
from pathlib import Path

import jax

import neuron_fitting_of_hh_model as hh_script
from benchmarks.kit.base import run_folder
from benchmarks.kit.hh import noisy_recordings
from benchmarks.kit.peers import add_brian2_python, brian2_run, run_fit_script
from benchmarks.kit.sizes import report, size_rows
from models.hh import HH_DEFAULTS
from utils.run import positive_float, positive_int

ORDER = ("gl", "g_na", "g_kd", "vth", "C", "EL", "EK", "ENa")
METHODS = ("gradient", "lm", "DE", "PSO")


def run_size(out: Path, files: dict, free: tuple, args: argparse.Namespace) -> dict:
    """One fit of `free` by every method of this project, and by Brian2 + DE."""
    fixed = [k for k in ORDER if k not in free]
    flags = ["--data_current", str(files["I"]), "--data_voltage", str(files["V"]),
             "--dt", str(hh_script.DEFAULTS.dt),
             "--spike_weight", "0",  # the model's own recordings: the plain MSE
             "--fit", ",".join(free), "--methods", ",".join(METHODS), "--budget",
             str(args.budget), "--popsize", "100", "--seed", str(args.seed)]
    if fixed:
        flags += ["--fix", ",".join(f"{k}={HH_DEFAULTS[k]}" for k in fixed)]
    metrics, _ = run_fit_script("neuron_fitting_of_hh_model.py", flags, out / f"ours_{len(free)}")
    runs = {m: {"history": r["history"], "mse": r["loss"], "params": r["params"],
                "wall_s": r["wall_s"], "n_evals": r["n_evals"]}
            for m, r in metrics["methods"].items()}
    if args.brian2_python:
        runs["Brian2 + DE"] = brian2_run(args.brian2_python, files, hh_script.DEFAULTS.dt,
                                         args.seed, ["--rounds", str(args.budget // 100)], free)
    return size_rows(runs, free, args.noise_mV, HH_DEFAULTS)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[3, 6, 8], choices=[3, 6, 8])
    p.add_argument("--noise_mV", type=positive_float, default=1.0)
    p.add_argument("--budget", type=positive_int, default=3000,
                   help="simulations of DE, PSO and Brian2 + DE (rounds of 100)")
    p.add_argument("--seed", type=int, default=0)
    add_brian2_python(p)
    p.add_argument("--out_dir", default=None)
    args = p.parse_args(argv)
    out = run_folder("hh_dimensions", args.out_dir)
    jax.config.update("jax_enable_x64", True)
    files, _ = noisy_recordings(out, args.noise_mV, args.seed)
    return report(out, "hh_dimensions", args.noise_mV,
                  [run_size(out, files, ORDER[:n], args) for n in args.sizes])


if __name__ == "__main__":
    main()
