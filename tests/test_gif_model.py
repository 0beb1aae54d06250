"""The GIF model against an independent NumPy implementation and finite differences, and the
default problem's identifiability."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.gif import (GIF_DEFAULTS, make_gif, simulate_gif, simulate_gif_forced,
                        spike_times_from_signal)
from neuron_fitting_of_gif_model import TRUTH, authors_protocol
from utils.fitting.problem import simulate_cell

DT = 0.1


def _numpy_reference(p, current, dt):
    """Plain-float loop: exponential sub-steps with the driving variables at mid-step, spike at
    the linearly interpolated crossing of V - Theta, reset there, and the rest of the step
    integrated from the reset state."""
    def advance(v, th, i1, i2, i_ext, h):
        i1_mid, i2_mid = i1 * math.exp(-p["k1"] * h / 2), i2 * math.exp(-p["k2"] * h / 2)
        v_inf = p["V_rest"] + p["R"] * (i_ext + i1_mid + i2_mid)
        v_new = v_inf + (v - v_inf) * math.exp(-h / p["tau"])
        v_mid = v_inf + (v - v_inf) * math.exp(-h / (2 * p["tau"]))
        drive = p["a"] * (v_mid - p["V_rest"]) + p["b"] * p["V_th_inf"]
        integral = h if p["b"] == 0 else (1 - math.exp(-p["b"] * h)) / p["b"]
        th_new = th * math.exp(-p["b"] * h) + drive * integral
        return v_new, th_new, i1 * math.exp(-p["k1"] * h), i2 * math.exp(-p["k2"] * h)

    volts, times = np.empty_like(current), []
    for n, trace in enumerate(current):
        state, spikes = (p["V_rest"], p["V_th_inf"], 0.0, 0.0), []
        for k, i_ext in enumerate(trace):
            volts[n, k] = state[0]
            new = advance(*state, i_ext, dt)
            x0, x1 = state[0] - state[1], new[0] - new[1]
            if x0 < 0 <= x1:
                phi = x0 / (x0 - x1)
                cross = [s + phi * (q - s) for s, q in zip(state, new)]
                reset = (p["V_reset"], max(p["V_th_reset"], cross[1]),
                         p["R1"] * cross[2] + p["A1"], p["R2"] * cross[3] + p["A2"])
                new = advance(*reset, i_ext, (1 - phi) * dt)
                spikes.append((k + phi) * dt)
            state = new
        times.append(np.array(spikes))
    return volts, times


def _run(params, current, dt=DT):
    return simulate_cell(make_gif(), params, current, dt)


def test_matches_numpy_reference_including_spike_times():
    current = authors_protocol(DT)
    v, s = _run(TRUTH, current)
    ref_v, ref_t = _numpy_reference(TRUTH, current, DT)
    np.testing.assert_allclose(v, ref_v, atol=1e-8)
    ours = spike_times_from_signal(s, DT)
    assert [len(t) for t in ours] == [len(t) for t in ref_t] and sum(map(len, ref_t)) >= 5
    for a, b in zip(ours, ref_t):
        np.testing.assert_allclose(a, b, atol=1e-8)


def test_rebound_spike_after_hyperpolarization():
    """Theta falls below V_th_reset during hyperpolarization (a > 0): release gives a spike."""
    p = {**GIF_DEFAULTS, "a": 0.005}
    current = authors_protocol(DT)[4:5]  # -3.5 nA for 750 ms, then 0
    v, s = _run(p, current)
    times = spike_times_from_signal(s, DT)[0]
    assert len(times) >= 1 and times.min() > 800.0


def _mse(name_values, current, target):
    p = {k: jnp.full((1,), v) for k, v in TRUTH.items()}
    p.update({k: x[None] for k, x in name_values.items()})
    v, _ = simulate_gif(p, current, DT)
    return jnp.mean((v[0] - target) ** 2)


def test_gradient_matches_finite_differences():
    names = ["a", "b", "k1", "k2"]
    with jax.enable_x64(True):
        current = jnp.asarray(authors_protocol(DT)[:3, :6000])
        target, _ = _run(TRUTH, np.asarray(current))
        x0 = jnp.array([0.0052, 0.0097, 0.21, 0.021])
        loss = jax.jit(lambda x: _mse(dict(zip(names, x)), current, jnp.asarray(target)))
        grad = np.asarray(jax.grad(loss)(x0))
        assert np.all(np.abs(grad) < 1e8), "gradients should not explode"
        for i in range(4):
            eps = 1e-7 * float(x0[i])
            e = jnp.zeros(4).at[i].set(eps)
            fd = (float(loss(x0 + e)) - float(loss(x0 - e))) / (2 * eps)
            assert grad[i] != 0.0
            np.testing.assert_allclose(grad[i], fd, rtol=1e-3)


@pytest.mark.parametrize("name", ["a", "b", "k1", "k2"])
def test_each_fitted_parameter_changes_the_voltage(name):
    """The default target is identifiable: 5% off in any fitted parameter costs far more than
    0.5 mV of recording noise (MSE 0.25 mV^2)."""
    current = authors_protocol(DT)
    target, _ = _run(TRUTH, current)
    off, _ = _run({**TRUTH, name: TRUTH[name] * 1.05}, current)
    assert np.mean((off - target) ** 2) > 0.25


def test_forced_resets_reproduce_free_run_at_the_truth():
    """Forcing spikes in the steps where the free run spiked gives the same trajectory, and the
    threshold is crossed exactly within those steps."""
    current = authors_protocol(DT)[:2]
    v, s = _run(TRUTH, current)
    times = spike_times_from_signal(s, DT)
    forced = np.zeros_like(current, dtype=bool)
    for row, ts in zip(forced, times):
        row[np.ceil(ts / DT - 1e-9).astype(int) - 1] = True
    with jax.enable_x64(True):
        p = {k: jnp.full((1,), x) for k, x in TRUTH.items()}
        vf, x0, x1 = simulate_gif_forced(p, jnp.asarray(current), DT, jnp.asarray(forced))
    np.testing.assert_allclose(np.asarray(vf[0]), v, atol=1e-9)
    x0, x1 = np.asarray(x0[0]), np.asarray(x1[0])
    assert np.all(x0[forced] < 0) and np.all(x1[forced] >= 0) and np.all(x1[~forced] < 0)


def test_spike_times_converge_at_second_order_in_dt():
    """The exponential midpoint step: halving dt cuts the spike-time error (against dt 0.01 ms)
    about 4x, and at the default 0.1 ms it is below 1 us (frozen drives: 0.24 ms)."""
    def spike_times(dt):
        v, s = _run(TRUTH, authors_protocol(dt)[:3], dt)
        return np.concatenate(spike_times_from_signal(s, dt))

    ref = spike_times(0.01)
    err = {}
    for dt in (0.5, 0.25, 0.1):
        times = spike_times(dt)
        assert len(times) == len(ref) >= 10
        err[dt] = np.abs(times - ref).max()
    assert 3.5 < err[0.5] / err[0.25] < 4.5
    assert err[0.1] < 1e-3
