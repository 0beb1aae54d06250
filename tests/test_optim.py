"""Each optimizer on a tiny problem with a known minimum, through the shared interface and
the registry."""
import numpy as np
import pytest

from benchmarks.kit.optim import lbfgsb_sequential
from utils.fitting.methods import METHODS, GradientBased, method_names
from utils.fitting.multistart import lbfgsb_multistart, run_method, staged
from utils.fitting.optim import BAD_LOSS, Objectives, OptimResult, Stage, confirmed, one_cell
from utils.fitting.searchers import levenberg_marquardt
from utils.fitting.starts import MAX_ROWS, _bucket, batched_calls

ALL_METHODS = method_names()
GRADIENT_FREE = method_names("gradient-free")

CENTER = np.array([0.3, 0.7])
SIN_WEIGHT = np.sqrt(0.1)


def residuals(z):
    """[B, 4]: the loss below is their sum of squares."""
    return np.concatenate([z - CENTER, SIN_WEIGHT * np.sin(5 * z)], axis=1)


def loss(z):
    return np.sum((z - CENTER) ** 2, axis=1) + 0.1 * np.sum(np.sin(5 * z) ** 2, axis=1)


def value_and_grad(z):
    return loss(z), 2 * (z - CENTER) + 0.1 * 2 * np.sin(5 * z) * np.cos(5 * z) * 5


def gauss_newton(z):
    eye = np.broadcast_to(np.eye(z.shape[1]), (len(z), z.shape[1], z.shape[1]))
    jac = np.concatenate([eye, eye * (SIN_WEIGHT * 5 * np.cos(5 * z))[:, :, None]], axis=1)
    r = residuals(z)
    return (np.sum(r ** 2, axis=1), 2 * np.einsum("bmd,bm->bd", jac, r),
            2 * np.einsum("bmd,bme->bde", jac, jac))


OBJ = Objectives(one_cell(loss), (Stage("real", one_cell(value_and_grad), one_cell(gauss_newton)),))


def _best():
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 401), np.linspace(0, 1, 401)), -1).reshape(-1, 2)
    return loss(grid).min()


@pytest.mark.parametrize("method", ALL_METHODS)
def test_each_method_finds_the_minimum(method):
    budget = 40 if method == "bayesian" else 60
    res, = run_method(method, OBJ, 2, n_starts=4, budget=budget, popsize=10, maxiter=50, seed=3)
    assert res.loss < _best() + (0.05 if method in GRADIENT_FREE else 1e-6)
    assert np.all((res.z >= 0) & (res.z <= 1))
    if method in GRADIENT_FREE:
        assert res.n_evals == budget
    assert res.history and res.history[-1][2] == pytest.approx(res.loss)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_same_seed_same_result(method):
    kw = dict(n_starts=3, budget=30, popsize=10, maxiter=20)
    a, = run_method(method, OBJ, 2, seed=5, **kw)
    b, = run_method(method, OBJ, 2, seed=5, **kw)
    assert a.loss == b.loss and np.array_equal(a.z, b.z) and a.n_evals == b.n_evals


def test_lockstep_batching_equals_sequential_runs():
    starts = np.random.default_rng(0).uniform(size=(5, 2))
    calls = []

    def counting(z):
        calls.append(len(z))
        return value_and_grad(z)

    batched, = lbfgsb_multistart(one_cell(counting), [starts], maxiter=30)
    seq = lbfgsb_sequential(value_and_grad, starts, maxiter=30)
    assert batched.loss == pytest.approx(seq.loss, abs=1e-12)
    assert batched.n_evals == seq.n_evals
    assert len(calls) < seq.n_evals  # fewer calls
    assert set(calls) == {5}  # fewer than MIN_ROWS runs: the whole batch, one shape


@pytest.mark.parametrize("n, batch, rows", [(1, 20, 8), (2, 20, 8), (3, 20, 8), (8, 20, 8),
                                            (9, 20, 16), (16, 20, 16), (17, 20, 20),
                                            (20, 20, 20), (5, 5, 5), (3, 5, 5), (1, 2, 2),
                                            (100, 1000, 128), (129, 1000, 128)])
def test_a_lockstep_evaluation_pads_to_a_power_of_two_at_most_the_batch(n, batch, rows):
    assert _bucket(n, batch) == rows


