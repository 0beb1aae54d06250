"""The objectives of fitting problems over unit coordinates Z [B, D]: the real loss and the
stages a gradient-based method runs. NumPy in and out, each one compiled call, run in float64.

Cells are fitted as a cohort: problems that differ only in their recordings (same model,
settings, free parameters, box and trace shapes). Their recordings are stacked and given to the
compiled functions as arguments, never as constants, so that one compilation serves every cell
of the cohort (and the disk cache serves later runs on other recordings), and each row of a
batch names the cell it belongs to: starts of many cells are evaluated together. A single
cell's problem is a cohort of one (`make_objectives` takes one problem or many).

Every loss is a sum of squared residuals: the voltage MSE, the van Rossum distance, and the
presearch's voltage MSE plus threshold penalty. Models with `simulate_forced` (GIF) get a
presearch that forces resets at the target's spike times, so the voltage error no longer jumps
when a spike moves by a step; `threshold_residuals` is what constrains the threshold
parameters. It is smooth where the real objective is rugged (see README). Where the problem's
`presearch_dt` is coarser than dt, a cheaper presearch on that grid runs first.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from utils.devices import local_devices
from utils.fitting.features import subthreshold_mask
from utils.fitting.metrics import alpha_filter, spike_counts_on_grid
from utils.fitting.optim import GAIN_RTOL, SPIKING_GAIN_RTOL, Objectives, Stage
from utils.fitting.starts import LONG_MIN_ROWS, MIN_ROWS
from utils.fitting.problem import Problem

__all__ = ["Rows", "cohort_key", "make_objectives", "rows_mesh",
           "forced_spike_steps", "threshold_residuals", "real_residuals", "forced_residuals",
           "sum_of_squares", "value_and_grad", "gauss_newton"]

CAP_WIDTH_MV = 1.0  # width of the soft cap of `capped`
Data = dict  # name -> one cell's array, or the cohort's arrays stacked [C, ...]
CellResiduals = Callable[[jax.Array, Data], jax.Array]  # Z [P, D], one cell's data -> [P, M]
Residuals = Callable[[jax.Array, jax.Array, Data], jax.Array]  # Z [B, D], cells [B] -> [B]


def _params_of(problem: Problem, z) -> dict:
    """Every parameter [P] of the model for unit coordinates z [P, D]."""
    x = problem.box.to_params(z, jnp)
    params = {n: x[:, k] for k, n in enumerate(problem.free)}
    params.update({n: jnp.full(z.shape[:1], v) for n, v in problem.fixed.items()})
    return params


# --------------------------------------------------------------------------- one cell's data

def _presearch_factors(problem: Problem) -> list[int]:
    """Grid factors (in dt steps) of the presearch stages, coarsest first; none where the
    model cannot force spikes, presearch is off or the target has no spike."""
    if not (problem.model.simulate_forced is not None and problem.presearch
            and any(len(s) for s in problem.spikes_target or [])):
        return []
    coarse = max(1, int(round((problem.presearch_dt or problem.dt) / problem.dt)))
    return [coarse, 1] if coarse > 1 else [1]


def forced_spike_steps(spikes: Sequence[np.ndarray], n_steps: int, dt: float) -> np.ndarray:
    """[N, T] bool: True for the step (sample k to k + 1) in which each spike happened."""
    out = np.zeros((len(spikes), n_steps), dtype=bool)
    for row, ts in zip(out, spikes):
        k = np.ceil(np.asarray(ts, dtype=float) / dt - 1e-9).astype(int) - 1
        row[k[(k >= 0) & (k < n_steps)]] = True
    return out


def _cell_data(problem: Problem) -> Data:
    """The arrays of one cell the objectives read: its current, its target (the voltage, or
    the spike trains through the alpha filter), and for each presearch grid the block-mean
    current (exact for step protocols aligned with it), the target sampled on it, the steps
    with a recorded spike and their count."""
    data = {"current": np.asarray(problem.current, float)}
    n_steps = problem.current.shape[1]
    if problem.target == "potential" and not problem.spike_weight:
        data["v_target"] = np.asarray(problem.v_target, float)
    else:
        grid = spike_counts_on_grid(problem.spikes_target, n_steps, problem.dt)
        with jax.enable_x64(True):
            data["filtered"] = np.asarray(alpha_filter(jnp.asarray(grid), problem.dt,
                                                       problem.spike_tau))
    mask = (subthreshold_mask(problem.spikes_target, n_steps, problem.dt)
            if problem.spike_weight else np.ones(problem.current.shape))
    if problem.spike_weight:
        # residuals of a silent model: the target's filtered trains, scaled as van_rossum_loss
        per_sample = problem.dt / (problem.spike_tau * len(problem.current))
        silent = np.sum(data["filtered"] ** 2) * per_sample
        data["spike_scale"] = np.sqrt(per_sample * problem.spike_weight / max(silent, 1e-12))
        data["v_weight"] = mask / np.sqrt(max(1, mask.sum()))
        data["v_cap"] = np.float64(problem.v_cap)
        data["v_sub"] = np.asarray(capped(problem.v_target, problem.v_cap))
    for f in _presearch_factors(problem):
        n_c = problem.current.shape[1] // f
        forced = forced_spike_steps(problem.spikes_target or [], n_c, problem.dt * f)
        data[f"current_{f}"] = problem.current[:, :n_c * f].reshape(-1, n_c, f).mean(-1)
        data[f"forced_{f}"] = forced
        data[f"n_spikes_{f}"] = np.float64(max(1, int(forced.sum())))
        if problem.v_target is not None:
            data[f"v_target_{f}"] = np.asarray(problem.v_target, float)[:, ::f][:, :n_c]
            weight = mask[:, ::f][:, :n_c]
            data[f"v_weight_{f}"] = weight / np.sqrt(max(1, weight.sum()))
    return data


def capped(v, cap, xp=np):
    """v below `cap`, smoothly bent onto it above (a softplus of width CAP_WIDTH_MV): the
    subthreshold loss compares voltages where an action potential's shape no longer counts."""
    return cap - CAP_WIDTH_MV * xp.logaddexp(0.0, (cap - v) / CAP_WIDTH_MV)


