"""What a recording says before any fit: its action potentials, where it is below threshold,
its noise, and the standard passive-property estimates (resting potential, input resistance,
membrane time constant) and spike threshold, which place the starts of a fit of real cells.

Every function takes one cell's sweeps: current [N, T] in nA, voltage [N, T] in mV, dt in ms.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

__all__ = ["AP_LEVEL_MV", "THRESHOLD_DVDT", "SPIKE_WINDOW_MS", "CellEstimates",
           "recorded_spike_times", "subthreshold_mask", "epochs", "STIMULUS_KINDS",
           "stimulus_kind", "depolarizing_epochs", "spikes_within", "estimate_cell",
           "baseline_noise"]

AP_LEVEL_MV = -20.0       # an action potential crosses this level upwards
REARM_MV = -30.0          # ... and falls below this one before the next can count
THRESHOLD_DVDT = 20.0     # mV/ms: spike threshold where dV/dt first exceeds it before the peak
SPIKE_WINDOW_MS = (1.0, 4.0)  # before and after a spike: samples the subthreshold loss leaves out
CURRENT_TOL_NA = 1e-3     # steps of the stimulus smaller than this are no epoch boundary


def recorded_spike_times(v: np.ndarray, dt: float) -> list[np.ndarray]:
    """Action potentials of each recorded trace v [N, T] (ms): upward crossings of AP_LEVEL_MV
    (linearly interpolated), a new one counted only after V fell below REARM_MV, so that noise
    at the crossing level counts one spike once."""
    v = np.atleast_2d(np.asarray(v, dtype=float))
    out = []
    for row in v:
        ups = np.flatnonzero((row[1:] >= AP_LEVEL_MV) & (row[:-1] < AP_LEVEL_MV)) + 1
        below = np.flatnonzero(row < REARM_MV)
        kept, last = [], -1
        for k in ups:
            if last < 0 or np.any((below > last) & (below < k)):
                kept.append(k)
                last = k
        k = np.asarray(kept, dtype=int)
        frac = (AP_LEVEL_MV - row[k - 1]) / (row[k] - row[k - 1]) if k.size else k
        out.append((k - 1 + frac) * dt)
    return out


def subthreshold_mask(spikes: Sequence[np.ndarray], n_steps: int, dt: float,
                      window: tuple[float, float] = SPIKE_WINDOW_MS) -> np.ndarray:
    """[N, T] bool: samples farther than `window` (ms before, after) from every spike."""
    mask = np.ones((len(spikes), n_steps), dtype=bool)
    before, after = (int(np.ceil(w / dt)) for w in window)
    for row, ts in zip(mask, spikes):
        for k in np.round(np.asarray(ts, dtype=float) / dt).astype(int):
            row[max(0, k - before):max(0, k + after + 1)] = False
    return mask


def epochs(current: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) sample ranges over which one trace's stimulus is constant."""
    edges = np.flatnonzero(np.abs(np.diff(current)) > CURRENT_TOL_NA) + 1
    bounds = [0, *edges.tolist(), len(current)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


STIMULUS_KINDS = ("depolarizing", "hyperpolarizing", "constant")


def depolarizing_epochs(current: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) sample ranges of one trace's epochs whose current lies above its first
    epoch's (the holding current before the stimulus): its depolarizing steps."""
    parts = epochs(current)
    return [(a, b) for a, b in parts[1:] if current[a] > current[0] + CURRENT_TOL_NA]


def stimulus_kind(current: np.ndarray) -> str:
    """What one trace's stimulus does from its holding current (its first epoch):
    `depolarizing` (a step above it, whatever else the sweep holds), else `hyperpolarizing`
    (steps below it only), else `constant`."""
    if depolarizing_epochs(current):
        return "depolarizing"
    return "hyperpolarizing" if len(epochs(current)) > 1 else "constant"


def spikes_within(times: np.ndarray, spans: Sequence[tuple[int, int]],
                  dt: float) -> np.ndarray:
    """The spike times (ms) that fall in any of the [start, stop) sample ranges `spans`."""
    times = np.asarray(times, dtype=float)
    inside = np.zeros(times.shape, dtype=bool)
    for a, b in spans:
        inside |= (times >= a * dt) & (times < b * dt)
    return times[inside]


def _quiet_baseline(current: np.ndarray, spikes: np.ndarray, dt: float) -> int:
    """Samples of a trace's pre-stimulus baseline (its first epoch) that end before the
    spike window of its first spike."""
    stop = epochs(current)[0][1]
    if spikes.size:
        stop = min(stop, max(0, int((spikes[0] - SPIKE_WINDOW_MS[0]) / dt)))
    return stop


def baseline_noise(voltage: np.ndarray, current: np.ndarray, dt: float) -> float | None:
    """Recording noise (mV): the median over traces of the sample-to-sample spread in the
    pre-stimulus baseline, robustly (1.4826 MAD of the first differences over sqrt 2, which
    ignores slow drift); None when no trace has 5 ms of baseline without a spike."""
    spread = []
    for v, i, ts in zip(voltage, current, recorded_spike_times(voltage, dt)):
        stop = _quiet_baseline(i, ts, dt)
        if stop * dt < 5.0:
            continue
        d = np.diff(v[:stop])
        spread.append(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))
    return float(np.median(spread)) if spread else None


