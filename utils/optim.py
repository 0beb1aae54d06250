"""Optimizers behind one interface, all working in the unit cube [0, 1]^D.

Every method receives batched objectives (one compiled call evaluates a whole population) and
returns an `OptimResult`. `n_evals` counts simulations of one parameter set; a gradient
evaluation counts as one.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.optimize

__all__ = ["OptimResult", "GRADIENT_FREE", "METHODS", "lbfgsb_multistart", "lbfgsb_sequential",
           "lbfgsb_two_stage", "nevergrad_minimize", "bayesian_minimize", "run_method"]

BatchLoss = Callable[[np.ndarray], np.ndarray]                        # Z [B, D] -> loss [B]
BatchValueGrad = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # -> loss [B], grad [B, D]
Progress = Callable[[int, float], None]                               # (new evals, best loss)

NEVERGRAD_NAMES = {"DE": "DE", "PSO": "PSO", "TwoPointsDE": "TwoPointsDE"}
GRADIENT_FREE = ("DE", "PSO", "TwoPointsDE", "bayesian")
METHODS = ("gradient",) + GRADIENT_FREE
BAD_LOSS = 1e12  # stands in for a NaN or infinite loss


@dataclass
class OptimResult:
    """Best point (unit coordinates), its loss, cost, and the best-so-far history."""

    method: str
    z: np.ndarray
    loss: float
    n_evals: int
    wall_s: float
    history: list[tuple[float, int, float]] = field(default_factory=list)  # (wall_s, evals, best)
    finals: list[tuple[np.ndarray, float]] = field(default_factory=list)    # each run's end point


class _Tracker:
    """Keeps the best point, evaluation count and (time, evals, best) history of one run."""

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


def _clean(losses: np.ndarray, grads: np.ndarray | None = None):
    losses = np.asarray(losses, dtype=float)
    bad = ~np.isfinite(losses)
    losses = np.where(bad, BAD_LOSS, losses)
    if grads is None:
        return losses
    grads = np.asarray(grads, dtype=float)
    grads = np.where(bad[:, None] | ~np.isfinite(grads), 0.0, grads)
    return losses, grads


class _Lockstep:
    """Gathers the points requested by concurrent L-BFGS-B runs into one batched evaluation."""

    def __init__(self, value_and_grad: BatchValueGrad, n_runs: int, tracker: _Tracker):
        self.fn, self.active, self.tracker = value_and_grad, n_runs, tracker
        self.batch = n_runs
        self.cond = threading.Condition()
        self.pending: dict[int, np.ndarray] = {}
        self.results: dict[int, tuple[float, np.ndarray]] = {}
        self.error: BaseException | None = None

    def _evaluate(self) -> None:
        ids = sorted(self.pending)
        z = np.stack([self.pending[i] for i in ids])
        padded = np.concatenate([z, np.repeat(z[:1], self.batch - len(ids), axis=0)])
        try:
            f, g = _clean(*self.fn(padded))
        except BaseException as err:  # handed to every waiting run, re-raised by the caller
            self.error = err
            f, g = np.full(self.batch, BAD_LOSS), np.zeros_like(padded)
        self.tracker.record(z, f[:len(ids)])
        for k, i in enumerate(ids):
            self.results[i] = (float(f[k]), g[k])
        self.pending.clear()
        self.cond.notify_all()

    def request(self, run: int, z: np.ndarray) -> tuple[float, np.ndarray]:
        with self.cond:
            if self.error is not None:
                raise RuntimeError("batched evaluation failed")
            self.pending[run] = np.array(z)
            if len(self.pending) == self.active:
                self._evaluate()
            else:
                self.cond.wait_for(lambda: run in self.results)
            return self.results.pop(run)

    def finish(self) -> None:
        with self.cond:
            self.active -= 1
            if self.pending and len(self.pending) == self.active:
                self._evaluate()


def lbfgsb_multistart(value_and_grad: BatchValueGrad, starts: np.ndarray, maxiter: int = 200,
                      progress: Progress | None = None) -> OptimResult:
    """Independent L-BFGS-B runs from each start, their evaluations batched in lockstep."""
    tracker = _Tracker("gradient", progress)
    lock = _Lockstep(value_and_grad, len(starts), tracker)
    bounds = [(0.0, 1.0)] * starts.shape[1]

    finals: list = [None] * len(starts)

    def run(k: int) -> None:
        try:
            r = scipy.optimize.minimize(lambda z: lock.request(k, z), starts[k], jac=True,
                                        method="L-BFGS-B", bounds=bounds,
                                        options={"maxiter": maxiter})
            finals[k] = (np.array(r.x), float(r.fun))
        except RuntimeError:
            pass
        finally:
            lock.finish()

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(len(starts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if lock.error is not None:
        raise lock.error
    result = tracker.result()
    result.finals = [f for f in finals if f is not None]
    return result


def lbfgsb_two_stage(presearch: BatchValueGrad, value_and_grad: BatchValueGrad,
                     starts: np.ndarray, n_refine: int, maxiter: int = 200,
                     progress: Progress | None = None, presearch_maxiter: int = 50) -> OptimResult:
    """Multi-start L-BFGS-B on a smooth surrogate objective (at most `presearch_maxiter`
    iterations: it only has to find the basin), then L-BFGS-B on the real one from the
    `n_refine` best surrogate optima. Cost and time cover both stages; the history holds the
    real objective only."""
    t0 = time.perf_counter()
    first = lbfgsb_multistart(presearch, starts, min(maxiter, presearch_maxiter), progress)
    best = sorted(first.finals, key=lambda f: f[1])[:n_refine]
    second = lbfgsb_multistart(value_and_grad, np.stack([z for z, _ in best]), maxiter, progress)
    offset = first.wall_s
    return OptimResult("gradient", second.z, second.loss, first.n_evals + second.n_evals,
                       time.perf_counter() - t0,
                       [(t + offset, n + first.n_evals, b) for t, n, b in second.history],
                       second.finals)


def lbfgsb_sequential(value_and_grad: BatchValueGrad, starts: np.ndarray, maxiter: int = 200,
                      progress: Progress | None = None) -> OptimResult:
    """The same runs one after another, one point per evaluation (kept for the benchmark)."""
    tracker = _Tracker("gradient", progress)

    def fun(z):
        f, g = _clean(*value_and_grad(z[None]))
        tracker.record(z[None], f)
        return float(f[0]), g[0]

    for z0 in starts:
        scipy.optimize.minimize(fun, z0, jac=True, method="L-BFGS-B",
                                bounds=[(0.0, 1.0)] * starts.shape[1], options={"maxiter": maxiter})
    return tracker.result()


def nevergrad_minimize(name: str, loss: BatchLoss, dim: int, budget: int, popsize: int,
                       seed: int, progress: Progress | None = None) -> OptimResult:
    """Nevergrad optimizer `name` by ask/tell, `popsize` candidates per batched evaluation."""
    import nevergrad as ng

    param = ng.p.Array(shape=(dim,), lower=0.0, upper=1.0)
    param.random_state = np.random.RandomState(seed)
    opt = ng.optimizers.registry[NEVERGRAD_NAMES[name]](parametrization=param, budget=budget,
                                                          num_workers=popsize)
    tracker = _Tracker(name, progress)
    while tracker.n_evals < budget:
        cands = [opt.ask() for _ in range(min(popsize, budget - tracker.n_evals))]
        z = np.stack([c.value for c in cands])
        losses = _clean(loss(z))
        for c, f in zip(cands, losses):
            opt.tell(c, float(f))
        tracker.record(z, losses)
    return tracker.result()


def bayesian_minimize(loss: BatchLoss, dim: int, budget: int, popsize: int, seed: int,
                      progress: Progress | None = None) -> OptimResult:
    """scikit-optimize Gaussian-process optimizer, `popsize` points asked per round."""
    import skopt

    opt = skopt.Optimizer([(0.0, 1.0)] * dim, base_estimator="GP", random_state=seed,
                          n_initial_points=min(popsize, budget))
    tracker = _Tracker("bayesian", progress)
    while tracker.n_evals < budget:
        n = min(popsize, budget - tracker.n_evals)
        z = np.clip(np.asarray(opt.ask(n_points=n), dtype=float), 0.0, 1.0)
        losses = _clean(loss(z))
        opt.tell(z.tolist(), losses.tolist())
        tracker.record(z, losses)
    return tracker.result()


def run_method(method: str, loss: BatchLoss, value_and_grad: BatchValueGrad, dim: int, *,
               n_starts: int, budget: int, popsize: int, maxiter: int, seed: int,
               progress: Progress | None = None, presearch: BatchValueGrad | None = None,
               n_refine: int = 4) -> OptimResult:
    """Run one method by name; starts of the gradient method are drawn uniformly from `seed`.
    With `presearch`, the gradient method is two-staged (see lbfgsb_two_stage)."""
    if method == "gradient":
        starts = np.random.default_rng(seed).uniform(size=(n_starts, dim))
        if presearch is not None:
            return lbfgsb_two_stage(presearch, value_and_grad, starts, min(n_refine, n_starts),
                                    maxiter, progress)
        return lbfgsb_multistart(value_and_grad, starts, maxiter=maxiter, progress=progress)
    if method == "bayesian":
        return bayesian_minimize(loss, dim, budget, popsize, seed, progress)
    if method in NEVERGRAD_NAMES:
        return nevergrad_minimize(method, loss, dim, budget, popsize, seed, progress)
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
