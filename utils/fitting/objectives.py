"""The objectives of a fitting problem over unit coordinates Z [B, D]: the real loss and the
stages a gradient-based method runs (`make_objectives`). NumPy in and out, each one compiled
call, run in float64.

Every loss is a sum of squared residuals: the voltage MSE, the van Rossum distance, and the
presearch's voltage MSE plus threshold penalty. Models with `simulate_forced` (GIF) get a
presearch that forces resets at the target's spike times, so the voltage error no longer jumps
when a spike moves by a step; `threshold_residuals` is what constrains the threshold
parameters. It is smooth where the real objective is rugged (see README). Where the problem's
`presearch_dt` is coarser than dt, a cheaper presearch on that grid runs first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from utils.fitting.metrics import alpha_filter, spike_counts_on_grid
from utils.fitting.optim import Objectives, Stage
from utils.devices import local_devices
from utils.fitting.problem import Problem

__all__ = ["make_objectives", "population_mesh", "forced_spike_steps", "threshold_residuals",
           "real_residuals", "forced_residuals", "sum_of_squares", "value_and_grad",
           "gauss_newton"]

Residuals = Callable[[jax.Array], jax.Array]  # Z [B, D] -> residuals [B, M]


@dataclass(frozen=True)
class _Targets:
    """The problem's arrays on the device, in float64."""

    current: jax.Array              # [N, T] nA
    v_target: jax.Array | None      # [N, T] mV
    filtered: jax.Array | None      # target spike trains through the alpha filter (spike target)


def _targets(problem: Problem) -> _Targets:
    with jax.enable_x64(True):
        current = jnp.asarray(problem.current)
        v_target = jnp.asarray(problem.v_target) if problem.v_target is not None else None
        filtered = None
        if problem.target == "spike":
            grid = spike_counts_on_grid(problem.spikes_target, current.shape[1], problem.dt)
            filtered = alpha_filter(jnp.asarray(grid), problem.dt, problem.spike_tau)
    return _Targets(current, v_target, filtered)


def _flat(x):
    """[P, ...] -> [P, M]."""
    return x.reshape(x.shape[0], -1)


def _params_of(problem: Problem, z) -> dict:
    """Every parameter [B] of the model for unit coordinates z [B, D]."""
    x = problem.box.to_params(z, jnp)
    params = {n: x[:, k] for k, n in enumerate(problem.free)}
    params.update({n: jnp.full(z.shape[:1], v) for n, v in problem.fixed.items()})
    return params


# --------------------------------------------------------------------------- residuals

def real_residuals(problem: Problem, targets: _Targets) -> Residuals:
    """Residuals of the real loss: their sum of squares is the voltage MSE over every sample
    (potential target) or the squared van Rossum distance (spike target,
    utils.fitting.metrics.van_rossum_loss)."""
    n_traces, n_steps = targets.current.shape

    def residuals(z):
        v, s = problem.model.simulate(_params_of(problem, z), targets.current, problem.dt)
        if problem.target == "potential":
            return _flat(v - targets.v_target) / np.sqrt(n_traces * n_steps)
        diff = alpha_filter(s, problem.dt, problem.spike_tau) - targets.filtered
        return _flat(diff) * np.sqrt(problem.dt / (problem.spike_tau * n_traces))
    return residuals


def forced_spike_steps(spikes: Sequence[np.ndarray], n_steps: int, dt: float) -> np.ndarray:
    """[N, T] bool: True for the step (sample k to k + 1) in which each spike happened."""
    out = np.zeros((len(spikes), n_steps), dtype=bool)
    for row, ts in zip(out, spikes):
        k = np.ceil(np.asarray(ts, dtype=float) / dt - 1e-9).astype(int) - 1
        row[k[(k >= 0) & (k < n_steps)]] = True
    return out


