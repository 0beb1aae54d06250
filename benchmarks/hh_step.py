"""The HH model's step against a fine-step reference, and what each candidate step costs, side
by side in one run.

    python -m benchmarks.hh_step                   # 100 cells, the table of docs/RESULTS.md
    python -m benchmarks.hh_step --cells 10 --repeats 3

The reference: classic RK4 in float64 at dt / --fine of the same ODE (Traub-Miles rates written
out here again, compiled by numba), the current held over each sample interval as the model
holds it. The candidates: models/hh.py's exponential-Euler step in 1 to 4 substeps per sample,
the exponential midpoint rule (second-order Rush-Larsen) and classic RK4 on all four variables,
each one step per sample. Per candidate:
1. dt 0.01 ms, the HH script's five step currents, `--cells` cells drawn as
   benchmarks.population_fit draws them (benchmarks/kit/hh.py): RMS distance to the
   reference at each cell's truth, and the bias of gl, g_na, g_kd fitted (least squares from
   the truth) to the noise-free reference, the bias a fit inherits from the step.
2. 3 s sweeps (0.5 s off, 2 s on, 0.5 s off; --long_amps nA) of the default cell at each of
   --long_dts (recordings are sampled at 10-20 kHz): spike counts against the reference and
   the largest spike-time difference where the counts agree.
3. Cost per call, the calls interleaved (load on a shared machine hits each alike): a forward
   simulation, and the fitting loss's value and gradient (utils/fitting/objectives.py, forward
   mode over gl, g_na, g_kd) at --rows rows on the five step currents, and at 8 rows on one
   3 s sweep at dt 0.05 ms.
Prints the tables; writes results/benchmarks/hh_step.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import time
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numba
import numpy as np
from scipy.optimize import least_squares

import neuron_fitting_of_hh_model as hh_script
from benchmarks.kit.base import write_result
from benchmarks.kit.hh import FREE, draw_population
from models import hh
from models.spec import spike_times
from utils.fitting import make_objectives, problem_from_flags

Simulate = Callable[[dict, jax.Array, float], jax.Array]  # (params [P], current, dt) -> V

# --------------------------------------------------------------------------- the reference


@numba.njit(cache=True)
def _exprel(x: float) -> float:
    return 1.0 + x / 2.0 if abs(x) < 1e-9 else math.expm1(x) / x


@numba.njit(cache=True)
def _derivatives(v: float, m: float, h: float, n: float, i_ext: float,
                 q: np.ndarray) -> tuple[float, float, float, float]:
    """dV/dt, dm/dt, dh/dt, dn/dt; q = gl, g_na, g_kd, vth, C, EL, EK, ENa (Traub & Miles 1991)."""
    gl, g_na, g_kd, vt, c, e_l, e_k, e_na = q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]
    am, bm = 1.28 / _exprel((13.0 - v + vt) / 4.0), 1.4 / _exprel((v - vt - 40.0) / 5.0)
    ah, bh = 0.128 * math.exp((17.0 - v + vt) / 18.0), 4.0 / (1.0 + math.exp((40.0 - v + vt) / 5.0))
    an, bn = 0.16 / _exprel((15.0 - v + vt) / 5.0), 0.5 * math.exp((10.0 - v + vt) / 40.0)
    i_ion = g_na * m ** 3 * h * (v - e_na) + g_kd * n ** 4 * (v - e_k) + gl * (v - e_l)
    return ((i_ext - i_ion) / c, am * (1.0 - m) - bm * m, ah * (1.0 - h) - bh * h,
            an * (1.0 - n) - bn * n)


@numba.njit(cache=True)
def _rk4_trace(current: np.ndarray, dt: float, fine: int, q: np.ndarray) -> np.ndarray:
    """V at every sample of one trace, RK4 at dt / fine from V = -65 mV, m = h = n = 0."""
    out = np.empty(current.shape[0])
    v, m, h, n = -65.0, 0.0, 0.0, 0.0
    k = dt / fine
    for t in range(current.shape[0]):
        out[t] = v
        i = current[t]
        for _ in range(fine):
            a = _derivatives(v, m, h, n, i, q)
            b = _derivatives(v + k / 2 * a[0], m + k / 2 * a[1], h + k / 2 * a[2],
                             n + k / 2 * a[3], i, q)
            c = _derivatives(v + k / 2 * b[0], m + k / 2 * b[1], h + k / 2 * b[2],
                             n + k / 2 * b[3], i, q)
            d = _derivatives(v + k * c[0], m + k * c[1], h + k * c[2], n + k * c[3], i, q)
            v += k / 6 * (a[0] + 2 * b[0] + 2 * c[0] + d[0])
            m += k / 6 * (a[1] + 2 * b[1] + 2 * c[1] + d[1])
            h += k / 6 * (a[2] + 2 * b[2] + 2 * c[2] + d[2])
            n += k / 6 * (a[3] + 2 * b[3] + 2 * c[3] + d[3])
    return out


def reference(params: dict, current: np.ndarray, dt: float, fine: int) -> np.ndarray:
    """V [N, T] of one parameter set by the fine-step RK4."""
    q = np.array([params[k] for k in hh.HH_DEFAULTS], float)
    return np.stack([_rk4_trace(np.asarray(c, float), dt, fine, q) for c in current])


# --------------------------------------------------------------------------- the candidates

def _derivatives_jax(p: dict, state: tuple, i_ext: jax.Array) -> tuple:
    v, m, h, n = state
    vt = p["vth"]
    i_ion = (p["g_na"] * m ** 3 * h * (v - p["ENa"]) + p["g_kd"] * n ** 4 * (v - p["EK"])
             + p["gl"] * (v - p["EL"]))
    return ((i_ext - i_ion) / p["C"],
            *(a * (1.0 - x) - b * x for x, a, b in (
                (m, hh.alpha_m(v, vt), hh.beta_m(v, vt)), (h, hh.alpha_h(v, vt), hh.beta_h(v, vt)),
                (n, hh.alpha_n(v, vt), hh.beta_n(v, vt)))))


def rk4_step(p: dict, state: tuple, i_ext: jax.Array, dt: float) -> tuple:
    """Classic fourth-order Runge-Kutta on V, m, h, n."""
    def ahead(ks, c):
        return tuple(s + c * k for s, k in zip(state, ks))
    k1 = _derivatives_jax(p, state, i_ext)
    k2 = _derivatives_jax(p, ahead(k1, dt / 2), i_ext)
    k3 = _derivatives_jax(p, ahead(k2, dt / 2), i_ext)
    k4 = _derivatives_jax(p, ahead(k3, dt), i_ext)
    return tuple(s + dt / 6 * (a + 2 * b + 2 * c + d)
                 for s, a, b, c, d in zip(state, k1, k2, k3, k4))


def exp_midpoint_step(p: dict, state: tuple, i_ext: jax.Array, dt: float) -> tuple:
    """Exponential midpoint (second-order Rush-Larsen, Sundnes et al. 2009): every variable
    to dt / 2 with the coefficients at the start, then over dt with those at the midpoint."""
    v, *gates = state
    v_half = hh.voltage_step(p, v, gates, i_ext, dt / 2)
    gates_half = hh.gates_step(p, v, gates, dt / 2)
    return (hh.voltage_step(p, v, gates_half, i_ext, dt), *hh.gates_step(p, v_half, gates, dt))


def scan_simulate(step: Callable, params: dict, current: jax.Array, dt: float) -> tuple:
    """V [P, N, T] and no spike signal, one `step` per sample from the model's initial state."""
    p = {k: jnp.asarray(params[k])[:, None] for k in hh.HH_DEFAULTS}
    v0 = jnp.full((p["gl"].shape[0], current.shape[0]), hh.V_INIT_MV, dtype=current.dtype)
    zero = jnp.zeros_like(v0)

    def body(state, i_t):
        return step(p, state, i_t[None, :], dt), state[0]
    _, vs = jax.lax.scan(body, (v0, zero, zero, zero), current.T)
    v = jnp.moveaxis(vs, 0, -1)
    return v, jnp.zeros_like(v)


