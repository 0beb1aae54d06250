"""The sequential L-BFGS-B loop that the fits' lock-step batching is measured against
(benchmarks/hh_fitting.py) and checked against (tests/test_optim.py)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from utils.fitting.optim import OptimResult, Progress, Tracker, clean


def lbfgsb_sequential(value_and_grad: Callable, starts: np.ndarray, maxiter: int = 200,
                      progress: Progress | None = None) -> OptimResult:
    """The runs of lbfgsb_multistart one after another, one point per evaluation
    (value_and_grad(Z [B, D]) of one cell): what the lock-step batching is measured against."""
    import scipy.optimize

    tracker = Tracker("gradient", progress)

    def fun(z):
        f, g = clean(*value_and_grad(z[None]))
        tracker.record(z[None], f)
        return float(f[0]), g[0]

    for z0 in starts:
        scipy.optimize.minimize(fun, z0, jac=True, method="L-BFGS-B",
                                bounds=[(0.0, 1.0)] * starts.shape[1], options={"maxiter": maxiter})
    return tracker.result()
