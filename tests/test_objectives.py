"""The fitting objectives built by utils.fitting: every loss is a sum of squared residuals
whose Gauss-Newton terms (forward mode) agree with the reverse-mode gradient, and the
presearch scores its points on the real loss."""
import numpy as np
import pytest

import neuron_fitting_of_gif_model as gif
import neuron_fitting_of_hh_model as hh
from benchmarks.common import problem_for
from utils.fitting import make_objectives, simulate_params

Z = np.random.default_rng(0).uniform(0.2, 0.8, size=(3, 4))


@pytest.mark.parametrize("target", ["potential", "spike"])
def test_gauss_newton_terms_agree_with_the_gradient(target):
    problem = problem_for(hh.DEFAULTS, ["--target", target])
    obj = make_objectives(problem)
    loss, grad = obj.value_and_grad(Z)
    f, g, h = obj.gauss_newton(Z)
    np.testing.assert_allclose(f, loss, rtol=1e-10)
    np.testing.assert_allclose(f, obj.loss(Z), rtol=1e-10)
    np.testing.assert_allclose(g, grad, rtol=1e-6, atol=1e-12 * np.abs(grad).max())
    assert np.all(np.linalg.eigvalsh(h) > -1e-9 * np.abs(h).max())


def test_potential_loss_is_the_voltage_mse():
    problem = problem_for(hh.DEFAULTS, [])
    obj = make_objectives(problem)
    params = dict(zip(problem.free, problem.box.to_params(Z[:1])[0]))
    v, _ = simulate_params(problem, params)
    assert obj.loss(Z[:1])[0] == pytest.approx(np.mean((v - problem.v_target) ** 2), rel=1e-10)


def test_presearch_scores_its_points_on_the_real_loss():
    problem = problem_for(gif.DEFAULTS, [])
    obj = make_objectives(problem)
    real = obj.loss(Z)
    pre_loss, _, score = obj.presearch(Z)
    f, g, h, score_gn = obj.presearch_gn(Z)
    np.testing.assert_allclose(score, real, rtol=1e-10)
    np.testing.assert_allclose(score_gn, real, rtol=1e-10)
    np.testing.assert_allclose(f, pre_loss, rtol=1e-10)
    assert not np.allclose(pre_loss, real)  # a different (surrogate) objective
