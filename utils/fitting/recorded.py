"""What a fit of recordings adds to a fitting problem: the sweeps held out of the fit, the
spike times read from recorded voltages, the weight of the spike-train term, the gamma
factor's window, and the start values the recording's estimates give."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.spec import NeuronModel
from utils.fitting.config import FitConfig, FitDefaults
from utils.fitting.features import (CellEstimates, depolarizing_epochs, recorded_spike_times,
                                    spikes_within)
from utils.run import UserError

__all__ = ["HeldOut", "held_out_rows", "DEFAULT_SPIKE_WEIGHT", "RECORDED_GAMMA_WINDOW",
           "recording_spikes", "spike_weight", "gamma_window", "anchor"]


@dataclass(frozen=True)
class HeldOut:
    """Sweeps a fit is scored on but not fitted to: current, voltage [N, T], their numbers."""

    current: np.ndarray
    voltage: np.ndarray
    numbers: tuple[int, ...]


def held_out_rows(config: FitConfig, current: np.ndarray, v_target: np.ndarray | None,
                   spikes: list | None) -> tuple:
    """The CSV rows --test_sweeps names, taken out of the fit: (current, voltage, spikes) of
    the rest and their HeldOut (None without --test_sweeps numbers)."""
    if not isinstance(config.test_sweeps, tuple):
        return current, v_target, spikes, None, None
    rows = list(config.test_sweeps)
    n = len(current)
    if v_target is None:
        raise UserError("--test_sweeps: held-out rows are scored against --data_voltage: give it")
    if max(rows) >= n or len(rows) >= n:
        raise UserError(f"--test_sweeps: the recordings hold rows 0-{n - 1} and at least one "
                        f"must stay for the fit; got {', '.join(map(str, rows))}")
    keep = [k for k in range(n) if k not in rows]
    held = HeldOut(current[rows], v_target[rows], tuple(rows))
    return (current[keep], v_target[keep],
            None if spikes is None else [spikes[k] for k in keep], held, tuple(keep))


DEFAULT_SPIKE_WEIGHT = 2e4  # mV^2 a model without any spike pays (objectives.real_residuals)
RECORDED_GAMMA_WINDOW = 4.0  # ms, the window of Jolivet et al. (2008) for recorded cells


def recording_spikes(model: NeuronModel, v: np.ndarray, dt: float) -> list[np.ndarray]:
    """Spike times of recorded traces: their action potentials (features.recorded_spike_times)
    where a trace has any, else the model's own detector (a recording made by the model
    itself, e.g. a GIF's resets)."""
    aps = recorded_spike_times(v, dt)
    own = model.spikes_of(v, None, dt)
    return [a if a.size else o for a, o in zip(aps, own)]


def spike_weight(config: FitConfig, estimates: CellEstimates | None,
                 spikes: list[np.ndarray] | None) -> float:
    """The weight of the spike-train term of a potential target: --spike_weight, or by
    default DEFAULT_SPIKE_WEIGHT for recordings whose spikes have a measurable threshold and
    0 (the plain voltage MSE) otherwise."""
    if config.target != "potential" or estimates is None:
        return 0.0
    has_spikes = any(len(s) for s in spikes or []) and estimates.v_threshold is not None
    if config.spike_weight is not None:
        if config.spike_weight > 0 and not has_spikes:
            return 0.0
        return config.spike_weight
    return DEFAULT_SPIKE_WEIGHT if has_spikes else 0.0


def _busiest_rate(spikes: list[np.ndarray], current: np.ndarray, dt: float) -> float:
    """The highest rate (spikes per ms) of a trace: over its depolarizing steps where it has
    any (a step's spikes crowd into the step), else over the whole trace."""
    rates = []
    for ts, i in zip(spikes, current):
        spans = depolarizing_epochs(i) or [(0, len(i))]
        rates.append(spikes_within(ts, spans, dt).size / (sum(b - a for a, b in spans) * dt))
    return max(rates, default=0.0)


def gamma_window(config: FitConfig, d: FitDefaults, truth: dict | None,
                  spikes: list[np.ndarray] | None, current: np.ndarray, dt: float) -> float:
    """--gamma_window; by default the script's for its synthetic target and, for recordings,
    RECORDED_GAMMA_WINDOW or a quarter of the shortest mean interspike interval of a trace,
    during its depolarizing steps where it has any (so that 2 nu delta stays below 1/2 also
    where gamma is measured over the steps alone)."""
    if config.gamma_window is not None:
        return config.gamma_window
    if truth is not None or not spikes:
        return d.gamma_window
    busiest = _busiest_rate(spikes, current, dt)
    return min(RECORDED_GAMMA_WINDOW, 1.0 / (4.0 * busiest)) if busiest else \
        RECORDED_GAMMA_WINDOW


def anchor(model: NeuronModel, estimates: CellEstimates | None, free: list[str],
           lo: np.ndarray, hi: np.ndarray) -> dict[str, float] | None:
    """Start values of the free parameters that the data's estimates give (model.starts_from),
    clipped into the box [lo, hi]; None where there are none."""
    if estimates is None or model.starts_from is None:
        return None
    values = model.starts_from(estimates.as_dict())
    out = {n: float(np.clip(values[n], lo[k], hi[k])) for k, n in enumerate(free)
           if values.get(n) is not None and np.isfinite(values[n])}
    return out or None