@pytest.mark.parametrize("n, batch, rows", [(1, 20, 20), (9, 20, 20), (3, 100, 32),
                                            (33, 100, 64), (129, 1000, 128)])
def test_long_sweeps_pad_to_more_rows(n, batch, rows):
    assert _bucket(n, batch, min_rows=32) == rows


def test_many_points_are_evaluated_in_calls_of_at_most_max_rows():
    shapes = []

    def fn(z, cells):
        shapes.append(len(z))
        return value_and_grad(z)
    z = np.random.default_rng(0).uniform(size=(300, 2))
    f, g = batched_calls(fn, z, np.zeros(300, int), batch=1000)
    assert shapes == [MAX_ROWS, MAX_ROWS, 64]
    np.testing.assert_array_equal(f, loss(z))
    np.testing.assert_array_equal(g, value_and_grad(z)[1])


def test_nan_losses_do_not_break_the_search():
    def nan_loss(z):
        out = loss(z)
        out[z[:, 0] > 0.8] = np.nan
        return out
    res, = run_method("DE", Objectives(one_cell(nan_loss)), 2, n_starts=1, budget=40, popsize=10,
                     maxiter=1, seed=0)
    assert np.isfinite(res.loss)


def test_gauss_newton_terms_match_the_loss_and_its_gradient():
    z = np.random.default_rng(1).uniform(size=(3, 2))
    f, g, h = gauss_newton(z)
    np.testing.assert_allclose(f, loss(z))
    np.testing.assert_allclose(g, value_and_grad(z)[1])
    assert np.all(np.linalg.eigvalsh(h) >= -1e-12)


def test_levenberg_marquardt_stops_on_a_bound_and_stays_inside():
    outside = np.array([1.4, -0.2])  # the unconstrained minimum lies outside the unit box

    def gn(z):
        r = z - outside
        eye = np.broadcast_to(2 * np.eye(2), (len(z), 2, 2))
        return np.sum(r ** 2, axis=1), 2 * r, eye

    res = levenberg_marquardt(gn, np.array([[0.5, 0.5], [0.1, 0.9]]), maxiter=50)
    np.testing.assert_allclose(res.z, [1.0, 0.0], atol=1e-9)
    assert res.n_evals < 2 * 50  # both starts stopped early


def test_levenberg_marquardt_converges_in_few_iterations_on_a_least_squares_problem():
    calls = []

    def counting(z):
        calls.append(1)
        return gauss_newton(z)

    starts = np.array([[0.25, 0.65], [0.35, 0.75]])  # in the basin of the global minimum
    res = levenberg_marquardt(counting, starts, maxiter=100)
    assert res.loss < _best() + 1e-9
    assert len(calls) < 30


def cellwise(run):
    """A stage run of one cell (starts [S, D] -> result) as one over a list of cells."""
    return lambda zs: [run(zs[0])]


def _shifted(shift: float):
    """A surrogate of `loss` with its minimum moved by `shift`, scoring points on `loss`."""
    def fn(z):
        f, g = value_and_grad(z - shift)
        return f, g, loss(z)
    return fn


@pytest.mark.parametrize("method", ["gradient", "lm"])
def test_gradient_methods_run_coarse_presearch_and_real_stages(method):
    """coarse -> presearch -> real: the history covers all three stages on the real loss (times
    and counts keep increasing, the best never rises), refinement starts from the n_refine
    best, and the real stage removes the surrogates' offset."""
    calls = []

    def counted(fn, name):
        def call(z, cells):
            calls.append((name, len(z)))
            return fn(z)
        return call

    def gn_of(shift):
        def fn(z):
            return (*gauss_newton(z - shift), loss(z))
        return fn

    obj = Objectives(one_cell(loss), (
        Stage("coarse", counted(_shifted(0.05), "coarse"), counted(gn_of(0.05), "coarse"),
              surrogate=True),
        Stage("presearch", counted(_shifted(0.01), "fine"), counted(gn_of(0.01), "fine"),
              surrogate=True),
        Stage("real", counted(value_and_grad, "real"), counted(gauss_newton, "real"))))
    res, = run_method(method, obj, 2, n_starts=6, budget=0, popsize=1, maxiter=50, seed=1,
                     n_refine=2)
    order = [name for name, _ in calls]
    assert order[0] == "coarse" and order[-1] == "real"
    assert order.index("fine") > max(i for i, n in enumerate(order) if n == "coarse")
    assert {n for name, n in calls if name != "coarse"} <= {1, 2}  # refined from the 2 best
    assert calls[0][1] == 6
    times, evals, best = map(np.array, zip(*res.history))
    assert np.all(np.diff(times) >= 0) and np.all(np.diff(evals) > 0)
    assert np.all(np.diff(best) <= 0) and best[-1] == pytest.approx(res.loss)
    assert evals[-1] == res.n_evals
    assert res.loss < _best() + 1e-6