def cohort_key(problem: Problem) -> tuple:
    """What must be equal for problems to share compiled objectives (a cohort): everything
    but the recordings' values."""
    model = problem.model  # its name and simulators (a partial's repr shows its options)
    return (model.name, repr(model.simulate), repr(model.simulate_forced), problem.dt,
            problem.target, problem.spike_weight, tuple(problem.free),
            tuple(sorted(problem.fixed.items())), tuple(problem.box.lo), tuple(problem.box.hi),
            problem.spike_tau, problem.presearch, problem.presearch_dt,
            tuple(_presearch_factors(problem)), np.shape(problem.current),
            problem.v_target is None)


# --------------------------------------------------------------------------- residuals

def _flat(x):
    """[P, ...] -> [P, M]."""
    return x.reshape(x.shape[0], -1)


def real_residuals(problem: Problem) -> CellResiduals:
    """Residuals [P, M] of the real loss at points Z [P, D] for one cell: each row's sum of
    squares is the voltage MSE over every sample (potential target), the squared van Rossum
    distance (spike target, utils.fitting.metrics.van_rossum_loss), or, for a potential target
    with `spike_weight` > 0, the MSE of the capped voltages over the samples outside the
    recorded spikes' windows plus spike_weight (mV^2) times the squared van Rossum distance
    relative to a silent model's (so that a model without any spike pays spike_weight)."""
    n_traces, n_steps = problem.current.shape

    spike_scale = np.sqrt(problem.dt / (problem.spike_tau * n_traces))

    def residuals(z, cell):
        v, s = problem.model.simulate(_params_of(problem, z), cell["current"], problem.dt)
        if problem.target == "potential" and not problem.spike_weight:
            return _flat(v - cell["v_target"]) / np.sqrt(n_traces * n_steps)
        spikes = _flat(alpha_filter(s, problem.dt, problem.spike_tau) - cell["filtered"])
        if problem.target == "spike":
            return spikes * spike_scale
        sub = (capped(v, cell["v_cap"], jnp) - cell["v_sub"]) * cell["v_weight"]
        return jnp.concatenate([_flat(sub), spikes * cell["spike_scale"]], axis=-1)
    return residuals


def threshold_residuals(x_start, x_end, forced, n_spikes):
    """Residuals [P, 3 N T] of the penalty for a threshold that is not crossed within each
    recorded spike's step, or that is crossed elsewhere; their sum of squares is in mV^2 per
    recorded spike (`n_spikes`, at least 1; zero for the true parameters)."""
    zero = jnp.zeros_like(x_end)
    parts = (jnp.where(forced, jax.nn.relu(-x_end), zero),
             jnp.where(forced, jax.nn.relu(x_start), zero),
             jnp.where(forced, zero, jax.nn.relu(x_end)))
    return jnp.concatenate([_flat(p) for p in parts], axis=-1) / jnp.sqrt(n_spikes)


