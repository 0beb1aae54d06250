"""Optimizers behind one interface, all working in the unit cube [0, 1]^D, and `OPTIMIZERS`,
the registry of fitting methods by name.

Every method receives batched objectives (one compiled call evaluates a whole population) and
returns an `OptimResult`. `n_evals` counts simulations of one parameter set; a gradient
evaluation counts as one.

Adding a method is one function and one registry entry, e.g. a gradient-free one:

    def random_search(loss, dim, *, budget, popsize, seed, progress=None) -> OptimResult:
        ...  # ask loss(z [B, D]) for points, record them with a Tracker
    OPTIMIZERS["random"] = GradientFree(random_search, "uniform random search")

A gradient-based entry (`GradientBased`) gives instead how to run one stage of the objectives
(see `lbfgsb_stage`); the starts and the staging are shared.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, ClassVar, Sequence

import numpy as np
import scipy.optimize
import threadpoolctl

__all__ = ["Stage", "Objectives", "OptimResult", "Tracker", "clean", "GradientBased",
           "GradientFree", "OPTIMIZERS", "method_names", "default_methods",
           "lbfgsb_multistart", "lbfgsb_sequential", "levenberg_marquardt", "staged",
           "lbfgsb_stage", "lm_stage", "nevergrad_minimize", "bayesian_minimize", "run_method",
           "confirmed", "CONFIRM_RTOL", "CONFIRM_ATOL", "BAD_LOSS"]

BatchLoss = Callable[[np.ndarray], np.ndarray]                        # Z [B, D] -> loss [B]
BatchValueGrad = Callable[[np.ndarray], tuple]  # -> loss [B], grad [B, D] (, score [B])
# -> loss [B], gradient [B, D], Gauss-Newton Hessian 2 J^T J [B, D, D] of a sum-of-squares
# loss (, score [B]). A surrogate objective returns as `score` the real objective at the same
# points: that is what the best-so-far record holds.
BatchGaussNewton = Callable[[np.ndarray], tuple]
Progress = Callable[[int, float], None]                               # (new evals, best loss)

BAD_LOSS = 1e12  # stands in for a NaN or infinite loss
CONFIRM_RTOL = 1e-6  # converged losses this close (relative) count as the same minimum
CONFIRM_ATOL = 1e-12  # ... or this close in absolute terms (losses near 0: noise-free targets)


@dataclass(frozen=True)
class Stage:
    """One objective a gradient-based method minimizes, with its derivatives, all batched over
    unit coordinates Z [B, D]. A `surrogate` stage (a smooth stand-in used to find the basin)
    returns the real loss at its points as the extra `score` output."""

    name: str
    value_and_grad: BatchValueGrad
    gauss_newton: BatchGaussNewton
    surrogate: bool = False


@dataclass(frozen=True)
class Objectives:
    """What the optimizers may call: the real `loss` (all a gradient-free method needs) and the
    stages a gradient-based method runs in order, the last one on the real loss (none: a
    problem without derivatives)."""

    loss: BatchLoss
    stages: tuple[Stage, ...] = ()

    @property
    def real(self) -> Stage:
        """The last stage: the real loss with its derivatives."""
        if not self.stages:
            raise ValueError("this problem provides no derivatives")
        return self.stages[-1]

    def stage(self, name: str) -> Stage | None:
        """The stage called `name`, None if there is none."""
        return next((s for s in self.stages if s.name == name), None)


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


class _Stopped(Exception):
    """Raised inside an L-BFGS-B worker thread (a Python frame, never inside JAX) to end its
    run when the fit is being stopped."""


def _bucket(n: int, batch: int) -> int:
    """Rows evaluated for n runs of a batch: the next power of two, at most the batch. As runs
    finish the rest cost less (GIF presearch, 16 rows 103 ms, 4 rows 40 ms), at one compiled
    shape per power of two."""
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


def _lm_steps(z: np.ndarray, g: np.ndarray, h: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Levenberg-Marquardt steps (H + lam diag H) dz = -g for each start, kept inside the unit
    box: coordinates on a bound and pushed outward are held fixed, and a coordinate the step
    would carry past a bound is put on it and the rest solved again (an active-set step)."""
    steps = np.zeros_like(z)
    for b in range(len(z)):
        fixed = ((z[b] <= 0.0) & (g[b] > 0.0)) | ((z[b] >= 1.0) & (g[b] < 0.0))
        target = z[b].copy()
        while not fixed.all():
            free = ~fixed
            hf = h[b][np.ix_(free, free)]
            d = np.diag(hf)
            scale = np.maximum(d, 1e-12 * max(d.max(), 1e-300))  # Marquardt (1963) scaling
            rhs = -g[b, free] - h[b][np.ix_(free, fixed)] @ (target[fixed] - z[b, fixed])
            try:
                step = np.linalg.solve(hf + lam[b] * np.diag(scale), rhs)
            except np.linalg.LinAlgError:
                step = rhs / (lam[b] * scale)
            target[free] = z[b, free] + step
            outside = free & ((target < 0.0) | (target > 1.0))
            target = np.clip(target, 0.0, 1.0)
            if not outside.any():
                break
            fixed |= outside
        steps[b] = target - z[b]
    return steps