def test_staged_keeps_the_best_point_of_an_earlier_stage():
    """A later stage that ends worse does not replace an earlier stage's best point."""
    good = np.array([[0.5, 0.5]])

    def first(z):
        return OptimResult("x", good[0], 0.1, 3, 0.0, [(0.0, 3, 0.1)], [(good[0], 0.1, 0.1)])

    def second(z):
        assert np.array_equal(z, good)
        return OptimResult("x", z[0] + 0.1, 0.5, 2, 0.0, [(0.0, 2, 0.5)],
                           [(z[0] + 0.1, 0.5, 0.5)])

    res, = staged([cellwise(first), cellwise(second)], [np.zeros((4, 2))], n_refine=1)
    assert res.loss == 0.1 and np.array_equal(res.z, good[0]) and res.n_evals == 5
    assert [h[2] for h in res.history] == [0.1, 0.1]


@pytest.mark.parametrize("n_refine, expected", [(1, ["best"]), (2, ["best", "a"]),
                                                (3, ["best", "a", "b"]),
                                                (4, ["best", "a", "b", "d"])])
def test_a_later_stage_refines_the_best_point_then_the_surrogates_then_by_real_loss(
        n_refine, expected):
    """First the best point scored anywhere in the stage (not an end), then the end the
    surrogate ranks first (a), then the others by real loss: b, then d (c is the same minimum
    as b: equal real loss, refined once)."""
    z = {name: np.full(2, v) for name, v in
         [("best", 0.1), ("a", 0.2), ("b", 0.3), ("c", 0.4), ("d", 0.5)]}
    seen = []

    def first(_):
        return OptimResult("x", z["best"], 0.25, 9, 0.0, [(0.0, 9, 0.25)],
                           [(z["a"], 0.1, 0.9), (z["b"], 0.2, 0.3), (z["c"], 0.3, 0.3 + 1e-9),
                            (z["d"], 0.4, 0.5)])

    def second(starts):
        seen.extend(starts.tolist())
        return OptimResult("x", starts[0], 0.2, 1, 0.0, [(0.0, 1, 0.2)], [])

    staged([cellwise(first), cellwise(second)], [np.zeros((4, 2))], n_refine=n_refine)
    assert seen == [z[name].tolist() for name in expected]


def test_a_registered_gradient_based_method_runs_its_own_stage_builder(monkeypatch):
    """A gradient-based entry gets every stage, in order, with its index, and is run by its own
    builder (not routed to another method's); the staging between them is shared."""
    seen = []

    def one_lbfgsb_stage(stage, index, maxiter, progress, confirm):
        seen.append((stage.name, index, stage.surrogate))
        return lambda starts: lbfgsb_multistart(stage.value_and_grad, starts, maxiter=maxiter)

    monkeypatch.setitem(METHODS, "mine", GradientBased(one_lbfgsb_stage, "test method"))
    assert "mine" in method_names("gradient-based")
    obj = Objectives(one_cell(loss), (
        Stage("presearch", one_cell(_shifted(0.01)), None, surrogate=True),
        Stage("real", one_cell(value_and_grad), None)))
    res, = run_method("mine", obj, 2, n_starts=4, budget=0, popsize=1, maxiter=50, seed=0,
                     n_refine=2)
    assert seen == [("presearch", 0, True), ("real", 1, False)]
    assert res.loss < _best() + 1e-6


def test_gradient_based_method_refuses_a_problem_without_derivatives():
    with pytest.raises(ValueError, match="needs derivatives"):
        run_method("gradient", Objectives(one_cell(loss)), 2, n_starts=2, budget=0, popsize=1,
                   maxiter=5, seed=0)