def forced_residuals(problem: Problem, factor: int) -> CellResiduals:
    """Presearch residuals [P, M] (spikes forced at the target's) on a grid `factor` times
    coarser than dt, at points Z [P, D] for one cell: the threshold penalty, plus the voltage
    error for a potential target."""
    dt_c = problem.dt * factor

    def residuals(z, cell):
        forced = cell[f"forced_{factor}"]
        v, x_start, x_end = problem.model.simulate_forced(
            _params_of(problem, z), cell[f"current_{factor}"], dt_c, forced)
        r = threshold_residuals(x_start, x_end, forced, cell[f"n_spikes_{factor}"])
        if problem.target == "potential":
            v_error = (v - cell[f"v_target_{factor}"]) * cell[f"v_weight_{factor}"]
            r = jnp.concatenate([r, _flat(v_error)], axis=-1)
        return r
    return residuals


class Rows:
    """How the rows of a batch (Z [B, D], the cell of each row [B]) read the cohort's data
    (stacked [C, ...]): with `shared` (a cohort of one) the whole batch is one simulation of B
    parameter sets on the same arrays; otherwise each row reads its own cell's arrays."""

    def __init__(self, shared: bool):
        self.shared = shared

    def map(self, fn, z: jax.Array, cells: jax.Array, data: Data):
        """fn(Z [P, D], one cell's data) -> outputs [P, ...], over the rows of the batch."""
        if self.shared:
            return fn(z, jax.tree.map(lambda a: a[0], data))

        def row(x, cell):
            return jax.tree.map(lambda out: out[0], fn(x[None], cell))
        return jax.vmap(row)(z, jax.tree.map(lambda a: a[cells], data))


# --------------------------------------------------------------------------- batched calls

def sum_of_squares(residuals: CellResiduals, rows: Rows) -> Residuals:
    """(Z [B, D], cells [B], data) -> loss [B]."""
    return lambda z, cells, data: rows.map(
        lambda x, cell: jnp.sum(residuals(x, cell) ** 2, axis=-1), z, cells, data)


def rows_mesh(devices: int | None) -> Mesh | None:
    """A one-axis mesh ("pop") over the first `devices` local devices, to shard the rows of a
    batch (parameter sets); None for one device. UserError if more are asked than present."""
    chosen = local_devices(devices)
    return Mesh(np.array(chosen), ("pop",)) if len(chosen) > 1 else None


def _shard_rows(x: np.ndarray, mesh: Mesh | None) -> jax.Array:
    """Rows of x [B, ...] on the devices of `mesh`, split among them (padded with copies of
    the last row to a multiple of the device count); on the default device without a mesh."""
    if mesh is None:
        return jax.device_put(x)  # a copy, not a compiled conversion as jnp.asarray's
    pad = (-len(x)) % mesh.size
    if pad:
        x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
    return jax.device_put(jnp.asarray(x), NamedSharding(mesh, PartitionSpec("pop")))


def _numpy_in_out(fn, data: Data, mesh: Mesh | None = None):
    """`fn(z, cells, data)` compiled, called in float64 as call(Z [B, D], cells [B]) on NumPy
    input (rows sharded over `mesh`, if given: XLA partitions the simulation of the
    rows; the cohort's data copied to every device), returning NumPy arrays. Without
    `cells` every row is the first cell's (a cohort of one)."""
    jitted = jax.jit(fn)
    with jax.enable_x64(True):
        placed = jax.device_put(data, None if mesh is None
                                else NamedSharding(mesh, PartitionSpec()))

    def call(z: np.ndarray, cells: np.ndarray | None = None):
        with jax.enable_x64(True):
            z = np.asarray(z, dtype=float)
            cells = np.zeros(len(z), np.int32) if cells is None else cells
            out = jitted(_shard_rows(z, mesh), _shard_rows(np.asarray(cells, np.int32), mesh),
                         placed)
            rows = len(z)
            return tuple(np.asarray(o)[:rows] for o in out) if isinstance(out, tuple) \
                else np.asarray(out)[:rows]
    return call


LONG_SWEEPS = 20000  # samples per row (all sweeps) from which calls pad to LONG_MIN_ROWS
SCREEN_FACTOR = 32  # with a spike-train term: candidates drawn per start kept
FORWARD_MODE_MAX_DIM = 6  # gradients by forward mode up to this many free parameters


def _forward_jacobian(residuals: CellResiduals, z: jax.Array,
                      cell: Data) -> tuple[jax.Array, jax.Array]:
    """Residuals r [P, M] at points Z [P, D] and each row's Jacobian J [D, P, M], by forward
    mode: the simulation of the P rows runs once, its D tangents alongside (tangent d moves
    coordinate d of every row: the rows are independent simulations)."""
    def along(e):
        return jax.jvp(lambda x: residuals(x, cell), (z,), (jnp.broadcast_to(e, z.shape),))
    return jax.vmap(along, out_axes=(None, 0))(jnp.eye(z.shape[1], dtype=z.dtype))


