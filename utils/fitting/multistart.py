"""The multi-start engine of the gradient-based methods: L-BFGS-B runs from many starts whose
evaluations are batched in lock-step (one compiled call per round, each run in its own thread),
the staging of a method from a surrogate objective to the real one, the race that stops the
starts once enough agree on the best loss, and `run_method`, which runs any registered method.
"""
from __future__ import annotations

import threading
import time
from functools import partial
from typing import Callable, Sequence

import numpy as np
import scipy.optimize
import threadpoolctl

from utils.fitting.methods import METHODS, GradientBased, GradientFree
from utils.fitting.starts import MIN_ROWS, after_screening, batched_calls, screened_starts
from utils.fitting.optim import (BAD_LOSS, CONFIRM_ATOL, CONFIRM_RTOL, CellValueGrad,
                                 Objectives, OptimResult, Progress, Stage, Tracker, clean,
                                 confirmed, of_cell)

__all__ = ["lbfgsb_multistart", "staged", "lbfgsb_stage", "run_method"]


class _Stopped(Exception):
    """Raised inside an L-BFGS-B worker thread (a Python frame, never inside JAX) to end its
    run when the fit is being stopped."""


class _Lockstep:
    """Gathers the points requested by concurrent L-BFGS-B runs, of one cell or of many, into
    one batched evaluation; each cell's runs are raced on their own (`converge`).

    `stop()` (the main thread, on Ctrl-C) makes every later or waiting request raise _Stopped
    in its own worker thread; an evaluation already running finishes first, so no thread is
    ever interrupted inside a compiled call."""

    def __init__(self, value_and_grad: CellValueGrad, cells: Sequence[int],
                 trackers: Sequence[Tracker], confirm: int = 0, min_rows: int = MIN_ROWS):
        self.fn, self.trackers, self.confirm = value_and_grad, trackers, confirm
        self.min_rows = min_rows
        self.cell_of = np.asarray(cells, dtype=np.int32)
        self.active = self.batch = len(cells)
        self.lock = threading.Lock()
        self.conds = [threading.Condition(self.lock) for _ in trackers]  # one per cell
        self.pending: dict[int, np.ndarray] = {}
        self.results: dict[int, tuple[float, np.ndarray]] = {}
        self.converged: list[list[float]] = [[] for _ in trackers]
        self.latest: list[dict[int, float]] = [{} for _ in trackers]  # unfinished runs' last loss
        # each run's point of lowest loss: (z, loss, score there)
        self.lowest: dict[int, tuple[np.ndarray, float, float]] = {}
        self.error: BaseException | None = None
        self.raced = [False] * len(trackers)  # the cell's race is decided: its runs stop
        self.stopped = False

    def _evaluate(self) -> None:
        ids = sorted(self.pending)
        z = np.stack([self.pending[i] for i in ids])
        cells = self.cell_of[ids]
        try:
            out = batched_calls(self.fn, z, cells, self.batch, self.min_rows)
            f, g = clean(out[0], out[1])
            score = clean(out[2]) if len(out) > 2 else f
        except BaseException as err:  # handed to every waiting run, re-raised by the caller
            self.error = err
            f, g = np.full(len(ids), BAD_LOSS), np.zeros_like(z)
            score = f
        for c in np.unique(cells):
            mine = cells == c
            self.trackers[c].record(z[mine], score[mine])
        for k, i in enumerate(ids):
            self.results[i] = (float(f[k]), g[k])
            self.latest[cells[k]][i] = float(f[k])
            if f[k] < self.lowest.get(i, (None, np.inf))[1]:
                self.lowest[i] = (np.array(z[k]), float(f[k]), float(score[k]))
        self.pending.clear()
        for cond in self.conds:
            cond.notify_all()

    def _released(self, run: int) -> bool:
        return self.stopped or self.raced[self.cell_of[run]]

    def request(self, run: int, z: np.ndarray) -> tuple[float, np.ndarray]:
        with self.lock:
            if self.error is not None:
                raise RuntimeError("batched evaluation failed")
            if self._released(run):
                raise _Stopped
            self.pending[run] = np.array(z)
            if len(self.pending) == self.active:
                self._evaluate()
            else:
                self.conds[self.cell_of[run]].wait_for(
                    lambda: run in self.results or self._released(run))
            if run not in self.results:
                raise _Stopped
            return self.results.pop(run)

    def converge(self, run: int, loss: float) -> None:
        """Run `run` converged at `loss`; once `confirm` runs of its cell have converged to
        the lowest loss seen there and no other run of the cell is already below it, stop the
        cell's other runs (Boender & Rinnooy Kan 1987: a minimum found several times over is,
        with high probability, the best the starts can find)."""
        cell = self.cell_of[run]
        with self.lock:
            self.converged[cell].append(loss)
            self.latest[cell].pop(run, None)
            if not self.raced[cell] and confirmed(self.converged[cell], self.confirm,
                                                  list(self.latest[cell].values())):
                self.raced[cell] = True
                for other in [i for i in self.pending if self.cell_of[i] == cell]:
                    del self.pending[other]
                self.conds[cell].notify_all()

    def finish(self, run: int) -> None:
        with self.lock:
            self.latest[self.cell_of[run]].pop(run, None)
            self.active -= 1
            if self.stopped:
                return
            if self.pending and len(self.pending) == self.active:
                self._evaluate()

    def stop(self) -> None:
        self.stopped = True
        with self.lock:
            for cond in self.conds:
                cond.notify_all()


