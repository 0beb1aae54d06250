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
from utils.fitting.optim import (BAD_LOSS, CONFIRM_ATOL, CONFIRM_RTOL, BatchValueGrad,
                                 Objectives, OptimResult, Progress, Stage, Tracker, clean,
                                 confirmed)

__all__ = ["lbfgsb_multistart", "lbfgsb_sequential", "staged", "lbfgsb_stage", "run_method"]


class _Stopped(Exception):
    """Raised inside an L-BFGS-B worker thread (a Python frame, never inside JAX) to end its
    run when the fit is being stopped."""


def _bucket(n: int, batch: int) -> int:
    """Rows evaluated for n runs of a batch: the next power of two, at most the batch. As runs
    finish the rest cost less, at one compiled shape per power of two."""
    return min(batch, 1 << max(n - 1, 0).bit_length())


class _Lockstep:
    """Gathers the points requested by concurrent L-BFGS-B runs into one batched evaluation.

    `stop()` (the main thread, on Ctrl-C) makes every later or waiting request raise _Stopped
    in its own worker thread; an evaluation already running finishes first, so no thread is
    ever interrupted inside a compiled call."""

    def __init__(self, value_and_grad: BatchValueGrad, n_runs: int, tracker: Tracker,
                 confirm: int = 0):
        self.fn, self.active, self.tracker = value_and_grad, n_runs, tracker
        self.batch, self.confirm = n_runs, confirm
        self.cond = threading.Condition()
        self.pending: dict[int, np.ndarray] = {}
        self.results: dict[int, tuple[float, np.ndarray]] = {}
        self.converged: list[float] = []
        self.latest: dict[int, float] = {}  # each unfinished run's last loss
        # each run's point of lowest loss: (z, loss, score there)
        self.lowest: dict[int, tuple[np.ndarray, float, float]] = {}
        self.error: BaseException | None = None
        self.stopped = False

    def _evaluate(self) -> None:
        ids = sorted(self.pending)
        z = np.stack([self.pending[i] for i in ids])
        padded = np.concatenate([z, np.repeat(z[:1], _bucket(len(ids), self.batch) - len(ids),
                                              axis=0)])
        try:
            out = self.fn(padded)
            f, g = clean(out[0], out[1])
            score = clean(out[2]) if len(out) > 2 else f
        except BaseException as err:  # handed to every waiting run, re-raised by the caller
            self.error = err
            f, g = np.full(self.batch, BAD_LOSS), np.zeros_like(padded)
            score = f
        self.tracker.record(z, score[:len(ids)])
        for k, i in enumerate(ids):
            self.results[i] = (float(f[k]), g[k])
            self.latest[i] = float(f[k])
            if f[k] < self.lowest.get(i, (None, np.inf))[1]:
                self.lowest[i] = (np.array(z[k]), float(f[k]), float(score[k]))
        self.pending.clear()
        self.cond.notify_all()

    def request(self, run: int, z: np.ndarray) -> tuple[float, np.ndarray]:
        with self.cond:
            if self.error is not None:
                raise RuntimeError("batched evaluation failed")
            if self.stopped:
                raise _Stopped
            self.pending[run] = np.array(z)
            if len(self.pending) == self.active:
                self._evaluate()
            else:
                self.cond.wait_for(lambda: run in self.results or self.stopped)
            if run not in self.results:
                raise _Stopped
            return self.results.pop(run)

    def converge(self, run: int, loss: float) -> None:
        """Run `run` converged at `loss`; once `confirm` runs have converged to the lowest loss
        seen and no other run is already below it, stop the others (Boender & Rinnooy Kan
        1987: a minimum found several times over is, with high probability, the best the
        starts can find)."""
        with self.cond:
            self.converged.append(loss)
            self.latest.pop(run, None)
            if not self.stopped and confirmed(self.converged, self.confirm,
                                              list(self.latest.values())):
                self.stopped = True
                self.cond.notify_all()

    def finish(self, run: int) -> None:
        with self.cond:
            self.latest.pop(run, None)
            self.active -= 1
            if self.stopped:
                self.cond.notify_all()
            elif self.pending and len(self.pending) == self.active:
                self._evaluate()

    def stop(self) -> None:
        self.stopped = True
        with self.cond:
            self.cond.notify_all()


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


