"""Helpers shared by the fitting tests (import as `from tests.fitting_helpers import ...`)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def simulate_one(simulate, params: dict, current: np.ndarray, dt: float):
    """V [N, T] and the spike signal [N, T] (NumPy, float64) of one parameter set, by a model's
    batched `simulate(params, current, dt)`."""
    with jax.enable_x64(True):
        p = {k: jnp.full((1,), v) for k, v in params.items()}
        v, s = simulate(p, jnp.asarray(current), dt)
        return np.asarray(v[0]), np.asarray(s[0])


def write_csv(path, rows) -> str:
    """`rows` as a CSV file at `path`; returns the path as a string (for a flag)."""
    np.savetxt(path, rows, delimiter=",")
    return str(path)