def _join_all(threads: Sequence[threading.Thread], lock: _Lockstep) -> None:
    """Wait for the worker threads in short timeouts, so that Ctrl-C reaches the main thread;
    on Ctrl-C stop them cleanly (each ends at its next request), wait for them, re-raise."""
    try:
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.1)
    except KeyboardInterrupt:
        while True:  # a second Ctrl-C must not leave threads running inside XLA at exit
            try:
                lock.stop()
                for t in threads:
                    while t.is_alive():
                        t.join(timeout=0.1)
                break
            except KeyboardInterrupt:
                continue
        raise


# L-BFGS-B's own convergence test (scipy's ftol, 2.2e-9 by default) divides an iteration's
# gain by max(|f|, 1): below a loss of 1 it asks for an absolute gain of 2.2e-9, which stopped
# noise-free fits (losses in mV^2) near 1e-6 mV^2, short of the exact answer. With a
# `gain_rtol` the tolerance applies to the gain relative to the loss itself, as
# Levenberg-Marquardt's test does: GAIN_RTOL (optim.py) is scipy's own tolerance, the same test
# wherever the loss is 1 or more.


def lbfgsb_multistart(value_and_grad: CellValueGrad, starts: Sequence[np.ndarray],
                      maxiter: int = 200, progress: Progress | None = None,
                      confirm: int = 0, gain_rtol: float | None = None,
                      min_rows: int = MIN_ROWS) -> list[OptimResult]:
    """Independent L-BFGS-B runs from the starts [S_c, D] of each cell c (one cell or many),
    the evaluations of every run of every cell batched in lockstep (value_and_grad(Z, cells));
    with `confirm` > 0 a cell's remaining runs stop once that many of its runs have converged
    to its best loss.
    A run has converged by scipy's test or, with `gain_rtol`, once an iteration gains less
    than that fraction of its loss. Calls are padded to at least `min_rows` rows. One result
    per cell."""
    trackers = [Tracker("gradient", progress) for _ in starts]
    cells = [c for c, s in enumerate(starts) for _ in range(len(s))]
    points = [z for s in starts for z in s]
    lock = _Lockstep(value_and_grad, cells, trackers, confirm, min_rows)
    finals: list = [None] * len(points)

    def run(k: int) -> None:
        last, small_gain = [np.inf], [False]

        def relative_gain(intermediate_result) -> None:  # scipy calls it after each iteration
            f = float(intermediate_result.fun)
            if np.isfinite(last[0]) and last[0] - f <= gain_rtol * max(abs(last[0]), abs(f)):
                small_gain[0] = True
                raise StopIteration  # L-BFGS-B ends at this iterate
            last[0] = f

        try:
            r = scipy.optimize.minimize(lambda z: lock.request(k, z), points[k], jac=True,
                                        method="L-BFGS-B", bounds=[(0.0, 1.0)] * len(z0),
                                        callback=relative_gain if gain_rtol else None,
                                        options={"maxiter": maxiter,
                                                 **({"ftol": 0.0} if gain_rtol else {})})
            # the point of lowest loss with its real loss (L-BFGS-B's end, but for a last
            # line search that stopped at the iteration limit)
            finals[k] = lock.lowest[k]
            if r.success or small_gain[0]:
                lock.converge(k, float(r.fun))
        except (RuntimeError, _Stopped):
            pass
        finally:
            lock.finish(k)

    z0 = points[0]
    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(len(points))]
    for t in threads:
        t.start()
    _join_all(threads, lock)
    if lock.error is not None:
        raise lock.error
    results = [t.result() for t in trackers]
    for k, res in enumerate(results):
        res.finals = [f for f, c in zip(finals, cells) if f is not None and c == k]
        if len(results) > 1 and res.history:  # each cell's time: until its last evaluation
            res.wall_s = res.history[-1][0]
    return results


