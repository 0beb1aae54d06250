"""The fitting objectives built by utils.fitting.objectives: every loss is a sum of squared
residuals whose Gauss-Newton terms (forward mode) agree with the reverse-mode gradient, and the
presearch scores its points on the real loss."""
import dataclasses

import numpy as np
import pytest

import neuron_fitting_of_gif_model as gif
import neuron_fitting_of_hh_model as hh
from utils.fitting import make_objectives, problem_from_flags, traces_of
from utils.fitting.objectives import FORWARD_MODE_MAX_DIM, cohort_key
from utils.fitting.metrics import gamma_factor

Z = np.random.default_rng(0).uniform(0.2, 0.8, size=(3, 4))


# the default 4 free parameters get forward-mode gradients, 7 reverse-mode ones
FITS = [",".join(hh.DEFAULTS.fit), ",".join(hh.DEFAULTS.fit) + ",C,EL,EK"]


# with 7 parameters (18-24 s on 2 cores): slow; the reverse-mode gradient is checked against
# finite differences below, the Gauss-Newton terms with 4
@pytest.mark.parametrize("target, fit", [
    ("potential", FITS[0]), ("spike", FITS[0]),
    pytest.param("potential", FITS[1], marks=pytest.mark.slow),
    pytest.param("spike", FITS[1], marks=pytest.mark.slow)])
def test_gauss_newton_terms_agree_with_the_gradient(target, fit):
    problem = problem_from_flags(hh.DEFAULTS, ["--target", target, "--fit", fit])
    obj = make_objectives(problem)
    assert [s.name for s in obj.stages] == ["real"]  # HH: no presearch
    z = np.random.default_rng(0).uniform(0.2, 0.8, size=(3, len(problem.free)))
    loss, grad = obj.real.value_and_grad(z)
    f, g, h = obj.real.gauss_newton(z)
    np.testing.assert_allclose(f, loss, rtol=1e-10)
    np.testing.assert_allclose(f, obj.loss(z), rtol=1e-10)
    np.testing.assert_allclose(g, grad, rtol=1e-6, atol=1e-12 * np.abs(grad).max())
    assert np.all(np.linalg.eigvalsh(h) > -1e-9 * np.abs(h).max())


@pytest.mark.parametrize("fit", FITS)
def test_gradient_matches_finite_differences_in_forward_and_reverse_mode(fit):
    problem = problem_from_flags(hh.DEFAULTS, ["--fit", fit])
    dim = len(problem.free)
    assert (dim <= FORWARD_MODE_MAX_DIM) == (fit == FITS[0])
    obj = make_objectives(problem)
    z = np.random.default_rng(1).uniform(0.2, 0.8, size=(2, dim))
    _, grad = obj.real.value_and_grad(z)
    step = 1e-6
    fd = np.stack([(obj.loss(z + step * e) - obj.loss(z - step * e)) / (2 * step)
                   for e in np.eye(dim)], axis=1)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-6 * np.abs(fd).max())


def test_potential_loss_is_the_voltage_mse():
    problem = problem_from_flags(hh.DEFAULTS, [])
    obj = make_objectives(problem)
    params = dict(zip(problem.free, problem.box.to_params(Z[:1])[0]))
    v, _ = traces_of(problem, params)
    assert obj.loss(Z[:1])[0] == pytest.approx(np.mean((v - problem.v_target) ** 2), rel=1e-10)


def test_presearch_scores_its_points_on_the_real_loss():
    problem = problem_from_flags(gif.DEFAULTS, [])
    obj = make_objectives(problem)
    assert [s.name for s in obj.stages] == ["coarse", "presearch", "real"]
    assert [s.surrogate for s in obj.stages] == [True, True, False]
    real = obj.loss(Z)
    pre_loss, _, score = obj.stage("presearch").value_and_grad(Z)
    f, g, h, score_gn = obj.stage("presearch").gauss_newton(Z)
    np.testing.assert_allclose(score, real, rtol=1e-10)
    np.testing.assert_allclose(score_gn, real, rtol=1e-10)
    np.testing.assert_allclose(f, pre_loss, rtol=1e-10)
    assert not np.allclose(pre_loss, real)  # a different (surrogate) objective


