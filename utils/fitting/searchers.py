"""The fitting methods other than L-BFGS-B, behind the shared interface (utils/fitting/optim.py):
multi-start Levenberg-Marquardt on the objectives' Gauss-Newton terms, and wrappers of the
gradient-free searches of nevergrad and scikit-optimize (each imported only when its method
runs).
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import numpy as np

from utils.fitting.optim import (BAD_LOSS, BatchLoss, OptimResult, Progress, Stage, Tracker,
                                 clean, confirmed, of_cell)

__all__ = ["levenberg_marquardt", "lm_stage", "nevergrad_minimize", "bayesian_minimize",
           "differential_evolution", "particle_swarm", "two_points_de"]


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


def levenberg_marquardt(gauss_newton: Callable[[np.ndarray], tuple], starts: np.ndarray,
                        maxiter: int = 100, progress: Progress | None = None,
                        ftol: float = 1e-9, confirm: int = 0) -> OptimResult:
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
        z[better], f[better] = trial[better], ft[better]
        g[better], h[better] = gt[better], ht[better]
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
    import nevergrad as ng  # here: a slow import, paid only by a run that uses it

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
    import skopt  # here: a slow import, paid only by a run that uses it

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


def lm_stage(stage: Stage, index: int, maxiter: int, progress: Progress | None,
             confirm: int) -> Callable[[Sequence[np.ndarray]], list[OptimResult]]:
    """Multi-start Levenberg-Marquardt on one stage, the cells in turn (each from its starts
    [S_c, D]); a loose ftol on a surrogate stage; a cell's starts stop once `confirm` > 0
    agree on its best."""
    def run(starts: Sequence[np.ndarray]) -> list[OptimResult]:
        return [levenberg_marquardt(of_cell(stage.gauss_newton, c), s, maxiter=maxiter,
                                    progress=progress, ftol=1e-6 if stage.surrogate else 1e-9,
                                    confirm=confirm)
                for c, s in enumerate(starts)]
    return run


# nevergrad's optimizers by their registry names, as the methods' registry refers to them
differential_evolution = partial(nevergrad_minimize, "DE")
particle_swarm = partial(nevergrad_minimize, "PSO")
two_points_de = partial(nevergrad_minimize, "TwoPointsDE")