def candidates() -> dict[str, Callable]:
    """name -> simulate(params, current, dt) -> (V, spike signal)."""
    out = {f"exp. Euler x{k}" + (" (before)" if k == 1 else ""):
           partial(hh.simulate_hh, substeps=k) for k in (1, 2, 3, 4)}
    out["exp. midpoint (RL2)"] = partial(scan_simulate, exp_midpoint_step)
    out["RK4"] = partial(scan_simulate, rk4_step)
    return out


# --------------------------------------------------------------------------- accuracy

def cell_params(cells: dict[str, np.ndarray], c: int) -> dict[str, float]:
    return {**hh.HH_DEFAULTS, **{k: float(cells[k][c]) for k in FREE}}


def fit_bias(simulate: Callable, truth: dict, target: np.ndarray, current: jax.Array,
             dt: float) -> np.ndarray:
    """Relative error of gl, g_na, g_kd fitted by least squares (log scale, from the truth) to
    a noise-free target."""
    run = jax.jit(lambda x: (simulate({**{k: jnp.array([v]) for k, v in truth.items()},
                                       **{k: jnp.exp(x[i])[None] for i, k in enumerate(FREE)}},
                                      current, dt)[0][0] - target).ravel())
    jac = jax.jit(jax.jacfwd(run))
    x0 = np.log([truth[k] for k in FREE])
    sol = least_squares(lambda x: np.asarray(run(x)), x0, jac=lambda x: np.asarray(jac(x)),
                        xtol=1e-12, ftol=1e-12, gtol=1e-12)
    return np.expm1(sol.x - x0)


