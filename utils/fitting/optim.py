"""What every fitting optimizer shares, all working in the unit cube [0, 1]^D: the objectives
it is given (`Objectives`, its `Stage`s), what it returns (`OptimResult`, kept by a `Tracker`),
NaN-safe losses (`clean`) and the multi-start stopping rule (`confirmed`).

Every method receives batched objectives (one compiled call evaluates a whole batch of
parameter sets) and returns an `OptimResult` per cell. `n_evals` counts simulations of one
parameter set; a gradient evaluation counts as one. The methods themselves: multistart.py
(L-BFGS-B and the staging of gradient-based methods), searchers.py (Levenberg-Marquardt,
nevergrad, scikit-optimize); their registry by name: methods.py.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["Stage", "Objectives", "OptimResult", "Tracker", "clean", "confirmed", "of_cell",
           "one_cell", "CONFIRM_RTOL", "CONFIRM_ATOL", "BAD_LOSS", "BatchLoss", "CellLoss",
           "CellValueGrad", "CellGaussNewton", "Progress"]

BatchLoss = Callable[[np.ndarray], np.ndarray]                        # Z [B, D] -> loss [B]
# over the rows of one or many cells: (Z [B, D], the cell of each row [B]) -> ...
CellLoss = Callable[[np.ndarray, np.ndarray], np.ndarray]             # -> loss [B]
CellValueGrad = Callable[[np.ndarray, np.ndarray], tuple]  # -> loss, grad [B, D] (, score)
# -> loss [B], gradient [B, D], Gauss-Newton Hessian 2 J^T J [B, D, D] of a sum-of-squares
# loss (, score [B]). A surrogate objective returns as `score` the real objective at the same
# points: that is what the best-so-far record holds.
CellGaussNewton = Callable[[np.ndarray, np.ndarray], tuple]
Progress = Callable[[int, float], None]                               # (new evals, best loss)

BAD_LOSS = 1e12  # stands in for a NaN or infinite loss
GAIN_RTOL = 1e7 * np.finfo(float).eps  # scipy's default ftol (factr 1e7)
SPIKING_GAIN_RTOL = 1e-5  # the same for losses with a spike-train term (objectives.make_objectives)
CONFIRM_RTOL = 1e-6  # converged losses this close (relative) count as the same minimum
CONFIRM_ATOL = 1e-12  # ... or this close in absolute terms (losses near 0: noise-free targets)


@dataclass(frozen=True)
class Stage:
    """One objective a gradient-based method minimizes, with its derivatives, batched over the
    rows of one or many cells: each call takes unit coordinates Z [B, D] and the cell of each
    row [B]. A `surrogate` stage (a smooth stand-in used to find the basin) returns the real
    loss at its points as the extra `score` output."""

    name: str
    value_and_grad: CellValueGrad
    gauss_newton: CellGaussNewton
    surrogate: bool = False
    gain_rtol: float = GAIN_RTOL  # a polishing run ends when an iteration gains less (relative)
    min_rows: int = 8  # lockstep calls are padded to at least this many rows


@dataclass(frozen=True)
class Objectives:
    """What the optimizers may call, for the cells fitted together (one or many): the real
    `loss` (all a gradient-free method needs) and the stages a gradient-based method runs in
    order, the last one on the real loss (none: a problem without derivatives); every call
    takes Z [B, D] and the cell of each row [B]. `anchors`: each cell's unit coordinates [D]
    the data suggest (None or NaN: none); its length is the number of cells."""

    loss: CellLoss
    stages: tuple[Stage, ...] = ()
    anchors: tuple[np.ndarray | None, ...] = (None,)
    screen: int = 0  # gradient-based starts: the best of screen x n_starts drawn (0: drawn)

    def __len__(self) -> int:
        return len(self.anchors)

    @property
    def real(self) -> Stage:
        """The last stage: the real loss with its derivatives."""
        if not self.stages:
            raise ValueError("this problem provides no derivatives")
        return self.stages[-1]

    def stage(self, name: str) -> Stage | None:
        """The stage called `name`, None if there is none."""
        return next((s for s in self.stages if s.name == name), None)


def of_cell(fn: Callable, cell: int) -> Callable[[np.ndarray], Any]:
    """A call over (Z, cells) as a call over Z alone, every row of cell `cell`."""
    return lambda z: fn(z, np.full(len(z), cell, np.int32))


def one_cell(fn: Callable[[np.ndarray], Any]) -> Callable:
    """A call over Z alone (a function of one cell) as a call over (Z, cells)."""
    return lambda z, cells: fn(z)


@dataclass
class OptimResult:
    """Best point (unit coordinates), its loss, cost, and the best-so-far history."""

    method: str
    z: np.ndarray
    loss: float
    n_evals: int
    wall_s: float
    history: list[tuple[float, int, float]] = field(default_factory=list)  # (wall_s, evals, best)
    # ends of finished runs: (z, the run's own loss, the real loss there)
    finals: list[tuple[np.ndarray, float, float]] = field(default_factory=list)


class Tracker:
    """Keeps the best point, evaluation count and (time, evals, best) history of one run: call
    `record` with every batch evaluated, then `result`."""

    def __init__(self, method: str, progress: Progress | None):
        self.method, self.progress = method, progress
        self.t0 = time.perf_counter()
        self.best_z, self.best, self.n_evals, self.history = None, np.inf, 0, []

    def record(self, z: np.ndarray, losses: np.ndarray) -> None:
        i = int(np.argmin(losses))
        if losses[i] < self.best:
            self.best, self.best_z = float(losses[i]), np.array(z[i])
        self.n_evals += len(losses)
        self.history.append((time.perf_counter() - self.t0, self.n_evals, self.best))
        if self.progress is not None:
            self.progress(len(losses), self.best)

    def result(self) -> OptimResult:
        return OptimResult(self.method, self.best_z, self.best, self.n_evals,
                           time.perf_counter() - self.t0, self.history)


def clean(losses: np.ndarray, grads: np.ndarray | None = None):
    """Losses (and gradients) with NaN or infinite losses replaced by BAD_LOSS (their gradients
    by 0)."""
    losses = np.asarray(losses, dtype=float)
    bad = ~np.isfinite(losses)
    losses = np.where(bad, BAD_LOSS, losses)
    if grads is None:
        return losses
    grads = np.asarray(grads, dtype=float)
    grads = np.where(bad[:, None] | ~np.isfinite(grads), 0.0, grads)
    return losses, grads


def confirmed(converged: Sequence[float], confirm: int, running: Sequence[float] = ()) -> bool:
    """The multi-start's stopping rule: True when `confirm` > 0 of the `converged` runs' losses
    equal the lowest of them (within CONFIRM_RTOL relative plus CONFIRM_ATOL) and no run still
    `running` is already below it. Failed evaluations (BAD_LOSS) never count."""
    good = [f for f in converged if f < BAD_LOSS]
    if confirm < 1 or len(good) < confirm:
        return False
    best = min(good)
    tol = CONFIRM_RTOL * abs(best) + CONFIRM_ATOL
    return (sum(f <= best + tol for f in good) >= confirm
            and all(f >= best - tol for f in running))
