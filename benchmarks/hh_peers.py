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
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
from scipy.integrate import solve_ivp

import neuron_fitting_of_hh_model as hh_script
from models.hh import HH_DEFAULTS, simulate_hh
from utils.run import atomic_write_json, make_out_dir, positive_float

FREE = ("gl", "g_na", "g_kd")
FLOOR = 1.03  # the noise floor: RMSE within 3% of the noise
ROOT = Path(__file__).resolve().parents[1]


def _rates(v: float, vt: float) -> tuple[float, ...]:
    """Traub-Miles opening and closing rates (1/ms) at v (mV), as in Brian2's HH examples."""
    def exprel(x: float) -> float:
        return 1.0 + x / 2.0 if abs(x) < 1e-6 else np.expm1(x) / x
    return (0.32 * 4.0 / exprel((13.0 - v + vt) / 4.0), 0.28 * 5.0 / exprel((v - vt - 40.0) / 5.0),
            0.128 * np.exp((17.0 - v + vt) / 18.0), 4.0 / (1.0 + np.exp((40.0 - v + vt) / 5.0)),
            0.032 * 5.0 / exprel((15.0 - v + vt) / 5.0), 0.5 * np.exp((10.0 - v + vt) / 40.0))


def _rhs(p: dict, i_ext: float):
    def f(t, y):
        v, m, h, n = y
        am, bm, ah, bh, an, bn = _rates(v, p["vth"])
        i_ion = (p["gl"] * (p["EL"] - v) - p["g_na"] * m ** 3 * h * (v - p["ENa"])
                 - p["g_kd"] * n ** 4 * (v - p["EK"]))
        return [(i_ion + i_ext) / p["C"], am * (1 - m) - bm * m, ah * (1 - h) - bh * h,
                an * (1 - n) - bn * n]
    return f


def reference_voltage(p: dict, current: np.ndarray, dt: float, tol: float = 1e-10) -> np.ndarray:
    """V [N, T] at t = k dt from V = -65 mV, m = h = n = 0, integrating each constant-current
    segment with LSODA at rtol = atol = `tol`."""
    out = np.empty_like(current)
    for j, trace in enumerate(current):
        y = np.array([-65.0, 0.0, 0.0, 0.0])
        out[j, 0] = y[0]
        edges = np.flatnonzero(np.diff(trace)) + 1
        for start, stop in zip(np.r_[0, edges], np.r_[edges, len(trace)]):
            t_eval = np.arange(start, stop + 1) * dt
            sol = solve_ivp(_rhs(p, float(trace[start])), (t_eval[0], t_eval[-1]), y,
                            method="LSODA", t_eval=t_eval, rtol=tol, atol=tol)
            keep = min(stop + 1, len(trace)) - start
            out[j, start:start + keep] = sol.y[0, :keep]
            y = sol.y[:, -1]
    return out


def write_csv(path: Path, rows: np.ndarray) -> Path:
    np.savetxt(path, rows, delimiter=",", fmt="%.10g")
    return path


def brian2_python(path: str) -> str:
    """argparse type of --brian2_python: the path, or '' (skip the Brian2 peer) when it is ''
    or does not exist, with a line saying so."""
    if path and not Path(path).exists():
        print(f"no Brian2 environment at {path} (README, 'Benchmarks'): its rows are skipped",
              file=sys.stderr)
        return ""
    return path


def time_to(history: list, level: float) -> float | None:
    """Seconds at which a best-so-far history [[s, n, best], ...] first reaches `level`."""
    return next((h[0] for h in history if h[2] <= level), None)


def run_ours(out: Path, files: dict, dt: float, seed: int, extra: list, name: str) -> dict:
    """The default gradient fit in a fresh process, as the README tells a user to run it, with
    its compilation cache in out/jax_cache (empty at the first call: cold; then warm)."""
    argv = [sys.executable, "neuron_fitting_of_hh_model.py", "--data_current", str(files["I"]),
            "--data_voltage", str(files["V"]), "--dt", str(dt), "--fit", ",".join(FREE),
            "--fix", f"vth={HH_DEFAULTS['vth']}", "--methods", "gradient", "--seed", str(seed),
            "--spike_weight", "0",  # the model's own recordings: the plain MSE
            "--out_dir", str(out / name), *extra]
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True,
                   env={**os.environ, "MPLBACKEND": "Agg",
                        "JAX_COMPILATION_CACHE_DIR": str(out / "jax_cache")})
    whole = time.perf_counter() - t0
    r = json.loads((out / name / "metrics.json").read_text())["methods"]["gradient"]
    return {"whole_s": whole, "history": r.get("history", []), "mse": r["loss"],
            "params": r["params"], "n_evals": r["n_evals"], "optimizer_s": r["wall_s"]}


