"""What a fittable point-neuron model provides to the fitting pipeline, and the threshold
spike detector models share."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import jax
import numpy as np

# simulate(params, current, dt) -> (V, spikes): params maps every name to an array of shape
# [P] (P candidate parameter sets), current is [N, T] in nA; V and spikes are [P, N, T], and
# V[..., k] is the potential at time k * dt. `spikes` is a differentiable spike signal whose
# sum over one spike is 1.
Simulator = Callable[[Mapping[str, jax.Array], jax.Array, float], tuple[jax.Array, jax.Array]]
SpikeDetector = Callable[[np.ndarray, np.ndarray | None, float], list[np.ndarray]]


@dataclass(frozen=True)
class NeuronModel:
    """A point-neuron model: parameter names, units, defaults, a batched simulator, and how
    spike times are read from its output (`spikes_of(v, spike_signal_or_None, dt)`)."""

    name: str
    units: Mapping[str, str]
    defaults: Mapping[str, float]
    simulate: Simulator
    spikes_of: SpikeDetector
    description: str = ""
    # simulate_forced(params, current, dt, forced [N, T] bool) -> (V, x_start, x_end) with
    # spikes forced where the recording has them; x = V - threshold at the start and end of
    # each step. Models that have it get the staged gradient fit (see
    # utils/fitting/objectives.py).
    simulate_forced: Callable | None = None
    # parameters that must be > 0 (a capacitance, a time constant: zero divides) and that must
    # be >= 0 (conductances, decay rates); fixed values and search bounds are checked against
    # them before a fit
    positive: frozenset[str] = frozenset()
    nonnegative: frozenset[str] = frozenset()
    # starts_from(estimates) -> {name: value}: parameter values a recorded cell's estimates
    # give (keys of utils.fitting.features.CellEstimates: v_rest mV, r_in MOhm, tau ms,
    # v_threshold mV; None where a recording does not show one); they place a fit's starts
    starts_from: Callable[[Mapping[str, float | None]], dict[str, float]] | None = None
    # the voltage shows action potentials (HH); False: a spike is a threshold crossing followed
    # by a reset (GIF), so the voltage holds no waveform for spike detectors to find
    action_potentials: bool = True

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.defaults)


def spike_times(v: np.ndarray, threshold: float, dt: float) -> list[np.ndarray]:
    """Upward threshold crossings of each trace of v [N, T], in ms, linearly interpolated
    between the last sample below and the first sample above."""
    v = np.atleast_2d(np.asarray(v, dtype=float))
    above = v >= threshold
    out = []
    for row, ab in zip(v, above):
        k = np.flatnonzero(ab[1:] & ~ab[:-1]) + 1
        frac = (threshold - row[k - 1]) / (row[k] - row[k - 1])
        out.append((k - 1 + frac) * dt)
    return out