CellsRun = Callable[[Sequence[np.ndarray]], list[OptimResult]]  # starts of each cell -> results


def staged(stages: Sequence[CellsRun], starts: Sequence[np.ndarray],
           n_refine: int) -> list[OptimResult]:
    """Run the first stage (a local method on a smooth surrogate objective: it only has to find
    the basin) from every start of each cell, then each later stage from `n_refine` distinct
    points of the stage before, chosen per cell (`_refine_starts`); the last stage is the same
    method on the real objective. Every stage must record the real objective at its points (a
    surrogate's `score`), so that cost, time, history and the best point cover all stages.
    One result per cell; with several cells, a cell's time runs until its last evaluation."""
    t0 = time.perf_counter()
    n = len(starts)
    history: list[list] = [[] for _ in range(n)]
    n_evals, best, zs = [0] * n, [None] * n, list(starts)
    for k, stage in enumerate(stages):
        t_stage = time.perf_counter() - t0
        results = stage(zs)
        for c, res in enumerate(results):
            level = best[c].loss if best[c] is not None else np.inf
            history[c] += [(t + t_stage, e + n_evals[c], min(b, level))
                           for t, e, b in res.history]
            n_evals[c] += res.n_evals
            best[c] = res if best[c] is None or res.loss <= best[c].loss else best[c]
        if k + 1 < len(stages):
            zs = [_refine_starts(best[c], results[c].finals, n_refine) for c in range(n)]
    wall = time.perf_counter() - t0
    return [OptimResult(res.method, b.z, b.loss, e, wall if n == 1 else t_stage + res.wall_s,
                        h, res.finals)
            for res, b, e, h in zip(results, best, n_evals, history)]


def _refine_starts(best: OptimResult, finals: Sequence[tuple[np.ndarray, float, float]],
                   n: int) -> np.ndarray:
    """Up to `n` points [n, D] for the next stage, in this order: the best point scored on the
    real loss so far; the end with the lowest loss of its own stage (a surrogate's best end
    is where its minimum lies: on a noise-free target, the truth); then the other ends by real
    loss. Points whose real losses agree within the stopping rule's tolerance are the same
    minimum, refined once."""
    ends = sorted(finals, key=lambda f: f[2])
    own_best = [min(finals, key=lambda f: f[1])] if finals else []
    chosen: list[tuple[float, np.ndarray]] = []
    for real, z in [(best.loss, best.z), *((f[2], f[0]) for f in own_best + ends)]:
        if len(chosen) == n:
            break
        if all(abs(real - g) > CONFIRM_RTOL * abs(g) + CONFIRM_ATOL for g, _ in chosen):
            chosen.append((real, z))
    return np.stack([z for _, z in chosen])


