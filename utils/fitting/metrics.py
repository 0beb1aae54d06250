"""Spike-train losses and scores for fitting neurons: spike trains on a grid, the van Rossum
distance and the gamma factor. (Spike detection is the models' own: models.spec.spike_times.)"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["spike_counts_on_grid", "exp_filter", "alpha_filter", "van_rossum_loss", "gamma_factor",
           "gamma_defined", "gamma_undefined_rate", "mean_gamma", "gamma_warning"]


def spike_counts_on_grid(times: Sequence[np.ndarray], n_steps: int, dt: float) -> np.ndarray:
    """Spike trains [N, T]: each spike's unit mass split linearly between its two neighbouring
    samples, so that sub-sample spike times are kept."""
    grid = np.zeros((len(times), n_steps))
    for row, ts in zip(grid, times):
        pos = np.asarray(ts, dtype=float) / dt
        lo = np.floor(pos).astype(int)
        w = pos - lo
        for idx, mass in ((lo, 1.0 - w), (lo + 1, w)):
            ok = (idx >= 0) & (idx < n_steps)
            np.add.at(row, idx[ok], mass[ok])
    return grid


def exp_filter(spikes: jax.Array, dt: float, tau: float) -> jax.Array:
    """Causal exponential filter along the last axis: f[k] = f[k-1] exp(-dt/tau) + s[k]."""
    decay = jnp.exp(-dt / tau)

    def body(f, s):
        f = f * decay + s
        return f, f

    _, out = jax.lax.scan(body, jnp.zeros_like(spikes[..., 0]), jnp.moveaxis(spikes, -1, 0))
    return jnp.moveaxis(out, 0, -1)


def alpha_filter(spikes: jax.Array, dt: float, tau: float) -> jax.Array:
    """Filter by the alpha kernel sqrt(2) (t/tau) exp(-t/tau): two cascaded exponential filters.
    Scaled so that (1/tau) * integral of its square is 1/2, like the exponential kernel."""
    return exp_filter(exp_filter(spikes, dt, tau), dt, tau) * (np.sqrt(2.0) * dt / tau)


def van_rossum_loss(spikes_model: jax.Array, filtered_target: jax.Array, dt: float,
                    tau: float) -> jax.Array:
    """Squared van Rossum distance (van Rossum 2001, Neural Comput 13:751),
    (1/tau) * integral of (f_model - f_target)^2 with f = alpha_filter(spikes), averaged over
    traces; one unmatched spike costs about 1/2. The alpha kernel (continuous at 0, unlike the
    exponential) makes the distance quadratic, not linear, in small spike-time shifts, so the
    minimum is smooth for L-BFGS-B."""
    diff = alpha_filter(spikes_model, dt, tau) - filtered_target
    return jnp.mean(jnp.sum(diff ** 2, axis=-1), axis=-1) * dt / tau


def _coincidences(model: np.ndarray, data: np.ndarray, window: float) -> int:
    """Data spikes with a model spike within +-window, each model spike used at most once."""
    used = np.zeros(len(model), dtype=bool)
    count = 0
    for t in data:
        close = np.flatnonzero((np.abs(model - t) <= window) & ~used)
        if close.size:
            used[close[np.argmin(np.abs(model[close] - t))]] = True
            count += 1
    return count


def gamma_defined(n_model: int, window: float, duration: float) -> bool:
    """Whether the gamma factor is defined for a model train of `n_model` spikes: its
    normaliser 1 - 2 nu_model delta must be positive (a window shorter than half the model's
    mean interspike interval). At 2 nu delta >= 1 the chance-coincidence correction exceeds
    the spike count and the formula changes sign, giving scores above 1."""
    return 2.0 * (n_model / duration) * window < 1.0


def gamma_factor(model: np.ndarray, data: np.ndarray, window: float, duration: float,
                 rate_correction: bool = True) -> float | None:
    """Coincidence factor of Jolivet et al. (2008, J Neurosci Methods 169:417), 1 = identical trains.

    Gamma = (N_coinc - 2 nu_m delta N_data) / (0.5 (N_data + N_model) (1 - 2 nu_m delta)), with
    nu_m the model's rate and delta the window (ms). With rate_correction the score is
    Gamma - 2 |nu_data - nu_model| / nu_data, the rate-corrected form used by Brian2's GammaFactor.
    Trains with no data spikes score 1 if the model is silent too, else 0.

    Never above 1: each model spike is matched at most once, so N_coinc <= min(N_data, N_model),
    and with p = 2 nu_m delta < 1 the normaliser minus the numerator is at least
    0.5 |N_data - N_model| (1 - p) >= 0. Undefined (None) when p >= 1 (`gamma_defined`).
    """
    model = np.sort(np.asarray(model, dtype=float))
    data = np.sort(np.asarray(data, dtype=float))
    if data.size == 0:
        return 1.0 if model.size == 0 else 0.0
    if not gamma_defined(model.size, window, duration):
        return None
    rate_model = model.size / duration
    rate_data = data.size / duration
    expected = 2.0 * rate_model * window * data.size
    norm = 0.5 * (data.size + model.size) * (1.0 - 2.0 * rate_model * window)
    gamma = (_coincidences(model, data, window) - expected) / norm
    if rate_correction:
        gamma -= 2.0 * abs(rate_data - rate_model) / rate_data
    return float(gamma)


def gamma_undefined_rate(model: Sequence[np.ndarray], data: Sequence[np.ndarray],
                         window: float, duration: float) -> float | None:
    """The highest model rate (Hz) among traces whose gamma factor is undefined (see
    `gamma_defined`; traces without data spikes are always defined), None if every one is
    defined."""
    rates = [len(m) / duration * 1e3 for m, d in zip(model, data)
             if len(d) and not gamma_defined(len(m), window, duration)]
    return max(rates) if rates else None


def mean_gamma(model: Sequence[np.ndarray], data: Sequence[np.ndarray], window: float,
               duration: float) -> float | None:
    """Gamma factor averaged over traces; None when no trace of either train has a spike, or
    when the factor of any trace is undefined (`gamma_undefined_rate` says why)."""
    if not any(len(m) for m in model) and not any(len(d) for d in data):
        return None
    scores = [gamma_factor(m, d, window, duration) for m, d in zip(model, data)]
    if any(g is None for g in scores):
        return None
    return float(np.mean(scores))


def gamma_warning(window: float, rate_hz: float, methods: Sequence[str]) -> str:
    """The one warning line of a run in which the gamma factor was undefined."""
    return (f"warning: gamma factor undefined (null) for {', '.join(methods)}: a model rate of "
            f"{rate_hz:.4g} Hz with --gamma_window {window:g} ms gives 2*rate*window >= 1 "
            f"(Jolivet et al. 2008 need it below 1); use a window below "
            f"{1e3 / (2 * rate_hz):.3g} ms")
