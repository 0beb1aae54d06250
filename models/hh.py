"""Traub-Miles Hodgkin-Huxley point neuron, batched over parameter sets and traces.

Units: conductances uS, capacitance nF, potentials mV, time ms, currents nA
(uS * mV = nA and nA / nF = mV/ms, so no conversion factors appear).
Kinetics as in Brian2's HH examples (Traub & Miles 1991), with the threshold shift VT (`vth`).
"""
from __future__ import annotations

from functools import partial
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from models.spec import NeuronModel, spike_times

HH_UNITS = {"gl": "uS", "g_na": "uS", "g_kd": "uS", "vth": "mV", "C": "nF",
            "EL": "mV", "EK": "mV", "ENa": "mV"}
HH_DEFAULTS = {"gl": 0.008363657, "g_na": 24.697738, "g_kd": 5.814895, "vth": -55.310945,
               "C": 0.2, "EL": -65.0, "EK": -90.0, "ENa": 50.0}
V_INIT_MV = -65.0
SPIKE_THRESHOLD_MV = -20.0  # upward crossings of -20 mV count as spikes (peaks reach ~+40 mV)
SOFT_SPIKE_WIDTH_MV = 2.0   # width of the smooth crossing detector used by spike losses
# exponential-Euler steps per sample interval: the error falls about as (dt / substeps)^2; 3 is
# the fewest that leaves fits to a fine-step solver's traces at dt 0.01 ms unbiased (docs/NOTES.md)
HH_SUBSTEPS = 3


def _exprel(x: jax.Array) -> jax.Array:
    """(exp(x) - 1) / x, finite and smooth at x = 0 (gradient-safe double where)."""
    small = jnp.abs(x) < 1e-6
    safe = jnp.where(small, 1.0, x)
    return jnp.where(small, 1.0 + x / 2.0, jnp.expm1(safe) / safe)


def alpha_m(v: jax.Array, vt: jax.Array) -> jax.Array:
    """Na activation opening rate, 1/ms."""
    return 0.32 * 4.0 / _exprel((13.0 - v + vt) / 4.0)


def beta_m(v: jax.Array, vt: jax.Array) -> jax.Array:
    """Na activation closing rate, 1/ms."""
    return 0.28 * 5.0 / _exprel((v - vt - 40.0) / 5.0)


def alpha_h(v: jax.Array, vt: jax.Array) -> jax.Array:
    """Na inactivation recovery rate, 1/ms (plain exp, as in Traub-Miles)."""
    return 0.128 * jnp.exp((17.0 - v + vt) / 18.0)


def beta_h(v: jax.Array, vt: jax.Array) -> jax.Array:
    """Na inactivation rate, 1/ms."""
    return 4.0 / (1.0 + jnp.exp((40.0 - v + vt) / 5.0))


def alpha_n(v: jax.Array, vt: jax.Array) -> jax.Array:
    """K activation opening rate, 1/ms."""
    return 0.032 * 5.0 / _exprel((15.0 - v + vt) / 5.0)


def beta_n(v: jax.Array, vt: jax.Array) -> jax.Array:
    """K activation closing rate, 1/ms."""
    return 0.5 * jnp.exp((10.0 - v + vt) / 40.0)


def _gate_step(x: jax.Array, a: jax.Array, b: jax.Array, dt: float) -> jax.Array:
    """Exact update of dx/dt = a (1 - x) - b x over dt with a, b frozen."""
    x_inf = a / (a + b)
    return x_inf + (x - x_inf) * jnp.exp(-(a + b) * dt)


def gates_step(p: Mapping[str, jax.Array], v: jax.Array, gates: tuple, dt: float) -> tuple:
    """m, h, n after dt, each exact for the potential v held fixed."""
    m, h, n = gates
    vt = p["vth"]
    return (_gate_step(m, alpha_m(v, vt), beta_m(v, vt), dt),
            _gate_step(h, alpha_h(v, vt), beta_h(v, vt), dt),
            _gate_step(n, alpha_n(v, vt), beta_n(v, vt), dt))


def voltage_step(p: Mapping[str, jax.Array], v: jax.Array, gates: tuple, i_ext: jax.Array,
                 dt: float) -> jax.Array:
    """V after dt, exact for the gates and the current held fixed."""
    m, h, n = gates
    g_na = p["g_na"] * m ** 3 * h
    g_k = p["g_kd"] * n ** 4
    g_tot = g_na + g_k + p["gl"]
    v_inf = (g_na * p["ENa"] + g_k * p["EK"] + p["gl"] * p["EL"] + i_ext) / g_tot
    return v_inf + (v - v_inf) * jnp.exp(-g_tot * dt / p["C"])


# gates: Rush & Larsen (1978); alternated with V's exact step as Strang (1968) splitting
def hh_step(p: Mapping[str, jax.Array], state: tuple, i_ext: jax.Array, dt: float) -> tuple:
    """One exponential-Euler step: gates exact for frozen V, then V exact for the new gates
    (the gates read as half a step ahead of V: second order in dt)."""
    v, *gates = state
    gates = gates_step(p, v, gates, dt)
    return (voltage_step(p, v, gates, i_ext, dt), *gates)