def _stage_settings(stage: Stage, index: int, maxiter: int) -> dict:
    """L-BFGS-B's settings on a stage. A first surrogate stage only has to find the basin: at
    most 50 iterations, scipy's convergence test. The stages that polish an earlier stage's
    ends (index > 0) and a real loss converge by the gain relative to the loss (the stage's
    `gain_rtol`), within `maxiter`: on a noise-free target the surrogate's minimum is the
    truth, and an end stopped short of it (after 20 iterations, or by scipy's test near 1e-6
    mV^2) can lie where a spike has crossed a sample, a jump of the real loss that its own
    descent does not cross back."""
    first = stage.surrogate and not index
    return {"maxiter": min(maxiter, 50) if first else maxiter,
            "gain_rtol": None if first else stage.gain_rtol, "min_rows": stage.min_rows}


def lbfgsb_stage(stage: Stage, index: int, maxiter: int, progress: Progress | None,
                 confirm: int) -> CellsRun:
    """Multi-start L-BFGS-B on one stage (settings: `_stage_settings`), the starts of every
    cell evaluated together; a cell's starts stop once `confirm` > 0 of them agree on its
    best."""
    return partial(lbfgsb_multistart, stage.value_and_grad, progress=progress,
                   confirm=confirm, **_stage_settings(stage, index, maxiter))


def run_method(method: str, obj: Objectives, dim: int, *, n_starts: int, budget: int,
               popsize: int, maxiter: int, seed: int, progress: Progress | None = None,
               n_refine: int = 2, confirm: int = 0) -> list[OptimResult]:
    """Run one registered method by name on every cell of the objectives (one or many), one
    result per cell. A gradient-based method starts each cell from the same `n_starts` points
    drawn from `seed` (around the cell's anchor, if any; the best of `obj.screen` x n_starts
    where the loss is rugged) and runs its stages in turn (`staged`); `confirm` > 0 stops a
    cell's starts of a stage once that many have converged to its best loss. A gradient-free
    method runs the cells in turn, each from `seed`.

    The optimizers' own arithmetic (L-BFGS-B updates, Levenberg-Marquardt solves, GP refits)
    is on D x D matrices: one BLAS thread, as more threads only wait for a core on such tiny
    calls; the simulations run in XLA's own threads and are not affected."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    opt = METHODS[method]
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        if isinstance(opt, GradientFree):
            return [opt.minimizer()(of_cell(obj.loss, c), dim, budget=budget, popsize=popsize,
                                    seed=seed, progress=progress) for c in range(len(obj))]
        return _gradient_based(opt, method, obj, dim, n_starts=n_starts, maxiter=maxiter,
                               seed=seed, progress=progress, n_refine=n_refine,
                               confirm=confirm)


def _gradient_based(opt: GradientBased, method: str, obj: Objectives, dim: int, *,
                    n_starts: int, maxiter: int, seed: int, progress: Progress | None,
                    n_refine: int, confirm: int) -> list[OptimResult]:
    if not obj.stages:
        raise ValueError(f"method {method!r} needs derivatives this problem does not provide")
    starts, screened = screened_starts(obj.loss, n_starts, dim, seed, obj.anchors, obj.screen,
                                       progress)
    runs = [opt.stage_runner()(stage, k, maxiter, progress, confirm)
            for k, stage in enumerate(obj.stages)]
    results = staged(runs, starts, min(n_refine, n_starts))
    return results if screened is None else [after_screening(s, r)
                                             for s, r in zip(screened, results)]
