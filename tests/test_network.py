"""The E/I network: connectivity generators, Dale's law, layouts agree, seeding."""
import numpy as np
import pytest

import brainstate
import jax.numpy as jnp

from models.networks import NetConfig
from models.networks.alif import ALIFNet, draw_tau_a
from models.networks.connectivity import CONNECTIVITIES, make_connectivity, ring_positions


def _net(conn_method="dense", layout="auto", seed=0, n_rec=40, **kw):
    cfg = NetConfig.make(neuron="alif", n_rec=n_rec, conn_method=conn_method,
                         conn_sigma=kw.pop("conn_sigma", 4.0), **kw).resolved()
    net = ALIFNet(cfg, seed=seed, layout=layout)
    brainstate.nn.init_all_states(net, 3)
    return net


def _inputs(T=60, B=3, seed=1):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.random((T, B, 100)) < 0.08, dtype=jnp.float32)


def _run(net, xs):
    with brainstate.environ.context(dt=1.0):
        brainstate.nn.reset_all_states(net)
        return np.asarray(brainstate.transform.for_loop(net, xs))


def test_rand_density_matches_probability_and_no_autapses():
    rng = np.random.default_rng(0)
    conn = make_connectivity("rand", "E", 320, 80, rng, prob=0.1)
    assert conn.mask.shape == (320, 400)
    # binomial std of the density over 128000 draws is ~0.0008
    assert abs(conn.density - 0.1) < 0.005
    assert not conn.mask[np.arange(320), np.arange(320)].any()
    conn_i = make_connectivity("rand", "I", 320, 80, rng, prob=0.3)
    assert abs(conn_i.density - 0.3) < 0.01
    assert not conn_i.mask[np.arange(80), 320 + np.arange(80)].any()


def test_gaussian_is_local_on_the_ring_with_expected_in_degree():
    rng = np.random.default_rng(0)
    n_exc, n_inh, sigma = 800, 200, 10.0
    conn = make_connectivity("gaussian", "E", n_exc, n_inh, rng, sigma=sigma)
    pos_e, pos_i = ring_positions(n_exc, n_inh)
    pos_all = np.concatenate([pos_e, pos_i])
    d = np.abs(pos_e[:, None] - pos_all[None, :])
    d = np.minimum(d, 1000 - d)
    # expected E in-degree per post cell: 0.8 * sqrt(2 pi) sigma (sum of the Gaussian profile)
    expected = 0.8 * np.sqrt(2 * np.pi) * sigma
    assert abs(conn.mask.sum(0).mean() - expected) < 0.1 * expected
    assert conn.mask[d > 5 * sigma].sum() == 0  # p < 4e-6 there
    assert conn.mask[d < 0.5 * sigma].mean() > 0.8


def test_dense_has_no_mask():
    conn = make_connectivity("dense", "I", 32, 8, np.random.default_rng(0))
    assert conn.mask is None and conn.density == 1.0


def test_tau_a_range():
    tau = draw_tau_a(1000.0, 5000, np.random.default_rng(0))
    assert tau.min() >= 500 and tau.max() <= 1500
    assert abs(tau.mean() - 1000) < 20


@pytest.mark.parametrize("conn_method", ["dense", "rand", "gaussian"])
def test_dale_signs(conn_method):
    net = _net(conn_method, conn_prob=0.3)
    signed = net.recurrent_matrix()
    assert (signed[:net.n_exc] >= 0).all() and (signed[net.n_exc:] <= 0).all()
    assert (signed[:net.n_exc] > 0).any() and (signed[net.n_exc:] < 0).any()
    # a step that drives stored weights negative is reflected back (Dale's law)
    w = net.w_e.weight.value["weight"]
    net.w_e.weight.value = {"weight": w - 2 * w.max()}
    net.project_weights()
    np.testing.assert_allclose(np.asarray(net.w_e.weight.value["weight"]),
                               np.abs(np.asarray(w - 2 * w.max())))
    assert (net.recurrent_matrix()[:net.n_exc] >= 0).all()


def test_csr_event_driven_equals_masked_dense():
    xs = _inputs()
    out_csr = _run(_net("rand", "csr", conn_prob=0.3), xs)
    out_mask = _run(_net("rand", "masked", conn_prob=0.3), xs)
    assert np.abs(out_csr).max() > 0
    np.testing.assert_allclose(out_csr, out_mask, rtol=1e-4, atol=1e-5)


def test_csr_bptt_gradient_equals_masked_dense():
    xs = _inputs(T=40)

    def grads(layout):
        net = _net("rand", layout, conn_prob=0.3)
        ws = net.weight_states()

        def loss():
            brainstate.nn.reset_all_states(net)
            return (brainstate.transform.for_loop(net, xs)[-10:] ** 2).mean()

        with brainstate.environ.context(dt=1.0):
            g = brainstate.transform.grad(loss, ws)()
        return net, {k: np.asarray(v["weight"]) for k, v in g.items()}

    net_c, g_c = grads("csr")
    net_m, g_m = grads("masked")
    mask = net_m.conn_e.mask
    np.testing.assert_allclose(g_c["w_e"], g_m["w_e"][mask], rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(g_c["w_in"], g_m["w_in"], rtol=1e-3, atol=1e-7)
    assert np.abs(g_c["w_e"]).max() > 0


def test_same_seed_same_network_other_seed_differs():
    a, b, c = _net("rand", seed=3), _net("rand", seed=3), _net("rand", seed=4)
    np.testing.assert_array_equal(a.recurrent_matrix(), b.recurrent_matrix())
    np.testing.assert_array_equal(a.tau_a, b.tau_a)
    assert not np.array_equal(a.recurrent_matrix(), c.recurrent_matrix())


def test_structure_round_trip_rebuilds_the_same_network():
    a = _net("gaussian", seed=5)
    b = ALIFNet(a.cfg, seed=99, layout="csr", structure=a.structure())
    np.testing.assert_array_equal(a.conn_e.mask, b.conn_e.mask)
    np.testing.assert_array_equal(a.tau_a, b.tau_a)


def test_a_connectivity_registered_with_one_entry_builds_a_network(monkeypatch):
    def same_population_only(pre, n_exc, n_inh, prob, sigma):
        p = np.zeros((n_exc if pre == "E" else n_inh, n_exc + n_inh))
        p[:, :n_exc] = 1.0 if pre == "E" else 0.0
        p[:, n_exc:] = 0.0 if pre == "E" else 1.0
        return p

    monkeypatch.setitem(CONNECTIVITIES, "segregated", same_population_only)
    net = _net("segregated")
    signed = np.asarray(net.recurrent_matrix())
    n_exc = net.n_exc
    assert (signed[:n_exc, n_exc:] == 0).all() and (signed[n_exc:, :n_exc] == 0).all()
    assert (signed[:n_exc, :n_exc] != 0).sum() == n_exc * (n_exc - 1)  # all but autapses
    assert np.isfinite(_run(net, _inputs())).all()
