"""HH fitting against peers on the same recordings, in one run: this project's default gradient
fit (a fresh process, as a user runs it) and Brian2 driven by nevergrad DE (brian2modelfitting's
method, benchmarks/brian2_fit.py in its own virtual environment).

    python -m benchmarks.hh_peers                      # 1 mV noise, gl, g_na, g_kd free
    python -m benchmarks.hh_peers --brian2_python .venv-brian2/bin/python

The recordings are the authors' five step protocols (dt 0.01 ms) simulated with an accurate
integrator that this project's model code does not use (scipy's LSODA, rtol = atol = 1e-10,
one constant-current segment at a time), plus Gaussian noise. The run reports how far each
simulator's own integration (ours at dt; Brian2's RK4 at dt) is from that reference, then for
each fitter: seconds to the noise floor (RMSE within 3% of the noise, from its best-so-far
history; process start-up excluded, compilation included), the whole run as a user waits for
it (fresh process, wall clock), final RMSE / noise and the largest parameter error.
With --repeats N our warm run and Brian2 + DE run N times, in pairs one after the other; the
table gives medians, the result every run and each pair's ratio of our whole run to Brian2's
time to the floor.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np

import neuron_fitting_of_hh_model as hh_script
from benchmarks.kit.base import run_folder, time_to, write_csv, write_result
from benchmarks.kit.hh import FLOOR, FREE, noisy_recordings, reference_voltage
from benchmarks.kit.peers import BRIAN2_FIT, add_brian2_python, run_fit_script, run_peer
from models.hh import HH_DEFAULTS, simulate_hh
from utils.settings import positive_float, positive_int


def run_ours(out: Path, files: dict, dt: float, seed: int, extra: list, name: str) -> dict:
    """The default gradient fit in a fresh process, as the README tells a user to run it, with
    its compilation cache in out/jax_cache (empty at the first call: cold; then warm)."""
    flags = ["--data_current", str(files["I"]), "--data_voltage", str(files["V"]), "--dt", str(dt),
             "--fit", ",".join(FREE), "--fix", f"vth={HH_DEFAULTS['vth']}",
             "--methods", "gradient", "--seed", str(seed),
             "--spike_weight", "0",  # the model's own recordings: the plain MSE
             *extra]
    metrics, whole = run_fit_script("neuron_fitting_of_hh_model.py", flags, out / name,
                                    cache=out / "jax_cache")
    r = metrics["methods"]["gradient"]
    return {"whole_s": whole, "history": r.get("history", []), "mse": r["loss"],
            "params": r["params"], "n_evals": r["n_evals"], "optimizer_s": r["wall_s"]}


def summary(name: str, r: dict, noise: float) -> dict:
    """One table row: time to the noise floor, whole run, final RMSE / noise, parameter error."""
    err = max(abs(r["params"][k] / HH_DEFAULTS[k] - 1.0) for k in FREE)
    return {"fitter": name, "to_floor_s": time_to(r["history"], (FLOOR * noise) ** 2),
            "whole_s": r["whole_s"], "rmse_over_noise": float(np.sqrt(r["mse"]) / noise),
            "max_rel_err": err, "n_evals": r["n_evals"]}


def median_row(name: str, runs: list) -> dict:
    """The row of repeated runs of one fitter (summaries): medians of its times, every run's
    times under `runs_*` (a run that never reached the floor counts as the slowest)."""
    floors = [r["to_floor_s"] for r in runs]
    median_floor = float(np.median([np.inf if t is None else t for t in floors]))
    return {**runs[0], "fitter": name,
            "to_floor_s": None if np.isinf(median_floor) else median_floor,
            "whole_s": float(np.median([r["whole_s"] for r in runs])),
            "runs_to_floor_s": floors, "runs_whole_s": [r["whole_s"] for r in runs]}


def markdown(rows: list) -> str:
    lines = ["| fitter | s to noise floor (median (runs)) | whole run s (median (runs)) | "
             "RMSE / noise | max param error | sims |",
             "|---|---|---|---|---|---|"]

    def seconds(t: float | None) -> str:
        return "never" if t is None else f"{t:.2f}"

    def cell(r: dict, key: str) -> str:  # a median with every run after it
        runs = r.get(f"runs_{key}")
        return seconds(r[key]) + (f" ({' / '.join(map(seconds, runs))})" if runs else "")

    for r in rows:
        lines.append(f"| {r['fitter']} | {cell(r, 'to_floor_s')} | {cell(r, 'whole_s')} | "
                     f"{r['rmse_over_noise']:.3f} | {100 * r['max_rel_err']:.2f}% | "
                     f"{r['n_evals']} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--noise_mV", type=positive_float, default=1.0, help="recording noise")
    p.add_argument("--seed", type=int, default=0, help="noise and optimizer seed")
    p.add_argument("--repeats", type=positive_int, default=3,
                   help="runs of our warm fit and of Brian2 + DE, in pairs (medians reported)")
    add_brian2_python(p)
    p.add_argument("--brian2_rounds", type=int, default=30,
                   help="DE rounds of 100 candidates at most (it stops at the noise floor)")
    p.add_argument("--jaxley_steps", type=int, default=1000,
                   help="Adam steps of the jaxley peer at most (0 skips it; it stops at the floor)")
    p.add_argument("--ours", default="", help="extra flags for this project's fit, quoted")
    p.add_argument("--out_dir", default=None, help="run folder")
    args = p.parse_args(argv)
    out = run_folder("hh_peers", args.out_dir)
    jax.config.update("jax_enable_x64", True)  # as the fitting scripts simulate
    dt = hh_script.DEFAULTS.dt
    current = hh_script.authors_protocol(dt)
    files, clean = noisy_recordings(out, args.noise_mV, args.seed)
    files["V_clean"] = write_csv(out / "voltage_clean.csv", clean)
    finer = reference_voltage(HH_DEFAULTS, current, dt, tol=1e-12)
    v_ours = np.asarray(simulate_hh({k: np.array([v]) for k, v in HH_DEFAULTS.items()},
                                    current, dt)[0][0])
    accuracy = {"reference_tol_1e-10_vs_1e-12_mse": float(np.mean((clean - finer) ** 2)),
                "ours_dt_vs_reference_mse": float(np.mean((v_ours - clean) ** 2))}
    ours = "this project, --methods gradient (default starts)"

    def fit_ours(name: str) -> dict:
        return summary(ours, run_ours(out, files, dt, args.seed, args.ours.split(), name),
                       args.noise_mV)

    rows = [{**fit_ours("ours_cold"), "fitter": f"{ours}, cold compilation cache"}]
    peers = {}
    truth = ["--evaluate", json.dumps({k: HH_DEFAULTS[k] for k in FREE})]
    clean_files = {"I": files["I"], "V": files["V_clean"]}
    target = ["--target_mse", str((FLOOR * args.noise_mV) ** 2)]
    brian2 = [args.brian2_python, str(BRIAN2_FIT)] if args.brian2_python else None
    if brian2:
        accuracy["brian2_rk4_dt_vs_reference_mse"] = run_peer(
            brian2, clean_files, dt, args.seed, ["--popsize", "1", *truth])["best_mse"]
    warm, brian2_runs = [], []
    for k in range(args.repeats):  # in pairs: the two runs of a pair see the same machine
        warm.append(fit_ours(f"ours_warm_{k}"))
        if brian2:
            peers["brian2"] = run_peer(brian2, files, dt, args.seed,
                                       ["--rounds", str(args.brian2_rounds), *target])
            brian2_runs.append(summary("Brian2", peers["brian2"], args.noise_mV))
    rows.append(median_row(f"{ours}, warm compilation cache", warm))
    ratios = None
    if brian2:
        rows.append(median_row("Brian2 2.9 (Cython, RK4) + nevergrad DE, 100 per round",
                               brian2_runs))
        ratios = [w["whole_s"] / b["to_floor_s"] for w, b in zip(warm, brian2_runs)
                  if b["to_floor_s"] is not None]
    if args.jaxley_steps:
        jaxley = [sys.executable, "-m", "benchmarks.jaxley_hh_fit"]
        accuracy["jaxley_crank_nicolson_dt_vs_reference_mse"] = run_peer(
            jaxley, clean_files, dt, args.seed, truth)["best_mse"]
        peers["jaxley"] = run_peer(jaxley, files, dt, args.seed,
                                   ["--steps", str(args.jaxley_steps), *target])
        rows.append(summary("jaxley 0.14 (Crank-Nicolson) + Adam, its documented fit",
                            peers["jaxley"], args.noise_mV))
    table = markdown(rows)
    result = {"noise_mV": args.noise_mV, "dt_ms": dt, "accuracy": accuracy, "rows": rows,
              "peers": peers, "table": table, "ours_warm_whole_over_brian2_to_floor": ratios}
    print("integration error against the reference (MSE, mV^2):",
          ", ".join(f"{k} {v:.3g}" for k, v in accuracy.items()))
    print(table)
    if ratios is not None:
        print("our warm whole run / Brian2 + DE's time to the floor, pair by pair:",
              ", ".join(f"{r:.2f}x" for r in ratios))
    write_result("hh_peers", result, out)
    return result


if __name__ == "__main__":
    main()