@pytest.mark.parametrize("converged, running, confirm, expected", [
    ([1.0, 1.0 + 1e-8, 5.0], [], 2, True),
    ([1.0, 1.0 + 1e-8, 5.0], [], 3, False),
    ([5.0, 5.0, 5.0, 1.0], [], 3, False),  # the lowest converged minimum must be found again
    ([2.0, 1.0, 1.0, 1.0], [7.0], 3, True),
    ([5.0, 5.0, 5.0], [4.0, 9.0], 3, False),  # a start still running is already lower
    ([1.0, 1.0, 1.0], [], 0, False),          # 0: never stop early
    ([BAD_LOSS] * 3, [2.0], 3, False),        # failed evaluations never count
    ([3e-17, 1e-16, 2e-16], [], 3, True),     # near 0 (noise-free): the absolute tolerance
])
def test_the_stopping_rule(converged, running, confirm, expected):
    assert confirmed(converged, confirm, running) is expected


def test_broken_starts_do_not_stop_the_others():
    """Starts whose loss is NaN converge at once (zero gradient); they must not confirm."""
    def nan_left(z):
        f, g = value_and_grad(z)
        return np.where(z[:, 0] < 0.5, np.nan, f), g

    starts = np.array([[0.1, 0.5], [0.2, 0.5], [0.3, 0.5], [0.4, 0.5], [0.9, 0.9]])
    res, = lbfgsb_multistart(one_cell(nan_left), [starts], maxiter=100, confirm=3)
    best_right = min(loss(np.array([[x, y]]))[0] for x in np.linspace(0.5, 1, 101)
                     for y in np.linspace(0, 1, 101))
    assert res.loss < best_right + 1e-6


@pytest.mark.parametrize("method", ["gradient", "lm"])
def test_confirm_stops_the_starts_early_with_the_same_best(method):
    """12 starts on the bumpy toy loss (several local minima): stopping once 3 starts agree on
    the best costs fewer evaluations and finds the same minimum as running every start."""
    kw = dict(n_starts=12, budget=0, popsize=1, maxiter=100, seed=0)
    every, = run_method(method, OBJ, 2, confirm=0, **kw)
    early, = run_method(method, OBJ, 2, confirm=3, **kw)
    assert early.loss == pytest.approx(every.loss, rel=1e-9, abs=1e-12)
    assert early.loss < _best() + 1e-6
    assert early.n_evals < every.n_evals


def shifted(shift):
    """The toy problem with its minimum moved by `shift` (another cell's recording)."""
    return lambda z, cells: value_and_grad(z - shift)


@pytest.mark.parametrize("confirm", [0, 2])
def test_cells_fitted_together_each_get_their_own_runs_result(confirm):
    """Starts of three cells evaluated in one lockstep give each cell the result of its own
    multi-start run: the same best point, loss and evaluations, each cell raced on its own."""
    shifts = np.array([[0.0, 0.0], [0.1, -0.2], [-0.2, 0.1]])

    def cells_vg(z, cells):
        return value_and_grad(z - shifts[cells])

    starts = [np.random.default_rng(c).uniform(size=(6, 2)) for c in range(3)]
    together = lbfgsb_multistart(cells_vg, starts, maxiter=50, confirm=confirm)
    for c, res in enumerate(together):
        alone, = lbfgsb_multistart(shifted(shifts[c]), [starts[c]], maxiter=50,
                                   confirm=confirm)
        np.testing.assert_array_equal(res.z, alone.z)
        assert (res.loss, res.n_evals) == (alone.loss, alone.n_evals)
        assert len(res.finals) == len(alone.finals)
    if confirm:
        full = lbfgsb_multistart(cells_vg, starts, maxiter=50, confirm=0)
        assert sum(r.n_evals for r in together) < sum(r.n_evals for r in full)


def test_staged_refines_each_cells_own_points():
    """Two stages over two cells: each cell's second stage starts from its own first stage's
    best point."""
    shifts = np.array([[0.0, 0.0], [0.2, -0.2]])
    seen = []

    def stage(zs):
        seen.append([np.array(z) for z in zs])
        return [lbfgsb_multistart(shifted(shifts[c]), [z], maxiter=30)[0]
                for c, z in enumerate(zs)]

    starts = [np.random.default_rng(0).uniform(size=(4, 2))] * 2
    results = staged([stage, stage], starts, n_refine=1)
    for c, res in enumerate(results):
        first, = lbfgsb_multistart(shifted(shifts[c]), [starts[c]], maxiter=30)
        np.testing.assert_array_equal(seen[1][c], first.z[None])
        assert res.loss <= first.loss
    assert not np.array_equal(seen[1][0], seen[1][1])