def levenberg_marquardt(gauss_newton: BatchGaussNewton, starts: np.ndarray, maxiter: int = 100,
                        progress: Progress | None = None, ftol: float = 1e-9,
                        confirm: int = 0) -> OptimResult:
    """Multi-start Levenberg-Marquardt on a sum-of-squares loss inside the unit box: every start
    takes one trial step per iteration and all trial points share one batched Jacobian
    evaluation. A start stops when its step is predicted (by the Gauss-Newton model) or found
    to gain less than `ftol` of its loss, or when no damping finds a decrease; all stop once
    `confirm` > 0 stopped starts share the best loss (`confirmed`)."""
    tracker = Tracker("lm", progress)
    z = np.array(starts, dtype=float)
    f, g, h, real = _clean_gn(gauss_newton(z))
    tracker.record(z, real)
    lam = np.full(len(z), 1e-3)
    active = np.ones(len(z), dtype=bool)
    for _ in range(maxiter):
        step = _lm_steps(z, g, h, lam)  # already inside the box
        predicted = (-np.einsum("bd,bd->b", g, step)
                     - 0.5 * np.einsum("bd,bde,be->b", step, h, step))  # Gauss-Newton model
        active &= predicted > ftol * f
        if not active.any() or confirmed(f[~active], confirm, f[active]):
            break
        trial = np.where(active[:, None], z + step, z)
        ft, gt, ht, score = _clean_gn(gauss_newton(trial))
        tracker.record(trial[active], score[active])
        better = active & (ft < f)
        small_gain = better & (f - ft <= ftol * f)
        z[better], f[better], g[better], h[better] = trial[better], ft[better], gt[better], ht[better]
        real[better] = score[better]
        lam = np.clip(np.where(better, lam / 3.0, lam * 4.0), 1e-12, 1e12)
        active &= ~(small_gain | (lam >= 1e10))
    result = tracker.result()
    result.finals = [(z[b].copy(), float(f[b]), float(real[b])) for b in range(len(z))]
    return result


