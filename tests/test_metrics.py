"""Metrics on hand-built spike trains, with values computed by hand."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.spec import spike_times
from utils.fitting.metrics import (alpha_filter, gamma_factor, mean_gamma, spike_counts_on_grid,
                                   van_rossum_loss)


def test_gamma_identical_trains_is_one():
    t = np.array([5.0, 20.0, 33.0, 80.0])
    assert gamma_factor(t, t, window=2.0, duration=100.0) == pytest.approx(1.0)


def test_gamma_by_hand():
    data, model = np.array([10.0, 30.0, 50.0, 70.0]), np.array([11.0, 45.0, 70.5])
    # 2 coincidences; nu_m = 0.03/ms; expected = 2*0.03*2*4 = 0.48;
    # norm = 0.5*(4+3)*(1-2*0.03*2) = 3.08 -> (2-0.48)/3.08
    raw = (2 - 0.48) / 3.08
    assert gamma_factor(model, data, 2.0, 100.0, rate_correction=False) == pytest.approx(raw)
    # rate correction 2|0.04-0.03|/0.04 = 0.5
    assert gamma_factor(model, data, 2.0, 100.0) == pytest.approx(raw - 0.5)


def test_gamma_window_is_in_ms():
    data, model = np.array([10.0, 50.0]), np.array([12.5, 52.5])
    # 2.5 ms apart: no coincidence within 2 ms -> (0 - 2*0.02*2*2) / (2*(1-0.08))
    assert gamma_factor(model, data, 2.0, 100.0) == pytest.approx(-0.16 / 1.84)
    assert gamma_factor(model, data, 3.0, 100.0) == pytest.approx(1.0)


def test_gamma_one_model_spike_matches_one_data_spike():
    data, model = np.array([10.0, 11.0]), np.array([10.5])
    # 1 coincidence; nu_m = 0.01; expected = 2*0.01*1*2 = 0.04; norm = 0.5*3*(1-0.02) = 1.47
    raw = (1 - 0.04) / 1.47
    assert gamma_factor(model, data, 1.0, 100.0, rate_correction=False) == pytest.approx(raw)


def test_gamma_silent_cases():
    assert gamma_factor(np.array([]), np.array([]), 2.0, 100.0) == 1.0
    assert gamma_factor(np.array([3.0]), np.array([]), 2.0, 100.0) == 0.0
    assert mean_gamma([np.array([])], [np.array([])], 2.0, 100.0) is None


def test_spike_times_counts_upward_crossings_only():
    v = np.array([[-70, -10, 20, 30, -10, -70, 0, 10, -30.0]])
    # crossings interpolated: -20 between -70 and -10 at 5/6 of the step; between -70 and 0 at 5/7
    np.testing.assert_allclose(spike_times(v, -20.0, 0.5)[0], [0.5 * 5 / 6, 0.5 * (5 + 5 / 7)])


def test_van_rossum_one_unmatched_spike_costs_half():
    with jax.enable_x64(True):
        dt, tau, n = 0.01, 5.0, 6000
        one = spike_counts_on_grid([np.array([10.0])], n, dt)
        target = alpha_filter(jnp.asarray(one), dt, tau)
        assert float(van_rossum_loss(jnp.zeros((1, 1, n)), target, dt, tau)[0]) == \
            pytest.approx(0.5, rel=0.03)
        assert float(van_rossum_loss(jnp.asarray(one)[None], target, dt, tau)[0]) == 0.0


def test_van_rossum_is_quadratic_in_small_shifts():
    """Alpha kernel: shifting a spike by d costs ~ d^2 (a smooth minimum), not ~ |d|."""
    with jax.enable_x64(True):
        dt, tau, n = 0.01, 5.0, 6000

        def cost(shift):
            a = spike_counts_on_grid([np.array([10.0])], n, dt)
            b = spike_counts_on_grid([np.array([10.0 + shift])], n, dt)
            return float(van_rossum_loss(jnp.asarray(b)[None], alpha_filter(jnp.asarray(a), dt,
                                                                             tau), dt, tau)[0])
        assert cost(0.2) / cost(0.1) == pytest.approx(4.0, rel=0.05)


def test_sub_sample_spike_times_are_kept_on_the_grid():
    grid = spike_counts_on_grid([np.array([0.25, 0.5])], 5, 0.1)
    np.testing.assert_allclose(grid[0], [0, 0, 0.5, 0.5, 0])
    np.testing.assert_allclose(grid.sum(), 1.0)  # the spike at 0.5 ms falls off the 5-sample grid
