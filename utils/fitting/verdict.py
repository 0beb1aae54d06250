"""How good a fit is, sweep by sweep, and whether it failed: spike counts, first-spike
latencies, the gamma factor and the subthreshold error of recording and model, on the fitted
sweeps and on sweeps held out of the fit; a fit is `poor` (with its reasons) where parameters
sit at their bounds, spike counts are off, or the residual is far above the recording's noise.
Spike counts and gamma are given twice: over the depolarizing steps of the sweeps that have
one (`evoked`: what a model of the cell's response to current is asked to predict) and over
every sweep and spike (spontaneous and rebound spikes included).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from utils.fitting.features import (depolarizing_epochs, epochs, spikes_within,
                                    stimulus_kind, subthreshold_mask)
from utils.fitting.metrics import gamma_factor
from utils.fitting.problem import Problem, simulate_cell
from utils.fitting.recorded import recording_spikes

__all__ = ["SPIKE_COUNT_TOL", "NOISE_FACTOR", "R2_MIN", "AT_BOUND", "evoked_score",
           "score_sweeps", "held_out_traces", "test_scores", "judge"]

SPIKE_COUNT_TOL = 0.5   # spike counts of model and cell differing by more than this fraction
NOISE_FACTOR = 10.0     # a subthreshold RMSE above this many times the baseline noise ...
R2_MIN = 0.5            # ... that explains less than this of the subthreshold variance is poor
AT_BOUND = 0.005        # a parameter this close to a bound (unit coordinates) sits on it


def _latency(spikes: np.ndarray, current: np.ndarray, dt: float) -> float | None:
    """Time (ms) from the first change of the stimulus to the first spike after it."""
    parts = epochs(current)
    onset = parts[1][0] * dt if len(parts) > 1 else 0.0
    later = spikes[spikes >= onset]
    return float(later[0] - onset) if later.size else None


def evoked_score(current: np.ndarray, data_spikes: np.ndarray, model_spikes: np.ndarray,
                 dt: float, window: float) -> dict:
    """One sweep's stimulus kind (features.stimulus_kind) and, on a sweep with depolarizing
    steps, the spikes of cell and model inside them and the gamma factor over them alone
    (their summed length the duration, so that the chance coincidences follow the rates
    during the steps; None where the cell fires none there or it is undefined); None for
    the others."""
    kind = stimulus_kind(current)
    spans = depolarizing_epochs(current)
    if not spans:
        return {"stimulus": kind, "spikes_cell_evoked": None, "spikes_model_evoked": None,
                "gamma_evoked": None}
    ds, ms = spikes_within(data_spikes, spans, dt), spikes_within(model_spikes, spans, dt)
    duration = sum(b - a for a, b in spans) * dt
    return {"stimulus": kind, "spikes_cell_evoked": int(ds.size),
            "spikes_model_evoked": int(ms.size),
            "gamma_evoked": gamma_factor(ms, ds, window, duration) if ds.size else None}


def _median(values) -> float | None:
    kept = [x for x in values if x is not None]
    return float(np.median(kept)) if kept else None


def score_sweeps(current: np.ndarray, voltage: np.ndarray, v_model: np.ndarray,
                 data_spikes: Sequence[np.ndarray], model_spikes: Sequence[np.ndarray],
                 dt: float, window: float, numbers: Sequence[int] | None = None) -> dict:
    """`sweeps`: per sweep its number, its stimulus kind and evoked scores (evoked_score),
    the spike counts and first-spike latencies (ms after the stimulus first changes) of cell
    and model, the gamma factor over the whole sweep (None where the cell fires none or it is
    undefined) and the RMSE (mV) over the samples away from the spikes of both. Then over all
    sweeps: `evoked_sweeps` (how many have a depolarizing step), the spikes inside those steps
    (`spikes_cell_evoked`, `spikes_model_evoked`; None without such a sweep) and the median
    of their `gamma_evoked` (`median_gamma_evoked`); every spike of every sweep
    (`spikes_cell`, `spikes_model`), the median whole-sweep gamma of every sweep
    (`median_gamma`) and of those without a depolarizing step (`median_gamma_other`); the
    median RMSE and the fraction of the recording's subthreshold variance (pooled) that the
    model explains (R^2; below 0 a constant at the mean would do better)."""
    n_steps = voltage.shape[1]
    keep = (subthreshold_mask(data_spikes, n_steps, dt)
            & subthreshold_mask(model_spikes, n_steps, dt))
    sweeps = []
    for k, (i, v, vm, ds, ms, m) in enumerate(zip(current, voltage, v_model, data_spikes,
                                                 model_spikes, keep)):
        rmse = float(np.sqrt(np.mean((vm[m] - v[m]) ** 2))) if m.any() else None
        sweeps.append({"sweep": int(numbers[k]) if numbers is not None else k,
                       **evoked_score(i, ds, ms, dt, window),
                       "spikes_cell": int(len(ds)), "spikes_model": int(len(ms)),
                       "latency_cell_ms": _latency(ds, i, dt),
                       "latency_model_ms": _latency(ms, i, dt),
                       "gamma": gamma_factor(ms, ds, window, n_steps * dt) if len(ds) else None,
                       "subthreshold_rmse_mV": rmse})
    v, vm = voltage[keep], v_model[keep]
    spread = float(np.sum((v - v.mean()) ** 2)) if v.size else 0.0
    evoked = [s for s in sweeps if s["stimulus"] == "depolarizing"]
    return {"sweeps": sweeps,
            "evoked_sweeps": len(evoked),
            "spikes_cell_evoked": sum(s["spikes_cell_evoked"] for s in evoked)
            if evoked else None,
            "spikes_model_evoked": sum(s["spikes_model_evoked"] for s in evoked)
            if evoked else None,
            "median_gamma_evoked": _median(s["gamma_evoked"] for s in evoked),
            "spikes_cell": sum(s["spikes_cell"] for s in sweeps),
            "spikes_model": sum(s["spikes_model"] for s in sweeps),
            "median_gamma": _median(s["gamma"] for s in sweeps),
            "median_gamma_other": _median(s["gamma"] for s in sweeps
                                          if s["stimulus"] != "depolarizing"),
            "median_subthreshold_rmse_mV": _median(s["subthreshold_rmse_mV"] for s in sweeps),
            "subthreshold_r2": 1.0 - float(np.sum((vm - v) ** 2)) / spread if spread > 0
            else None}


def held_out_traces(problem: Problem, params: Mapping[str, float]) -> tuple[np.ndarray, list]:
    """The model's voltage [N, T] and spike times on the problem's held-out sweeps."""
    v, s = simulate_cell(problem.model, {**problem.fixed, **params}, problem.test.current,
                         problem.dt)
    return v, problem.model.spikes_of(v, s, problem.dt)


def test_scores(problem: Problem, params: Mapping[str, float]) -> dict | None:
    """The scores of a fit on the problem's held-out sweeps (score_sweeps); None without
    held-out sweeps."""
    held = problem.test
    if held is None:
        return None
    v, model_spikes = held_out_traces(problem, params)
    data_spikes = recording_spikes(problem.model, held.voltage, problem.dt)
    return score_sweeps(held.current, held.voltage, v, data_spikes, model_spikes, problem.dt,
                        problem.gamma_window, held.numbers)


def _count_reason(summary: dict, where: str) -> str | None:
    cell, model = summary["spikes_cell"], summary["spikes_model"]
    if cell == 0:
        return None if model == 0 else f"the model fires {model} spikes where the cell " \
                                       f"fires none ({where})"
    if abs(model - cell) > SPIKE_COUNT_TOL * cell:
        return f"spike counts off: model {model}, cell {cell} ({where})"
    return None


def _test_counts(test: dict) -> tuple[dict, str]:
    """The held-out spike counts the verdict compares: those inside the depolarizing steps
    where a held-out sweep has one, else every spike."""
    if test["evoked_sweeps"]:
        return ({"spikes_cell": test["spikes_cell_evoked"],
                 "spikes_model": test["spikes_model_evoked"]},
                "test sweeps, inside their depolarizing steps")
    return test, "test sweeps"


def judge(problem: Problem, z: np.ndarray, fitted: dict, test: dict | None) -> list[str]:
    """Why a fit is poor (empty: it is not): parameters at a bound, spike counts off on the
    fitted or held-out sweeps (by more than SPIKE_COUNT_TOL; on held-out sweeps those inside
    their depolarizing steps where there are any), a subthreshold RMSE above
    NOISE_FACTOR x the baseline noise that explains less than R2_MIN of the subthreshold
    variance. `fitted`: score_sweeps() of the fitted sweeps."""
    reasons = []
    at = [f"{n} at its {'lower' if zk < 0.5 else 'upper'} bound"
          for n, zk in zip(problem.free, z) if min(zk, 1.0 - zk) < AT_BOUND]
    if at:
        reasons.append(", ".join(at))
    held = _test_counts(test) if test is not None else (None, "")
    for summary, where in ((fitted, "fitted sweeps"), held):
        if summary is not None and (reason := _count_reason(summary, where)):
            reasons.append(reason)
    noise = problem.estimates.noise if problem.estimates is not None else None
    rmse, r2 = fitted["median_subthreshold_rmse_mV"], fitted["subthreshold_r2"]
    if (noise is not None and rmse is not None and r2 is not None and r2 < R2_MIN
            and rmse > NOISE_FACTOR * noise):
        reasons.append(f"subthreshold RMSE {rmse:.3g} mV, {rmse / noise:.0f}x the baseline "
                       f"noise ({noise:.2g} mV), explaining {max(r2, 0.0):.0%} of the "
                       "subthreshold variance")
    return reasons