def run_peer(command: list, files: dict, dt: float, seed: int, extra: list,
             free: tuple = FREE, truth: dict = HH_DEFAULTS,
             all_bounds: dict = hh_script.BOUNDS) -> dict:
    """A peer fitter (benchmarks/brian2_fit.py or jaxley_hh_fit.py) in a fresh process,
    fitting `free` within `all_bounds` with the others fixed at the `truth`; its JSON, plus
    the whole time."""
    fixed = {k: v for k, v in truth.items() if k not in free}
    bounds = {k: all_bounds[k] for k in free}
    argv = [*command, "--current", str(files["I"]), "--voltage", str(files["V"]), "--dt", str(dt),
            "--fixed", json.dumps(fixed), "--bounds", json.dumps(bounds), "--seed", str(seed),
            *extra]
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["mse"] = result["best_mse"]
    result["whole_s"] = time.perf_counter() - t0
    return result


def summary(name: str, r: dict, noise: float) -> dict:
    """One table row: time to the noise floor, whole run, final RMSE / noise, parameter error."""
    err = max(abs(r["params"][k] / HH_DEFAULTS[k] - 1.0) for k in FREE)
    return {"fitter": name, "to_floor_s": time_to(r["history"], (FLOOR * noise) ** 2),
            "whole_s": r["whole_s"], "rmse_over_noise": float(np.sqrt(r["mse"]) / noise),
            "max_rel_err": err, "n_evals": r["n_evals"]}


def markdown(rows: list) -> str:
    lines = ["| fitter | s to noise floor | whole run s | RMSE / noise | max param error | sims |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        floor = "never" if r["to_floor_s"] is None else f"{r['to_floor_s']:.2f}"
        lines.append(f"| {r['fitter']} | {floor} | {r['whole_s']:.2f} | "
                     f"{r['rmse_over_noise']:.3f} | {100 * r['max_rel_err']:.2f}% | "
                     f"{r['n_evals']} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--noise_mV", type=positive_float, default=1.0, help="recording noise")
    p.add_argument("--seed", type=int, default=0, help="noise and optimizer seed")
    p.add_argument("--brian2_python", type=brian2_python,
                   default=str(ROOT / ".venv-brian2" / "bin" / "python"),
                   help="the Python of the Brian2 environment ('' skips the Brian2 peer)")
    p.add_argument("--brian2_rounds", type=int, default=30,
                   help="DE rounds of 100 candidates at most (it stops at the noise floor)")
    p.add_argument("--jaxley_steps", type=int, default=1000,
                   help="Adam steps of the jaxley peer at most (0 skips it; it stops at the floor)")
    p.add_argument("--ours", default="", help="extra flags for this project's fit, quoted")
    p.add_argument("--out_dir", default=None, help="run folder")
    args = p.parse_args(argv)
    out = make_out_dir("benchmarks/hh_peers", args.out_dir)
    jax.config.update("jax_enable_x64", True)  # as the fitting scripts simulate
    dt = hh_script.DEFAULTS.dt
    current = hh_script.authors_protocol(dt)
    clean = reference_voltage(HH_DEFAULTS, current, dt)
    finer = reference_voltage(HH_DEFAULTS, current, dt, tol=1e-12)
    v_ours = np.asarray(simulate_hh({k: np.array([v]) for k, v in HH_DEFAULTS.items()},
                                    current, dt)[0][0])
    noisy = clean + np.random.default_rng(args.seed).normal(0.0, args.noise_mV, clean.shape)
    files = {"I": write_csv(out / "current.csv", current),
             "V": write_csv(out / "voltage.csv", noisy),
             "V_clean": write_csv(out / "voltage_clean.csv", clean)}
    accuracy = {"reference_tol_1e-10_vs_1e-12_mse": float(np.mean((clean - finer) ** 2)),
                "ours_dt_vs_reference_mse": float(np.mean((v_ours - clean) ** 2))}
    rows = [summary(f"this project, --methods gradient (default starts), {cache} compilation "
                    "cache", run_ours(out, files, dt, args.seed, args.ours.split(),
                                      f"ours_{cache}"), args.noise_mV)
            for cache in ("cold", "warm")]
    peers = {}
    truth = ["--evaluate", json.dumps({k: HH_DEFAULTS[k] for k in FREE})]
    clean_files = {"I": files["I"], "V": files["V_clean"]}
    target = ["--target_mse", str((FLOOR * args.noise_mV) ** 2)]
    if args.brian2_python:
        brian2 = [args.brian2_python, str(ROOT / "benchmarks" / "brian2_fit.py")]
        accuracy["brian2_rk4_dt_vs_reference_mse"] = run_peer(
            brian2, clean_files, dt, args.seed, ["--popsize", "1", *truth])["best_mse"]
        peers["brian2"] = run_peer(brian2, files, dt, args.seed,
                                   ["--rounds", str(args.brian2_rounds), *target])
        rows.append(summary("Brian2 2.9 (Cython, RK4) + nevergrad DE, 100 per round",
                            peers["brian2"], args.noise_mV))
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
              "peers": peers, "table": table}
    atomic_write_json(out / "hh_peers.json", result)
    print("integration error against the reference (MSE, mV^2):",
          ", ".join(f"{k} {v:.3g}" for k, v in accuracy.items()))
    print(table)
    return result


if __name__ == "__main__":
    main()