def lbfgsb_multistart(value_and_grad: BatchValueGrad, starts: np.ndarray, maxiter: int = 200,
                      progress: Progress | None = None, confirm: int = 0) -> OptimResult:
    """Independent L-BFGS-B runs from each start, their evaluations batched in lockstep; with
    `confirm` > 0 the remaining runs stop once that many have converged to the best loss."""
    tracker = Tracker("gradient", progress)
    lock = _Lockstep(value_and_grad, len(starts), tracker, confirm)
    bounds = [(0.0, 1.0)] * starts.shape[1]

    finals: list = [None] * len(starts)

    def run(k: int) -> None:
        try:
            r = scipy.optimize.minimize(lambda z: lock.request(k, z), starts[k], jac=True,
                                        method="L-BFGS-B", bounds=bounds,
                                        options={"maxiter": maxiter})
            # the point of lowest loss with its real loss (L-BFGS-B's end, but for a last
            # line search that stopped at the iteration limit)
            finals[k] = lock.lowest[k]
            if r.success:
                lock.converge(k, float(r.fun))
        except (RuntimeError, _Stopped):
            pass
        finally:
            lock.finish(k)

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(len(starts))]
    for t in threads:
        t.start()
    _join_all(threads, lock)
    if lock.error is not None:
        raise lock.error
    result = tracker.result()
    result.finals = [f for f in finals if f is not None]
    return result


def staged(stages: Sequence[Callable[[np.ndarray], OptimResult]], starts: np.ndarray,
           n_refine: int) -> OptimResult:
    """Run the first stage (a local method on a smooth surrogate objective: it only has to find
    the basin) from every start, then each later stage from `n_refine` distinct points of the
    stage before (`_refine_starts`); the last stage is the same method on the real objective.
    Every stage must record the real objective at its points (a surrogate's `score`), so that
    cost, time, history and the best point cover all stages."""
    t0 = time.perf_counter()
    history, n_evals, best, zs = [], 0, None, starts
    for k, stage in enumerate(stages):
        t_stage = time.perf_counter() - t0
        res = stage(zs)
        level = best.loss if best is not None else np.inf
        history += [(t + t_stage, n + n_evals, min(b, level)) for t, n, b in res.history]
        n_evals += res.n_evals
        best = res if best is None or res.loss <= best.loss else best
        if k + 1 < len(stages):
            zs = _refine_starts(best, res.finals, n_refine)
    return OptimResult(res.method, best.z, best.loss, n_evals, time.perf_counter() - t0,
                       history, res.finals)


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


def lbfgsb_sequential(value_and_grad: BatchValueGrad, starts: np.ndarray, maxiter: int = 200,
                      progress: Progress | None = None) -> OptimResult:
    """The same runs one after another, one point per evaluation (kept for the benchmark)."""
    tracker = Tracker("gradient", progress)

    def fun(z):
        f, g = clean(*value_and_grad(z[None]))
        tracker.record(z[None], f)
        return float(f[0]), g[0]

    for z0 in starts:
        scipy.optimize.minimize(fun, z0, jac=True, method="L-BFGS-B",
                                bounds=[(0.0, 1.0)] * starts.shape[1], options={"maxiter": maxiter})
    return tracker.result()


def lbfgsb_stage(stage: Stage, index: int, maxiter: int, progress: Progress | None,
                 confirm: int) -> Callable[[np.ndarray], OptimResult]:
    """Multi-start L-BFGS-B on one stage. A surrogate stage only has to find the basin: at most
    50 iterations there, 20 to polish an earlier stage's result (index > 0). The starts stop
    once `confirm` > 0 agree on the best."""
    cap = min(maxiter, 20 if index else 50) if stage.surrogate else maxiter
    return partial(lbfgsb_multistart, stage.value_and_grad, maxiter=cap, progress=progress,
                   confirm=confirm)


def run_method(method: str, obj: Objectives, dim: int, *, n_starts: int, budget: int,
               popsize: int, maxiter: int, seed: int, progress: Progress | None = None,
               n_refine: int = 2, confirm: int = 0) -> OptimResult:
    """Run one registered method by name. Starts of the gradient-based methods are drawn
    uniformly from `seed`; with several stages they run in stages (see staged); `confirm` > 0
    stops the starts of each stage once that many have converged to its best loss.

    The optimizers' own arithmetic (L-BFGS-B updates, Levenberg-Marquardt solves, GP refits)
    is on D x D matrices: one BLAS thread, as more threads only wait for a core on such tiny
    calls; the simulations run in XLA's own threads and are not affected."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        return _run(METHODS[method], method, obj, dim, n_starts=n_starts, budget=budget,
                    popsize=popsize, maxiter=maxiter, seed=seed, progress=progress,
                    n_refine=n_refine, confirm=confirm)


def _run(opt: GradientBased | GradientFree, method: str, obj: Objectives, dim: int, *,
         n_starts: int, budget: int, popsize: int, maxiter: int, seed: int,
         progress: Progress | None, n_refine: int, confirm: int) -> OptimResult:
    if isinstance(opt, GradientFree):
        return opt.minimizer()(obj.loss, dim, budget=budget, popsize=popsize, seed=seed,
                               progress=progress)
    if not obj.stages:
        raise ValueError(f"method {method!r} needs derivatives this problem does not provide")
    starts = np.random.default_rng(seed).uniform(size=(n_starts, dim))
    runs = [opt.stage_runner()(stage, k, maxiter, progress, confirm)
            for k, stage in enumerate(obj.stages)]
    if len(runs) == 1:
        return runs[0](starts)
    return staged(runs, starts, min(n_refine, n_starts))
