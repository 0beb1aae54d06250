"""Generalized integrate-and-fire neuron of Mihalas & Niebur (2009, Neural Comput 21:704),
batched over parameter sets and traces.

    tau dV/dt = -(V - V_rest) + R (I + I1 + I2)
    dTheta/dt = a (V - V_rest) - b (Theta - V_th_inf)
    dI1/dt = -k1 I1,   dI2/dt = -k2 I2
    at a spike (V crosses Theta from below):
        I1 <- R1 I1 + A1,  I2 <- R2 I2 + A2,  V <- V_reset,  Theta <- max(V_th_reset, Theta)

Units: mV, ms, MOhm, nA (MOhm * nA = mV); a, b, k1, k2 in 1/ms; A1, A2 in nA.
Spike times are found inside each step by linear interpolation of V - Theta (Hansel et al.
1998, Neural Comput 10:467); the reset happens at that instant and the rest of the step is
integrated from the reset state. The state after a step is then a smooth function of the
parameters (while the number of spikes stays the same), so gradients are the exact derivatives
of the simulated model: they reach a and b through spike times, match finite differences and do
not explode the way surrogate gradients do over thousands of steps.
"""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from models.spec import NeuronModel

GIF_UNITS = {"V_rest": "mV", "V_reset": "mV", "V_th_inf": "mV", "V_th_reset": "mV", "R": "MOhm",
             "tau": "ms", "a": "1/ms", "b": "1/ms", "k1": "1/ms", "k2": "1/ms", "R1": "1",
             "R2": "1", "A1": "nA", "A2": "nA"}
GIF_DEFAULTS = {"V_rest": -70.0, "V_reset": -70.0, "V_th_inf": -50.0, "V_th_reset": -60.0,
                "R": 20.0, "tau": 20.0, "a": 0.0, "b": 0.01, "k1": 0.2, "k2": 0.02, "R1": 0.0,
                "R2": 1.0, "A1": 0.0, "A2": 0.0}
def _decay_integral(rate: jax.Array, dt: float) -> jax.Array:
    """(1 - exp(-rate dt)) / rate, finite and smooth at rate = 0 (where it is dt)."""
    x = rate * dt
    small = jnp.abs(x) < 1e-8
    safe = jnp.where(small, 1.0, x)
    return dt * jnp.where(small, 1.0 - x / 2.0, -jnp.expm1(-safe) / safe)


def subthreshold_step(p: Mapping[str, jax.Array], state: tuple, i_ext: jax.Array,
                      dt: float) -> tuple:
    """Exponential step of each linear equation, the variables that drive it (I1, I2 for V; V
    for Theta) taken at mid-step: second order in dt (an exponential midpoint rule). Frozen at
    the step's start instead, a 1 ms grid biased fitted k1 by 13%."""
    v, theta, i1, i2 = state
    i_mid = i_ext + i1 * jnp.exp(-p["k1"] * dt / 2) + i2 * jnp.exp(-p["k2"] * dt / 2)
    v_inf = p["V_rest"] + p["R"] * i_mid
    v_new = v_inf + (v - v_inf) * jnp.exp(-dt / p["tau"])
    v_mid = v_inf + (v - v_inf) * jnp.exp(-dt / (2 * p["tau"]))
    drive = p["a"] * (v_mid - p["V_rest"]) + p["b"] * p["V_th_inf"]
    theta_new = theta * jnp.exp(-p["b"] * dt) + drive * _decay_integral(p["b"], dt)
    return v_new, theta_new, i1 * jnp.exp(-p["k1"] * dt), i2 * jnp.exp(-p["k2"] * dt)


def reset(p: Mapping[str, jax.Array], state: tuple) -> tuple:
    """The spike rules of Mihalas & Niebur."""
    v, theta, i1, i2 = state
    return (jnp.broadcast_to(p["V_reset"], v.shape), jnp.maximum(p["V_th_reset"], theta),
            p["R1"] * i1 + p["A1"], p["R2"] * i2 + p["A2"])


def _where(cond: jax.Array, a: tuple, b: tuple) -> tuple:
    return tuple(jnp.where(cond, x, y) for x, y in zip(a, b))


def step_with_spikes(p: Mapping[str, jax.Array], state: tuple, i_ext: jax.Array, dt: float,
                     forced: jax.Array | None = None) -> tuple[tuple, jax.Array, jax.Array]:
    """One step. A spike happens where V - Theta crosses 0 from below (or, if `forced` is
    given, exactly where forced is True, at the interpolated crossing clipped into the step).
    Returns the new state, the spike indicator and phi, the fraction of the step at which
    the spike happened (1 where none)."""
    pre = subthreshold_step(p, state, i_ext, dt)
    x0, x1 = state[0] - state[1], pre[0] - pre[1]
    spike = (x0 < 0) & (x1 >= 0) if forced is None else forced
    denom = jnp.where(spike & (x0 != x1), x0 - x1, 1.0)
    phi = jnp.where(spike, jnp.clip(x0 / denom, 0.0, 1.0), 1.0)
    at_spike = tuple(s + phi * (q - s) for s, q in zip(state, pre))
    after = subthreshold_step(p, reset(p, at_spike), i_ext, (1.0 - phi) * dt)
    return _where(spike, after, pre), spike, phi