def _reverse_gradient(residuals: CellResiduals, z: jax.Array,
                      cell: Data) -> tuple[jax.Array, jax.Array]:
    """Each row's sum of squares [P] and its gradient [P, D] by reverse mode (one pullback:
    a row's loss depends on its own point only)."""
    losses, pullback = jax.vjp(lambda x: jnp.sum(residuals(x, cell) ** 2, axis=-1), z)
    return losses, pullback(jnp.ones_like(losses))[0]


def value_and_grad(residuals: CellResiduals, rows: Rows, score: CellResiduals | None = None):
    """(Z, cells, data) -> (loss [B], gradient [B, D]) of the sum of squares, then the score
    (the sum of squares of `score`'s residuals) if given. Up to FORWARD_MODE_MAX_DIM
    parameters the gradient is 2 J^T r by forward mode: a simulation's reverse pass (a second
    scan over time, reading back every step) costs more than D tangents carried along
    (benchmarks/gradient_modes.py)."""
    def batch(z, cell):
        if z.shape[1] <= FORWARD_MODE_MAX_DIM:
            r, jac = _forward_jacobian(residuals, z, cell)
            out = (jnp.sum(r ** 2, axis=-1), 2.0 * jnp.einsum("dpm,pm->pd", jac, r))
        else:
            out = _reverse_gradient(residuals, z, cell)
        return out if score is None else (*out, jnp.sum(score(z, cell) ** 2, axis=-1))
    return lambda z, cells, data: rows.map(batch, z, cells, data)


def gauss_newton(residuals: CellResiduals, rows: Rows, score: CellResiduals | None = None):
    """(Z, cells, data) -> (loss [B], gradient [B, D], Gauss-Newton Hessian 2 J^T J
    [B, D, D]), then the score if given."""
    def batch(z, cell):
        r, jac = _forward_jacobian(residuals, z, cell)
        out = (jnp.sum(r ** 2, axis=-1), 2.0 * jnp.einsum("dpm,pm->pd", jac, r),
               2.0 * jnp.einsum("dpm,epm->pde", jac, jac))
        return out if score is None else (*out, jnp.sum(score(z, cell) ** 2, axis=-1))
    return lambda z, cells, data: rows.map(batch, z, cells, data)


# --------------------------------------------------------------------------- objectives

def _stage(name: str, residuals: CellResiduals, rows: Rows, data: Data, mesh: Mesh | None,
           settings: dict, score: CellResiduals | None = None) -> Stage:
    """A stage; a surrogate one (given the real residuals as `score`) reports the real loss at
    its points."""
    return Stage(name, _numpy_in_out(value_and_grad(residuals, rows, score), data, mesh),
                 _numpy_in_out(gauss_newton(residuals, rows, score), data, mesh),
                 surrogate=score is not None, **settings)


def make_objectives(problems: Problem | Sequence[Problem],
                    devices: int | None = 1) -> Objectives:
    """The objectives of the cells fitted together: problems with equal `cohort_key` (one
    problem: a cohort of one). `loss(Z, cells)` is the real loss; `stages` the coarse-grid
    presearch ("coarse") and the presearch on dt ("presearch") where the problems have them,
    each scoring its points on the real loss, then the real loss with its derivatives
    ("real"). With `devices` > 1 (None: every local device) each call shards its rows over
    them."""
    problems = [problems] if isinstance(problems, Problem) else list(problems)
    keys = {cohort_key(p) for p in problems}
    if len(keys) != 1:
        raise ValueError(f"a cohort needs problems of one kind, got {len(keys)} kinds")
    first = problems[0]
    cells = [_cell_data(p) for p in problems]
    data = {k: np.stack([c[k] for c in cells]) for k in cells[0]}
    mesh = rows_mesh(devices)
    rows = Rows(shared=len(problems) == 1)
    real = real_residuals(first)
    # a loss with a spike-train term is smooth only between changes of spike count (where
    # L-BFGS-B's steps shrink without end: stop once they gain little) and rugged across them:
    # the starts are the best of many drawn
    screen = SCREEN_FACTOR if first.spike_weight else 0
    # long sweeps: a call costs about the same for up to 32 rows, a compiled shape more
    settings = {"gain_rtol": SPIKING_GAIN_RTOL if first.spike_weight else GAIN_RTOL,
                "min_rows": LONG_MIN_ROWS if first.current.size >= LONG_SWEEPS else MIN_ROWS}
    stages = tuple(
        [_stage("presearch" if f == 1 else "coarse", forced_residuals(first, f), rows, data,
                mesh, settings, real)
         for f in _presearch_factors(first)]
        + [_stage("real", real, rows, data, mesh, settings)])
    anchors = tuple(p.box.anchor_of(p.free, p.anchor) for p in problems)  # NaN: no estimate
    return Objectives(loss=_numpy_in_out(sum_of_squares(real, rows), data, mesh), stages=stages,
                      anchors=anchors, screen=screen)