def threshold_residuals(x_start, x_end, forced, n_spikes: int):
    """Residuals [P, 3 N T] of the penalty for a threshold that is not crossed within each
    recorded spike's step, or that is crossed elsewhere; their sum of squares is in mV^2 per
    recorded spike (zero for the true parameters)."""
    zero = jnp.zeros_like(x_end)
    parts = (jnp.where(forced, jax.nn.relu(-x_end), zero),
             jnp.where(forced, jax.nn.relu(x_start), zero),
             jnp.where(forced, zero, jax.nn.relu(x_end)))
    return jnp.concatenate([_flat(p) for p in parts], axis=-1) / np.sqrt(max(1, n_spikes))


def forced_residuals(problem: Problem, targets: _Targets, factor: int) -> Residuals:
    """Presearch residuals (spikes forced at the target's) on a grid `factor` times coarser
    than dt: block means of the current (exact for step protocols aligned with it), the target
    sampled on it; the threshold penalty, plus the voltage error for a potential target."""
    with jax.enable_x64(True):
        n_c, dt_c = targets.current.shape[1] // factor, problem.dt * factor
        current_c = targets.current[:, :n_c * factor].reshape(-1, n_c, factor).mean(-1)
        v_target_c = (targets.v_target[:, ::factor][:, :n_c] if targets.v_target is not None
                      else None)
        forced_np = forced_spike_steps(problem.spikes_target or [], n_c, dt_c)
        forced, n_spikes = jnp.asarray(forced_np), int(forced_np.sum())

    def residuals(z):
        v, x_start, x_end = problem.model.simulate_forced(_params_of(problem, z), current_c,
                                                          dt_c, forced)
        r = threshold_residuals(x_start, x_end, forced, n_spikes)
        if problem.target == "potential":
            r = jnp.concatenate([r, _flat(v - v_target_c) / np.sqrt(v_target_c.size)], axis=-1)
        return r
    return residuals


# --------------------------------------------------------------------------- batched calls

def sum_of_squares(residuals: Residuals) -> Callable[[jax.Array], jax.Array]:
    """Z [B, D] -> loss [B]."""
    return lambda z: jnp.sum(residuals(z) ** 2, axis=-1)


def population_mesh(devices: int | None) -> Mesh | None:
    """A one-axis mesh ("pop") over the first `devices` local devices, to shard a population
    of parameter sets; None for one device. UserError if more are asked than present."""
    chosen = local_devices(devices)
    return Mesh(np.array(chosen), ("pop",)) if len(chosen) > 1 else None


def _shard_rows(z: np.ndarray, mesh: Mesh | None) -> jax.Array:
    """Z [B, D] on the devices of `mesh`, rows split among them (padded with copies of the
    last row to a multiple of the device count); on the default device without a mesh."""
    if mesh is None:
        return jnp.asarray(z)
    pad = (-len(z)) % mesh.size
    if pad:
        z = np.concatenate([z, np.repeat(z[-1:], pad, axis=0)])
    return jax.device_put(jnp.asarray(z), NamedSharding(mesh, PartitionSpec("pop")))


def _numpy_in_out(fn, mesh: Mesh | None = None):
    """`fn` compiled, called in float64 on NumPy input Z [B, D] (its rows sharded over `mesh`,
    if given: XLA partitions the simulation of the population), returning NumPy arrays."""
    jitted = jax.jit(fn)

    def call(z: np.ndarray):
        with jax.enable_x64(True):
            out = jitted(_shard_rows(np.asarray(z), mesh))
            rows = len(z)
            return tuple(np.asarray(o)[:rows] for o in out) if isinstance(out, tuple) \
                else np.asarray(out)[:rows]
    return call


FORWARD_MODE_MAX_DIM = 5  # gradients by forward mode up to this many free parameters