def accuracy_short(sims: dict, n_cells: int, seed: int, fine: int) -> dict:
    """Per candidate: RMS to the reference at each cell's truth and the fitted parameters'
    bias, on the HH script's protocol at its dt."""
    dt = hh_script.DEFAULTS.dt
    current = hh_script.authors_protocol(dt)
    cells = draw_population(n_cells, seed, hh.HH_DEFAULTS, 0.5)
    refs = [reference(cell_params(cells, c), current, dt, fine) for c in range(n_cells)]
    out = {}
    for name, sim in sims.items():
        run = jax.jit(sim, static_argnums=2)
        rms, bias = [], []
        for c, ref in enumerate(refs):
            truth = cell_params(cells, c)
            v = np.asarray(run({k: np.array([x]) for k, x in truth.items()}, current, dt)[0][0])
            rms.append(float(np.sqrt(np.mean((v - ref) ** 2))))
            bias.append(fit_bias(sim, truth, ref, jnp.asarray(current), dt))
        bias = 100 * np.array(bias)
        out[name] = {"rms_mV_median": float(np.median(rms)), "rms_mV_max": float(max(rms)),
                     "bias_pct_median": dict(zip(FREE, np.median(bias, 0).tolist())),
                     "bias_pct_worst": dict(zip(FREE, bias[np.abs(bias).argmax(0),
                                                           range(len(FREE))].tolist()))}
        print(f"{name}: RMS {out[name]['rms_mV_median']:.4f} mV (max "
              f"{out[name]['rms_mV_max']:.3f}); bias median % " + ", ".join(
                  f"{k} {v:+.3f}" for k, v in out[name]["bias_pct_median"].items()), flush=True)
    return out


def long_sweeps(dt: float, amps: list[float]) -> np.ndarray:
    """[len(amps), 3 s / dt] nA: 0.5 s off, 2 s at each amplitude, 0.5 s off."""
    current = np.zeros((len(amps), int(round(3000.0 / dt))))
    current[:, int(round(500.0 / dt)):int(round(2500.0 / dt))] = np.asarray(amps)[:, None]
    return current


def accuracy_long(sims: dict, dt: float, amps: list[float], fine: int) -> dict:
    """Per candidate at dt: spike counts and spike-time differences against the reference."""
    current = long_sweeps(dt, amps)
    ref = spike_times(reference(hh.HH_DEFAULTS, current, dt, fine), hh.SPIKE_THRESHOLD_MV, dt)
    out = {"reference_counts": [len(s) for s in ref]}
    p = {k: np.array([v]) for k, v in hh.HH_DEFAULTS.items()}
    for name, sim in sims.items():
        v = np.asarray(jax.jit(sim, static_argnums=2)(p, jnp.asarray(current), dt)[0][0])
        ours = spike_times(v, hh.SPIKE_THRESHOLD_MV, dt)
        same = [len(a) == len(b) for a, b in zip(ours, ref)]
        shift = [float(np.abs(a - b).max(initial=0.0)) for a, b, s in zip(ours, ref, same) if s]
        out[name] = {"finite": bool(np.isfinite(v).all()), "counts": [len(s) for s in ours],
                     "traces_miscounted": same.count(False),
                     "max_spike_shift_ms": max(shift, default=None)}
        print(f"dt {dt}: {name}: {out[name]}", flush=True)
    return out


# --------------------------------------------------------------------------- cost

def timers(sim: Callable, problem, rows: int) -> dict[str, Callable]:
    """Callables timing one forward call and one value-and-gradient call of the fitting loss
    at `rows` rows, for this candidate step."""
    model = dataclasses.replace(problem.model, simulate=sim)
    fn = make_objectives(dataclasses.replace(problem, model=model)).real.value_and_grad
    z = np.random.default_rng(0).uniform(0.3, 0.7, (rows, len(problem.free)))
    params = {k: np.full(rows, v) for k, v in hh.HH_DEFAULTS.items()}
    forward = jax.jit(sim, static_argnums=2)
    current = jnp.asarray(problem.current)
    return {"forward": lambda: jax.block_until_ready(forward(params, current, problem.dt)),
            "value+grad": lambda: fn(z)}


