"""The HH problem of the fitting benchmarks: the parameters fitted, the noise floor, an
accurate reference simulation, noisy recordings, and populations of cells drawn around the
defaults."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

import neuron_fitting_of_hh_model as hh_script
from benchmarks.kit.base import write_csv
from models.hh import HH_DEFAULTS

FREE = ("gl", "g_na", "g_kd")
FLOOR = 1.03  # the noise floor: RMSE within 3% of the noise


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


def noisy_recordings(out: Path, noise_mV: float, seed: int) -> tuple[dict, np.ndarray]:
    """The authors' five step protocols at the HH script's dt, simulated by
    `reference_voltage` at the defaults, plus Gaussian noise (seed `seed`): current.csv and
    voltage.csv in `out` ({"I": path, "V": path}), and the clean V."""
    dt = hh_script.DEFAULTS.dt
    current = hh_script.authors_protocol(dt)
    clean = reference_voltage(HH_DEFAULTS, current, dt)
    noisy = clean + np.random.default_rng(seed).normal(0.0, noise_mV, clean.shape)
    return ({"I": write_csv(out / "current.csv", current),
             "V": write_csv(out / "voltage.csv", noisy)}, clean)


def draw_population(n: int, seed: int, defaults: dict, spread: float) -> dict[str, np.ndarray]:
    """FREE parameters of `n` cells, log-uniform in [(1 - spread), (1 + spread)] x default."""
    rng = np.random.default_rng([seed, 0])  # its own stream: the noise uses [seed, 1]
    lo, hi = math.log(1.0 - spread), math.log(1.0 + spread)
    return {k: defaults[k] * np.exp(rng.uniform(lo, hi, n)) for k in FREE}