def hh_sample_step(p: Mapping[str, jax.Array], state: tuple, i_ext: jax.Array, dt: float,
                   substeps: int) -> tuple:
    """One sample interval dt as `substeps` exponential-Euler steps of dt / substeps, the
    current held for the whole interval."""
    h = dt / substeps

    def one(s: tuple, _) -> tuple:
        return hh_step(p, s, i_ext, h), None

    # unrolled when compiled, as a Python loop would be, but traced once: a third of the tracing
    return jax.lax.scan(one, state, None, length=substeps, unroll=substeps)[0]


def steady_state_gates(v: jax.Array, vt: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Gate values at rest for potential v (an option; the default starts at m = h = n = 0)."""
    def inf(a, b):
        return a / (a + b)
    return (inf(alpha_m(v, vt), beta_m(v, vt)), inf(alpha_h(v, vt), beta_h(v, vt)),
            inf(alpha_n(v, vt), beta_n(v, vt)))


def soft_crossings(v: jax.Array, v_prev: jax.Array, threshold: float, width: float) -> jax.Array:
    """Smooth upward-crossing detector: its sum over one clean crossing is 1, located at the crossing."""
    rise = jax.nn.sigmoid((v - threshold) / width) - jax.nn.sigmoid((v_prev - threshold) / width)
    return jnp.maximum(rise, 0.0)


def simulate_hh(params: Mapping[str, jax.Array], current: jax.Array, dt: float,
                steady_state: bool = False,
                substeps: int = HH_SUBSTEPS) -> tuple[jax.Array, jax.Array]:
    """Simulate P parameter sets on N current traces, each sample interval in `substeps`
    steps: returns V [P, N, T] (mV) and soft spikes."""
    p = {k: jnp.asarray(params[k])[:, None] for k in HH_DEFAULTS}
    n_sets = p["gl"].shape[0]
    v0 = jnp.full((n_sets, current.shape[0]), V_INIT_MV, dtype=current.dtype)
    if steady_state:
        m0, h0, n0 = steady_state_gates(v0, p["vth"])
    else:
        m0 = h0 = n0 = jnp.zeros_like(v0)

    def body(state, i_t):
        return hh_sample_step(p, state, i_t[None, :], dt, substeps), state[0]

    _, vs = jax.lax.scan(body, (v0, m0, h0, n0), current.T)
    v = jnp.moveaxis(vs, 0, -1)  # v[..., k] is V at time k * dt, v[..., 0] the initial value
    spikes = soft_crossings(v[..., 1:], v[..., :-1], SPIKE_THRESHOLD_MV, SOFT_SPIKE_WIDTH_MV)
    return v, jnp.concatenate([jnp.zeros_like(v[..., :1]), spikes], axis=-1)


def hh_spike_times(v: np.ndarray, spikes: np.ndarray | None, dt: float) -> list[np.ndarray]:
    """Spike times (ms) of HH traces v [N, T]: upward crossings of SPIKE_THRESHOLD_MV."""
    return spike_times(v, SPIKE_THRESHOLD_MV, dt)


THRESHOLD_ABOVE_VTH_MV = 13.0  # the spike threshold (dV/dt > 20 mV/ms) lies 12-16 mV above vth


def hh_starts_from(estimates: Mapping[str, float | None]) -> dict[str, float]:
    """HH values a recorded cell's estimates give: leak gl = 1 / R_in (uS from MOhm),
    C = tau / R_in (nF from ms / MOhm), EL = the resting potential, vth from the threshold."""
    out = {}
    r_in, tau = estimates.get("r_in"), estimates.get("tau")
    if r_in:
        out["gl"] = 1.0 / r_in
        if tau:
            out["C"] = tau / r_in
    if estimates.get("v_rest") is not None:
        out["EL"] = estimates["v_rest"]
    if estimates.get("v_threshold") is not None:
        out["vth"] = estimates["v_threshold"] - THRESHOLD_ABOVE_VTH_MV
    return out


def make_hh(steady_state: bool = False, substeps: int = HH_SUBSTEPS) -> NeuronModel:
    """The HH model description; `steady_state` starts the gates at rest instead of at 0,
    `substeps` exponential-Euler steps integrate each sample interval."""
    if substeps < 1:
        raise ValueError(f"substeps must be at least 1, got {substeps}")
    return NeuronModel(
        name="hh",
        units=HH_UNITS,
        defaults=HH_DEFAULTS,
        simulate=partial(simulate_hh, steady_state=steady_state, substeps=substeps),
        spikes_of=hh_spike_times,
        description="Traub-Miles Hodgkin-Huxley neuron (Brian2 HH examples), exponential Euler "
                    f"in {substeps} steps per sample",
        # C divides; gl is the only conductance open while the gates start at 0 (g_tot divides)
        positive=frozenset({"gl", "C"}),
        nonnegative=frozenset({"g_na", "g_kd"}),
        starts_from=hh_starts_from,
    )