def time_interleaved(calls: dict[tuple, Callable], repeats: int) -> dict[tuple, float]:
    """Median ms of each call over `repeats` rounds, one call of each per round (after one
    compiling call each)."""
    for call in calls.values():
        call()
    times = {k: [] for k in calls}
    for _ in range(repeats):
        for k, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * float(np.median(v)) for k, v in times.items()}


def cost(sims: dict, rows: list[int], repeats: int, fine: int) -> dict:
    """ms per call: forward and value+grad, each candidate and size."""
    short = problem_from_flags(hh_script.DEFAULTS, ["--fit", ",".join(FREE), "--presearch",
                                                    "off"])
    dt_long = 0.05
    current = long_sweeps(dt_long, [0.5])
    long = dataclasses.replace(short, current=current, dt=dt_long, spikes_target=None,
                               v_target=reference(hh.HH_DEFAULTS, current, dt_long, 10))
    sizes = [(f"5 x {short.current.shape[1]} samples, {r} rows", short, r) for r in rows]
    sizes.append((f"1 x {current.shape[1]} samples (dt {dt_long}), 8 rows", long, 8))
    out = {}
    for label, problem, r in sizes:
        calls = {(name, kind): f for name, sim in sims.items()
                 for kind, f in timers(sim, problem, r).items()}
        ms = time_interleaved(calls, repeats)
        out[label] = {name: {kind: ms[(name, kind)] for kind in ("forward", "value+grad")}
                      for name in sims}
        print(label, out[label], flush=True)
    return out


# --------------------------------------------------------------------------- report

def report(result: dict) -> str:
    """Markdown: the accuracy table, the long sweeps, the cost."""
    sims = list(result["short"])
    lines = ["| step | RMS to reference, median / max mV | " + " | ".join(
        f"{k} bias median / worst %" for k in FREE) + " |", "|---|---|" + "---|" * len(FREE)]
    for name in sims:
        s = result["short"][name]
        lines.append(f"| {name} | {s['rms_mV_median']:.4f} / {s['rms_mV_max']:.3f} | " + " | ".join(
            f"{s['bias_pct_median'][k]:+.3f} / {s['bias_pct_worst'][k]:+.3f}" for k in FREE) + " |")
    for dt, long in result["long"].items():
        lines += ["", f"3 s sweeps at dt {dt} ms, reference spike counts "
                  f"{long['reference_counts']}:", "",
                  "| step | finite | traces miscounted | largest spike shift ms |",
                  "|---|---|---|---|"]
        for name in sims:
            s = long[name]
            shift = "-" if s["max_spike_shift_ms"] is None else f"{s['max_spike_shift_ms']:.3f}"
            lines.append(f"| {name} | {s['finite']} | {s['traces_miscounted']} | {shift} |")
    for label, by_name in result["cost"].items():
        base = by_name[sims[0]]
        lines += ["", f"Cost, {label} (ms per call, x the step before):", "",
                  "| step | forward | value+grad |", "|---|---|---|"]
        for name in sims:
            c = by_name[name]
            lines.append(f"| {name} | " + " | ".join(
                f"{c[k]:.1f} ({c[k] / base[k]:.1f}x)" for k in ("forward", "value+grad")) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=100, help="cells of the accuracy table")
    p.add_argument("--seed", type=int, default=0, help="seed of the cells (as population_fit)")
    p.add_argument("--fine", type=int, default=100, help="reference RK4 steps per sample")
    p.add_argument("--long_dts", default="0.05,0.1", help="sample intervals (ms) of the 3 s "
                   "sweeps, comma list")
    p.add_argument("--long_amps", default="0.1,0.2,0.5,1,2", help="step currents (nA) of the "
                   "3 s sweeps, comma list")
    p.add_argument("--rows", default="8,32,128", help="rows per call timed, comma list")
    p.add_argument("--repeats", type=int, default=7, help="timed rounds of calls")
    p.add_argument("--out_dir", default=None,
                   help="folder of hh_step.json (default results/benchmarks/)")
    args = p.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # as the fitting scripts simulate
    sims = candidates()
    amps = [float(a) for a in args.long_amps.split(",")]
    result = {"short": accuracy_short(sims, args.cells, args.seed, args.fine),
              "long": {dt: accuracy_long(sims, float(dt), amps, args.fine)
                       for dt in args.long_dts.split(",")},
              "cost": cost(sims, [int(r) for r in args.rows.split(",")], args.repeats,
                           args.fine)}
    result["table"] = report(result)
    print("\n" + result["table"])
    write_result("hh_step", result, args.out_dir)
    return result


if __name__ == "__main__":
    main()
