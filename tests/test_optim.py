"""Each optimizer on a tiny problem with a known minimum, through the shared interface."""
import numpy as np
import pytest

from utils.optim import METHODS, lbfgsb_multistart, lbfgsb_sequential, run_method

CENTER = np.array([0.3, 0.7])


def loss(z):
    return np.sum((z - CENTER) ** 2, axis=1) + 0.1 * np.sum(np.sin(5 * z) ** 2, axis=1)


def value_and_grad(z):
    return loss(z), 2 * (z - CENTER) + 0.1 * 2 * np.sin(5 * z) * np.cos(5 * z) * 5


def _best():
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 401), np.linspace(0, 1, 401)), -1).reshape(-1, 2)
    return loss(grid).min()


@pytest.mark.parametrize("method", METHODS)
def test_each_method_finds_the_minimum(method):
    budget = 40 if method == "bayesian" else 60
    res = run_method(method, loss, value_and_grad, 2, n_starts=4, budget=budget, popsize=10,
                     maxiter=50, seed=3)
    assert res.loss < _best() + (1e-6 if method == "gradient" else 0.05)
    assert np.all((res.z >= 0) & (res.z <= 1))
    if method != "gradient":
        assert res.n_evals == budget
    assert res.history and res.history[-1][2] == pytest.approx(res.loss)


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_result(method):
    kw = dict(n_starts=3, budget=30, popsize=10, maxiter=20)
    a = run_method(method, loss, value_and_grad, 2, seed=5, **kw)
    b = run_method(method, loss, value_and_grad, 2, seed=5, **kw)
    assert a.loss == b.loss and np.array_equal(a.z, b.z) and a.n_evals == b.n_evals


def test_lockstep_batching_equals_sequential_runs():
    starts = np.random.default_rng(0).uniform(size=(5, 2))
    calls = []

    def counting(z):
        calls.append(len(z))
        return value_and_grad(z)

    batched = lbfgsb_multistart(counting, starts, maxiter=30)
    seq = lbfgsb_sequential(value_and_grad, starts, maxiter=30)
    assert batched.loss == pytest.approx(seq.loss, abs=1e-12)
    assert batched.n_evals == seq.n_evals
    assert len(calls) < seq.n_evals and set(calls) == {5}  # fixed batch shape, fewer calls


def test_nan_losses_do_not_break_the_search():
    def nan_loss(z):
        out = loss(z)
        out[z[:, 0] > 0.8] = np.nan
        return out
    res = run_method("DE", nan_loss, None, 2, n_starts=1, budget=40, popsize=10, maxiter=1,
                     seed=0)
    assert np.isfinite(res.loss)