def _forward_jacobian(residuals: Residuals, z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Residuals r [B, M] and their Jacobian J [D, B, M] by one forward-mode pass over D copies
    of the batch (rows are independent; this compiles and runs faster than a vmap of jvp over
    the D tangents)."""
    n_b, n_d = z.shape
    tangents = jnp.repeat(jnp.eye(n_d), n_b, axis=0)  # copy d of the batch: e_d
    r_all, jac = jax.jvp(residuals, (jnp.tile(z, (n_d, 1)),), (tangents,))
    return r_all[:n_b], jac.reshape(n_d, n_b, -1)


def _loss_and_gradient(r: jax.Array, jac: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Sum of squares [B] and its gradient 2 J^T r [B, D]."""
    return jnp.sum(r ** 2, axis=-1), 2.0 * jnp.einsum("dbm,bm->bd", jac, r)


def value_and_grad(residuals: Residuals, score=None, mesh: Mesh | None = None):
    """Z -> (loss [B], gradient [B, D]) of the sum of squares, then score(Z) if given. Up to
    FORWARD_MODE_MAX_DIM parameters the gradient is 2 J^T r by forward mode: a simulation's
    reverse pass (a second scan over time, reading back every step) costs more than the
    forward pass over D copies (benchmarks/gradient_modes.py)."""
    loss = sum_of_squares(residuals)

    def summed(z):
        per = loss(z)
        return jnp.sum(per), per

    def fn(z):
        if z.shape[1] <= FORWARD_MODE_MAX_DIM:
            per, g = _loss_and_gradient(*_forward_jacobian(residuals, z))
        else:
            g, per = jax.grad(summed, has_aux=True)(z)
        return (per, g) if score is None else (per, g, score(z))
    return _numpy_in_out(fn, mesh)


def gauss_newton(residuals: Residuals, score=None, mesh: Mesh | None = None):
    """Z -> (loss [B], gradient [B, D], Gauss-Newton Hessian 2 J^T J [B, D, D]), then score(Z)
    if given."""
    def fn(z):
        r, jac = _forward_jacobian(residuals, z)
        out = (*_loss_and_gradient(r, jac), 2.0 * jnp.einsum("dbm,ebm->bde", jac, jac))
        return out if score is None else (*out, score(z))
    return _numpy_in_out(fn, mesh)


def _stage(name: str, residuals: Residuals, score=None, mesh: Mesh | None = None) -> Stage:
    """A stage; a surrogate one (given the real loss as `score`) reports it at its points."""
    return Stage(name, value_and_grad(residuals, score, mesh),
                 gauss_newton(residuals, score, mesh), surrogate=score is not None)


# --------------------------------------------------------------------------- objectives

def _presearch_factors(problem: Problem) -> list[int]:
    """Grid factors (in dt steps) of the presearch stages, coarsest first; none where the
    model cannot force spikes, presearch is off or the target has no spike."""
    if not (problem.model.simulate_forced is not None and problem.presearch
            and any(len(s) for s in problem.spikes_target or [])):
        return []
    coarse = max(1, int(round((problem.presearch_dt or problem.dt) / problem.dt)))
    return [coarse, 1] if coarse > 1 else [1]


def make_objectives(problem: Problem, devices: int | None = 1) -> Objectives:
    """The problem's real loss, and its stages: the coarse-grid presearch ("coarse") and the
    presearch on dt ("presearch") where the problem has them, each scoring its points on the
    real loss, then the real loss with its derivatives ("real"). With `devices` > 1 (None:
    every local device) each call shards its population of parameter sets over them."""
    mesh = population_mesh(devices)
    targets = _targets(problem)
    residuals = real_residuals(problem, targets)
    real_loss = sum_of_squares(residuals)
    presearch = [_stage("presearch" if factor == 1 else "coarse",
                        forced_residuals(problem, targets, factor), real_loss, mesh)
                 for factor in _presearch_factors(problem)]
    return Objectives(loss=_numpy_in_out(real_loss, mesh),
                      stages=(*presearch, _stage("real", residuals, mesh=mesh)))