def _clean_gn(out: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Loss, gradient, Hessian and score (the loss itself when none is given), NaN-safe."""
    losses, grads = clean(out[0], out[1])
    hessians = np.asarray(out[2], dtype=float)
    hessians = np.where((losses >= BAD_LOSS)[:, None, None] | ~np.isfinite(hessians), 0.0,
                        hessians)
    return losses, grads, hessians, (clean(out[3]) if len(out) > 3 else losses)


def nevergrad_minimize(name: str, loss: BatchLoss, dim: int, budget: int, popsize: int,
                       seed: int, progress: Progress | None = None) -> OptimResult:
    """Nevergrad optimizer `name` (its registry name) by ask/tell, `popsize` candidates per
    batched evaluation."""
    import nevergrad as ng  # here, not at the top: importing it takes 2.5 s, --help 1 s without it

    param = ng.p.Array(shape=(dim,), lower=0.0, upper=1.0)
    param.random_state = np.random.RandomState(seed)
    opt = ng.optimizers.registry[name](parametrization=param, budget=budget,
                                                          num_workers=popsize)
    tracker = Tracker(name, progress)
    while tracker.n_evals < budget:
        cands = [opt.ask() for _ in range(min(popsize, budget - tracker.n_evals))]
        z = np.stack([c.value for c in cands])
        losses = clean(loss(z))
        for c, f in zip(cands, losses):
            opt.tell(c, float(f))
        tracker.record(z, losses)
    return tracker.result()


def bayesian_minimize(loss: BatchLoss, dim: int, budget: int, popsize: int, seed: int,
                      progress: Progress | None = None) -> OptimResult:
    """scikit-optimize Gaussian-process optimizer, `popsize` points asked per round."""
    import skopt  # here, not at the top: importing it takes 2.2 s, --help 1 s without it

    opt = skopt.Optimizer([(0.0, 1.0)] * dim, base_estimator="GP", random_state=seed,
                          n_initial_points=min(popsize, budget))
    tracker = Tracker("bayesian", progress)
    while tracker.n_evals < budget:
        n = min(popsize, budget - tracker.n_evals)
        z = np.clip(np.asarray(opt.ask(n_points=n), dtype=float), 0.0, 1.0)
        losses = clean(loss(z))
        opt.tell(z.tolist(), losses.tolist())
        tracker.record(z, losses)
    return tracker.result()


def lbfgsb_stage(stage: Stage, index: int, maxiter: int, progress: Progress | None,
                 confirm: int) -> Callable[[np.ndarray], OptimResult]:
    """Multi-start L-BFGS-B on one stage. A surrogate stage only has to find the basin: at most
    50 iterations there, 20 to polish an earlier stage's result (index > 0). The starts stop
    once `confirm` > 0 agree on the best."""
    cap = min(maxiter, 20 if index else 50) if stage.surrogate else maxiter
    return partial(lbfgsb_multistart, stage.value_and_grad, maxiter=cap, progress=progress,
                   confirm=confirm)


def lm_stage(stage: Stage, index: int, maxiter: int, progress: Progress | None,
             confirm: int) -> Callable[[np.ndarray], OptimResult]:
    """Multi-start Levenberg-Marquardt on one stage; a loose ftol on a surrogate stage; the
    starts stop once `confirm` > 0 agree on the best."""
    return partial(levenberg_marquardt, stage.gauss_newton, maxiter=maxiter, progress=progress,
                   ftol=1e-6 if stage.surrogate else 1e-9, confirm=confirm)


# stage(stage, index, maxiter, progress, confirm) -> run from starts [S, D]
StageRunner = Callable[[Stage, int, int, Progress | None, int],
                       Callable[[np.ndarray], OptimResult]]
# minimize(loss, dim, *, budget, popsize, seed, progress) -> OptimResult
Minimizer = Callable[..., OptimResult]


@dataclass(frozen=True)
class GradientBased:
    """A local method on the objectives' stages, run from `n_starts` uniform random starts: the
    first stage from every start, each later one from `n_refine` points of the one before
    (`staged`).
    `stage` builds the run of one stage; `maxiter` is per start and stage."""

    stage: StageRunner
    help: str
    default: bool = True  # in the scripts' default --methods
    kind: ClassVar[str] = "gradient-based"


@dataclass(frozen=True)
class GradientFree:
    """A global method on the real loss alone, allowed `budget` simulations, `popsize` per
    batched evaluation."""

    minimize: Minimizer
    help: str
    default: bool = True
    kind: ClassVar[str] = "gradient-free"


# The fitting methods by name, the one list of them: the scripts' --methods, metrics.json keys.
OPTIMIZERS: dict[str, GradientBased | GradientFree] = {
    # "gradient" is L-BFGS-B only; the name is kept because metrics.json reports it
    "gradient": GradientBased(lbfgsb_stage, "multi-start L-BFGS-B on JAX gradients (L-BFGS-B "
                                            "only, not every gradient-based method)"),
    "lm": GradientBased(lm_stage, "multi-start Levenberg-Marquardt on JAX Jacobians",
                        default=False),  # the authors' comparison has no lm
    "DE": GradientFree(partial(nevergrad_minimize, "DE"), "nevergrad differential evolution"),
    "PSO": GradientFree(partial(nevergrad_minimize, "PSO"),
                        "nevergrad particle swarm optimization"),
    "TwoPointsDE": GradientFree(partial(nevergrad_minimize, "TwoPointsDE"),
                                "nevergrad differential evolution, two-points crossover"),
    "bayesian": GradientFree(bayesian_minimize, "scikit-optimize Gaussian-process Bayesian "
                                                "optimization"),
}


def method_names(kind: str | None = None) -> tuple[str, ...]:
    """Registered methods in registry order; only "gradient-based" or "gradient-free" ones if
    `kind` is given."""
    return tuple(n for n, o in OPTIMIZERS.items() if kind is None or o.kind == kind)


def default_methods() -> tuple[str, ...]:
    """The scripts' default --methods."""
    return tuple(n for n, o in OPTIMIZERS.items() if o.default)


def run_method(method: str, obj: Objectives, dim: int, *, n_starts: int, budget: int,
               popsize: int, maxiter: int, seed: int, progress: Progress | None = None,
               n_refine: int = 2, confirm: int = 0) -> OptimResult:
    """Run one registered method by name. Starts of the gradient-based methods are drawn
    uniformly from `seed`; with several stages they run in stages (see staged); `confirm` > 0
    stops the starts of each stage once that many have converged to its best loss.

    The optimizers' own arithmetic (L-BFGS-B updates, Levenberg-Marquardt solves, GP refits)
    is on D x D matrices: one BLAS thread. OpenBLAS's threads only made those tiny calls wait
    for a core (busy 2-core machine: the HH fit 9.5 -> 5.0 s, a 40-point bayesian run 60 ->
    8 s); the simulations run in XLA's own threads and are not affected."""
    if method not in OPTIMIZERS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(OPTIMIZERS)}")
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        return _run(OPTIMIZERS[method], method, obj, dim, n_starts=n_starts, budget=budget,
                    popsize=popsize, maxiter=maxiter, seed=seed, progress=progress,
                    n_refine=n_refine, confirm=confirm)


def _run(opt: GradientBased | GradientFree, method: str, obj: Objectives, dim: int, *,
         n_starts: int, budget: int, popsize: int, maxiter: int, seed: int,
         progress: Progress | None, n_refine: int, confirm: int) -> OptimResult:
    if isinstance(opt, GradientFree):
        return opt.minimize(obj.loss, dim, budget=budget, popsize=popsize, seed=seed,
                            progress=progress)
    if not obj.stages:
        raise ValueError(f"method {method!r} needs derivatives this problem does not provide")
    starts = np.random.default_rng(seed).uniform(size=(n_starts, dim))
    runs = [opt.stage(stage, k, maxiter, progress, confirm)
            for k, stage in enumerate(obj.stages)]
    if len(runs) == 1:
        return runs[0](starts)
    return staged(runs, starts, min(n_refine, n_starts))