def _broadcast(params: Mapping[str, jax.Array]) -> dict:
    return {k: jnp.asarray(params[k])[:, None] for k in GIF_DEFAULTS}


def _initial_state(p: dict, n_traces: int, dtype) -> tuple:
    shape = (p["V_rest"].shape[0], n_traces)
    return (jnp.broadcast_to(p["V_rest"], shape).astype(dtype),
            jnp.broadcast_to(p["V_th_inf"], shape).astype(dtype),
            jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


def simulate_gif(params: Mapping[str, jax.Array], current: jax.Array,
                 dt: float) -> tuple[jax.Array, jax.Array]:
    """Simulate P parameter sets on N traces: V [P, N, T] (mV, V[..., k] at time k dt) and the
    spike signal [P, N, T]: a spike at time (k + phi) dt puts mass 1 - phi on sample k and phi on
    sample k + 1, so the signal moves smoothly with the spike time."""
    p = _broadcast(params)
    state0 = _initial_state(p, current.shape[0], current.dtype)

    def body(carry, i_t):
        state, pending = carry
        new, spike, phi = step_with_spikes(p, state, i_t[None, :], dt)
        mass = spike.astype(state[0].dtype)
        return (new, mass * phi), (state[0], pending + mass * (1.0 - phi))

    _, (vs, ss) = jax.lax.scan(body, (state0, jnp.zeros_like(state0[0])), current.T)
    return jnp.moveaxis(vs, 0, -1), jnp.moveaxis(ss, 0, -1)


def simulate_gif_forced(params: Mapping[str, jax.Array], current: jax.Array, dt: float,
                        forced: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The dynamics with spikes forced in the steps where forced [N, T] is True (step k runs
    from sample k to k + 1), as when fitting subthreshold dynamics to recorded spike times
    (Pozzorini et al. 2015, PLoS Comput Biol 11:e1004275). Returns V [P, N, T] and V - Theta at
    the start and at the end of each step (before any reset), for threshold losses."""
    p = _broadcast(params)
    state0 = _initial_state(p, current.shape[0], current.dtype)

    def body(state, x):
        i_t, f = x
        pre = subthreshold_step(p, state, i_t[None, :], dt)
        new, _, _ = step_with_spikes(p, state, i_t[None, :], dt, forced=f[None, :])
        return new, (state[0], state[0] - state[1], pre[0] - pre[1])

    _, outs = jax.lax.scan(body, state0, (current.T, forced.T))
    return tuple(jnp.moveaxis(o, 0, -1) for o in outs)


def spike_times_from_signal(signal: np.ndarray, dt: float) -> list[np.ndarray]:
    """Decode spike times from the mass-split spike signal: consecutive samples carrying mass
    are read off one unit of mass at a time, each spike's time being its mass-weighted sample."""
    out = []
    for row in np.atleast_2d(signal):
        times, acc, moment = [], 0.0, 0.0
        for k in np.flatnonzero(row > 1e-12):
            left = row[k]
            while left > 1e-9:
                take = min(left, 1.0 - acc)
                acc, moment, left = acc + take, moment + take * k, left - take
                if acc > 1.0 - 1e-9:
                    times.append(moment * dt)
                    acc, moment = 0.0, 0.0
        out.append(np.array(times))
    return out


def gif_spike_times(v: np.ndarray, spikes: np.ndarray | None, dt: float) -> list[np.ndarray]:
    """Spike times (ms): decoded from the model's spike signal or, for a recorded voltage, the
    samples where V drops by more than 5 mV in one step (the reset)."""
    if spikes is not None:
        return spike_times_from_signal(spikes, dt)
    v = np.atleast_2d(np.asarray(v, dtype=float))
    return [(np.flatnonzero(np.diff(row) < -5.0) + 1) * dt for row in v]


def gif_starts_from(estimates: Mapping[str, float | None]) -> dict[str, float]:
    """GIF values a recorded cell's estimates give: V_rest, R = R_in, tau = the membrane time
    constant, V_th_inf = the spike threshold."""
    names = {"V_rest": "v_rest", "R": "r_in", "tau": "tau", "V_th_inf": "v_threshold"}
    return {p: estimates[e] for p, e in names.items() if estimates.get(e) is not None}


GIF = NeuronModel(
    name="gif",
    units=GIF_UNITS,
    defaults=GIF_DEFAULTS,
    simulate=simulate_gif,
    spikes_of=gif_spike_times,
    simulate_forced=simulate_gif_forced,
    description="generalized integrate-and-fire neuron (Mihalas & Niebur 2009)",
    positive=frozenset({"tau", "R"}),         # tau divides; R is a resistance
    nonnegative=frozenset({"k1", "k2"}),      # decay rates: negative ones make currents grow
    starts_from=gif_starts_from,
    action_potentials=False,  # spikes are resets: no waveform in V
)


def make_gif() -> NeuronModel:
    """The GIF model description (it has no options)."""
    return GIF