@dataclass(frozen=True)
class CellEstimates:
    """A recorded cell's properties read from its sweeps (None: the sweeps do not show it)."""

    v_rest: float | None = None       # mV, pre-stimulus potential of traces without spikes
    noise: float | None = None        # mV, baseline noise (baseline_noise)
    r_in: float | None = None         # MOhm, steady-state dV / dI of subthreshold steps
    tau: float | None = None          # ms, time to 63% of the step response
    v_threshold: float | None = None  # mV, median spike threshold (THRESHOLD_DVDT)
    n_spikes: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _step_responses(current: np.ndarray, voltage: np.ndarray, dt: float,
                    spikes: Sequence[np.ndarray]) -> list[tuple[float, float, float]]:
    """(dI nA, steady dV mV, tau ms) of every stimulus step of at least 20 ms after which the
    response stays free of spikes. Steady dV: the mean over the step's last fifth minus the
    mean over the 10 ms before it; tau: the time the response takes to cover 1 - 1/e of the
    change to its extreme (the standard single-exponential charging estimate, as in the Allen
    Cell Types Database's electrophysiology white paper, 2017)."""
    out = []
    pre = max(1, int(round(10.0 / dt)))
    for i, v, ts in zip(current, voltage, spikes):
        parts = epochs(i)
        for (a0, _), (a, b) in zip(parts[:-1], parts[1:]):
            if (b - a) * dt < 20.0 or a - a0 < pre or np.any((ts > a * dt - 10) & (ts < b * dt)):
                continue
            d_i = i[a] - i[a - 1]
            v0 = v[a - pre:a].mean()
            d_v = v[b - (b - a) // 5:b].mean() - v0
            seg = v[a:b] - v0
            extreme = seg.min() if d_i < 0 else seg.max()
            if abs(extreme) < 1.0:
                continue
            reach = np.flatnonzero(seg / extreme >= 1.0 - np.exp(-1.0))
            out.append((float(d_i), float(d_v), float(reach[0] * dt) if reach.size else np.nan))
    return out


def _thresholds(voltage: np.ndarray, dt: float, spikes: Sequence[np.ndarray]) -> list[float]:
    """V where dV/dt first exceeds THRESHOLD_DVDT in the 3 ms before each spike's crossing
    of AP_LEVEL_MV (a first-derivative criterion; Sekerli et al. 2004, IEEE Trans Biomed Eng
    51:1665)."""
    out = []
    back = int(round(3.0 / dt))
    for v, ts in zip(voltage, spikes):
        dvdt = np.diff(v) / dt
        for t in ts:
            k = int(t / dt)
            lo = max(0, k - back)
            fast = np.flatnonzero(dvdt[lo:k] >= THRESHOLD_DVDT)
            if fast.size:
                out.append(float(v[lo + fast[0]]))
    return out


def estimate_cell(current: np.ndarray, voltage: np.ndarray, dt: float) -> CellEstimates:
    """The cell's resting potential, noise, input resistance, membrane time constant and
    spike threshold from its sweeps. Input resistance and time constant come from
    hyperpolarizing steps where there are any (no active conductances open), else from
    depolarizing ones that stay below threshold."""
    current = np.atleast_2d(current)
    voltage = np.atleast_2d(voltage)
    spikes = recorded_spike_times(voltage, dt)
    rest = [v[:stop].mean() for v, i, ts in zip(voltage, current, spikes)
            if (stop := _quiet_baseline(i, ts, dt)) * dt >= 5.0]
    steps = _step_responses(current, voltage, dt, spikes)
    hyper = [s for s in steps if s[0] < 0] or steps
    r_in = [dv / di for di, dv, _ in hyper if abs(di) > CURRENT_TOL_NA and dv / di > 0]
    taus = [tau for _, _, tau in hyper if np.isfinite(tau) and tau > 0]
    thresholds = _thresholds(voltage, dt, spikes)

    def median(x):
        return float(np.median(x)) if len(x) else None
    return CellEstimates(v_rest=median(rest), noise=baseline_noise(voltage, current, dt),
                         r_in=median(r_in), tau=median(taus), v_threshold=median(thresholds),
                         n_spikes=int(sum(len(s) for s in spikes)))