def test_coarse_presearch_runs_on_presearch_dt_and_scores_on_the_real_loss():
    """GIF's default presearch_dt (1 ms, 10 steps of 0.1 ms) gives a coarse-grid stage: a
    different surrogate, close to the fine one near the truth, scored on the real loss;
    --presearch_dt equal to --dt removes it."""
    problem = problem_from_flags(gif.DEFAULTS, [])
    obj = make_objectives(problem)
    coarse = obj.stage("coarse").value_and_grad
    coarse_loss, _, score = coarse(Z)
    np.testing.assert_allclose(score, obj.loss(Z), rtol=1e-10)
    fine_loss = obj.stage("presearch").value_and_grad(Z)[0]
    assert not np.allclose(coarse_loss, fine_loss)
    truth = np.array([[(problem.truth[n] - problem.box.lo[k]) /
                       (problem.box.hi[k] - problem.box.lo[k])
                       for k, n in enumerate(problem.free)]])
    assert coarse(truth)[0][0] < 0.05 * coarse_loss.min()
    no_coarse = make_objectives(problem_from_flags(gif.DEFAULTS, ["--presearch_dt", "0.1"]))
    assert [s.name for s in no_coarse.stages] == ["presearch", "real"]


def test_synthetic_spike_target_keeps_the_rebound_spike():
    """The synthetic target's spike times come from the true model's spike signal: the rebound
    spike after hyperpolarization (a reset of only a few mV, which a voltage-drop detector
    misses) is in it, so the truth scores gamma 1 on every trace."""
    problem = problem_from_flags(gif.DEFAULTS, ["--noise_mV", "0.5"])
    _, spikes = traces_of(problem, problem.truth)
    assert len(problem.spikes_target[4]) == 1 and problem.spikes_target[4][0] > 800.0
    for model, data in zip(spikes, problem.spikes_target):
        assert gamma_factor(model, data, 2.0, problem.duration) == 1.0


def three_cells(script, flags):
    """Three recordings of one kind: noise of three seeds on the voltage, and spike times
    moved by 0, 0.3 and -0.2 ms."""
    problems = []
    for seed, shift in enumerate((0.0, 0.3, -0.2)):
        p = problem_from_flags(script.DEFAULTS, [*flags, "--noise_mV", "2", "--seed",
                                                 str(seed)])
        problems.append(dataclasses.replace(p, spikes_target=[s + shift
                                                              for s in p.spikes_target]))
    return problems


def test_cohort_rows_are_scored_on_their_own_cells_recording():
    """HH rows of three cells in one call: each row's loss is the voltage MSE against its own
    cell's target (simulated apart), its gradient that of finite differences."""
    problems = three_cells(hh, [])
    cohort = make_objectives(problems)
    assert len({cohort_key(p) for p in problems}) == 1
    z = np.random.default_rng(2).uniform(0.2, 0.8, size=(6, len(problems[0].free)))
    cells = np.array([2, 0, 1, 1, 0, 2])
    loss, grad = cohort.stages[-1].value_and_grad(z, cells)
    for row, c in zip(z, cells):
        p = problems[c]
        v, _ = traces_of(p, dict(zip(p.free, p.box.to_params(row[None])[0])))
        assert cohort.loss(row[None], [c])[0] == pytest.approx(np.mean((v - p.v_target) ** 2),
                                                               rel=1e-10)
    np.testing.assert_allclose(loss, cohort.loss(z, cells), rtol=1e-12)
    step = 1e-6
    fd = np.stack([(cohort.loss(z + step * e, cells) - cohort.loss(z - step * e, cells))
                   / (2 * step) for e in np.eye(z.shape[1])], axis=1)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-6 * np.abs(fd).max())
    assert len({float(cohort.loss(z[:1], [c])[0]) for c in range(3)}) == 3


def test_a_cohorts_presearch_forces_each_cells_own_spikes():
    """GIF rows of two cells whose spikes differ: the coarse presearch of each row is that of
    its own cell's problem alone."""
    problems = three_cells(gif, [])[:2]
    stage = make_objectives(problems).stages[0]
    assert stage.name == "coarse"
    z = np.random.default_rng(3).uniform(0.2, 0.8, size=(4, len(problems[0].free)))
    cells = np.array([1, 0, 0, 1])
    together = stage.value_and_grad(z, cells)
    for c, problem in enumerate(problems):
        alone = make_objectives(problem).stages[0].value_and_grad(z[cells == c])
        for a, b in zip(together, alone):
            np.testing.assert_allclose(a[cells == c], b, rtol=1e-12, atol=1e-12)
    assert not np.allclose(together[0][cells == 0], together[0][cells == 1][::-1])


def test_problems_of_another_kind_are_not_one_cohort():
    a = problem_from_flags(hh.DEFAULTS, [])
    with pytest.raises(ValueError, match="one kind"):
        make_objectives([a, problem_from_flags(hh.DEFAULTS, ["--fit", "gl,g_na"])])
