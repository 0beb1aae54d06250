"""Conductance-based E/I spiking network (adaptive LIF, exponential COBA synapses, Dale's law).

The network of Wang et al. (2024, arXiv 2406.19708), section "task training": n_rec adaptive
integrate-and-fire neurons (80 % excitatory, 20 % inhibitory), three conductance projections
(input -> all, E -> all, I -> all) and a leaky rate readout. All quantities are unit-free:
voltages in units of the threshold, times in ms, conductances relative to the leak.

Weights are `brainstate.ParamState`s applied through braintrace's eligibility-trace-aware
products (`braintrace.matmul`, `braintrace.sparse_matmul`), so the same module trains by BPTT
(plain `brainstate.transform.grad` through a time loop) and online (braintrace's D-RTRL /
ES-D-RTRL).
Dale's law (`dale_project`, the one place it is decided): every projection stores its
conductances themselves, kept non-negative by reflection after each optimizer step, so the
sign of a neuron's effect comes from the reversal potential (E_EXC for E cells and the input,
E_INH for I cells). The product is a plain `x @ W` (no `weight_fn`), the form braintrace's
closed-form trace kernels accept (docs/NOTES.md, "Dale's law by projection").

Connectivity (`make_connectivity`) is drawn with NumPy from an explicit seed:
``dense`` (all-to-all), ``rand`` (fixed probability) and ``gaussian`` (distance-dependent on a
ring). Sparse connectivity is held either as a `brainevent.CSR` matrix (event-driven product,
trainable on its existing synapses) or as a dense matrix that is zero off a fixed 0/1 mask
(the layout D-RTRL can trace, docs/NOTES.md S4). `CONNECTIVITIES` is the one list of connectivities.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import numpy as np

import brainevent
import brainstate
import braintrace
import braintools
import jax
import jax.numpy as jnp

__all__ = [
    "E_EXC", "E_INH", "V_TH", "CONNECTIVITIES", "LAYOUTS", "Connectivity", "make_connectivity",
    "ring_positions", "Projection", "EINet", "ALIFNet", "GIFNet", "NetConfig", "NEURONS",
    "NeuronSpec", "build_net", "draw_tau_a", "init_weights", "kaiming_abs_weights",
    "BPTT_SURROGATE_WIDTH", "dale_project",
]

E_EXC = 3.0   # excitatory reversal potential, in units of the threshold
E_INH = -3.0  # inhibitory reversal potential
V_TH = 1.0    # spike threshold (soft reset subtracts it)
EXC_FRACTION = 0.8
# Half-width of the triangular surrogate derivative, in units of the threshold, that BPTT
# trains the adaptive-LIF network with (NeuronSpec.bptt_surrogate_width; the GIF network's is
# 0.4, docs/NOTES.md; EINet's own default stays 1.0, the value the online methods use). With width 1 every neuron whose V lies anywhere in (0, 2) passes
# gradient, i.e. almost every subthreshold cell of this conductance network; the BPTT
# Jacobian of the recurrent loop (z -> g -> V -> z) then has gain above 1 once training has
# grown the weights a little, and the recurrent/input gradients explode over the 2200-step
# trial (norm 0.01 at init, 3-16 at the best checkpoint, 1e3-1e11 after the accuracy drift,
# while the readout's stays ~0.1). Clipped to global norm 1, those exploding components swamp
# the update and the accuracy drifts down. Width 0.5 keeps the same weights' gradients at
# norm ~0.01-0.1. (The online methods' diagonal traces do not propagate through the
# recurrent loop, so they keep width 1.)
BPTT_SURROGATE_WIDTH = 0.5
LAYOUTS = ("dense", "masked", "csr")


# ----------------------------------------------------------------------------- connectivity
@dataclass
class Connectivity:
    """A fixed pre x post connection pattern. `mask is None` means all-to-all."""

    n_pre: int
    n_post: int
    mask: Optional[np.ndarray]  # bool (n_pre, n_post) or None

    @property
    def density(self) -> float:
        """Fraction of possible synapses that exist."""
        return 1.0 if self.mask is None else float(self.mask.mean())

    @property
    def n_syn(self) -> int:
        """Number of synapses."""
        return self.n_pre * self.n_post if self.mask is None else int(self.mask.sum())


def ring_positions(n_exc: int, n_inh: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions on a ring of circumference n_exc + n_inh (unit = mean neuron spacing).

    E and I cells are each spread evenly around the ring, so inhibition is local everywhere.
    """
    n = n_exc + n_inh
    pos_e = np.arange(n_exc) * (n / max(n_exc, 1))
    pos_i = (np.arange(n_inh) + 0.5) * (n / max(n_inh, 1))
    return pos_e, pos_i


def _ring_distance(pre: np.ndarray, post: np.ndarray, circumference: float) -> np.ndarray:
    d = np.abs(pre[:, None] - post[None, :])
    return np.minimum(d, circumference - d)


def _rand_probability(pre: str, n_exc: int, n_inh: int, prob: float, sigma: float) -> np.ndarray:
    """rand: every synapse exists with probability `prob`."""
    n_pre = n_exc if pre == "E" else n_inh
    return np.full((n_pre, n_exc + n_inh), prob)


def _gaussian_probability(pre: str, n_exc: int, n_inh: int, prob: float,
                          sigma: float) -> np.ndarray:
    """gaussian: p = exp(-d^2 / (2 sigma^2)) with d the ring distance in neuron spacings; the
    expected in-degree is about sqrt(2 pi) sigma."""
    pos_e, pos_i = ring_positions(n_exc, n_inh)
    pos_pre = pos_e if pre == "E" else pos_i
    return np.exp(-_ring_distance(pos_pre, np.concatenate([pos_e, pos_i]), n_exc + n_inh) ** 2
                  / (2.0 * sigma ** 2))


# The one list of connectivities: name -> connection probability (pre, n_exc, n_inh, prob,
# sigma) -> [n_pre, n_exc + n_inh], or None for all-to-all. Adding one is one function + entry.
CONNECTIVITIES: dict[str, Callable[..., np.ndarray] | None] = {
    "dense": None, "gaussian": _gaussian_probability, "rand": _rand_probability}


def make_connectivity(
    method: str, pre: str, n_exc: int, n_inh: int, rng: np.random.Generator,
    prob: float = 0.1, sigma: float = 20.0,
) -> Connectivity:
    """Connection pattern from population `pre` ('E' or 'I') to all n_exc + n_inh neurons,
    drawn from the probabilities of CONNECTIVITIES[method] (no autapses)."""
    if method not in CONNECTIVITIES:
        raise ValueError(f"unknown conn_method {method!r}; "
                         f"expected one of {tuple(CONNECTIVITIES)}")
    n = n_exc + n_inh
    n_pre = n_exc if pre == "E" else n_inh
    probability = CONNECTIVITIES[method]
    if probability is None:
        return Connectivity(n_pre, n, None)
    offset = 0 if pre == "E" else n_exc
    autapse = np.zeros((n_pre, n), dtype=bool)
    autapse[np.arange(n_pre), offset + np.arange(n_pre)] = True
    p = probability(pre, n_exc, n_inh, prob, sigma)
    mask = (rng.random((n_pre, n)) < p) & ~autapse
    return Connectivity(n_pre, n, mask)


def layout_and_connectivity(cfg: "NetConfig", layout: str, rng: np.random.Generator,
                            structure: Optional[Dict[str, np.ndarray]] = None
                            ) -> tuple[str, Connectivity, Connectivity]:
    """The recurrent layout ("auto": dense for dense nets, else CSR) and the E and I
    connectivity, drawn from `rng` (E first) or read from a saved `structure`."""
    if layout == "auto":
        layout = "dense" if cfg.conn_method == "dense" else "csr"
    n_exc, n_inh, n = cfg.n_exc, cfg.n_inh, cfg.n_rec
    if structure is not None:
        return (layout, Connectivity(n_exc, n, structure.get("mask_E")),
                Connectivity(n_inh, n, structure.get("mask_I")))
    return (layout, make_connectivity(cfg.conn_method, "E", n_exc, n_inh, rng, cfg.conn_prob,
                                      cfg.conn_sigma),
            make_connectivity(cfg.conn_method, "I", n_exc, n_inh, rng, cfg.conn_prob,
                              cfg.conn_sigma))


def init_weights(conn: Connectivity, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Non-negative initial weights |N(0, 1)| * scale / sqrt(mean in-degree), zero off-mask."""
    fan_in = max(conn.n_syn / conn.n_post, 1.0)
    w = np.abs(rng.standard_normal((conn.n_pre, conn.n_post))) * (scale / np.sqrt(fan_in))
    if conn.mask is not None:
        w = w * conn.mask
    return w.astype(np.float32)


# ----------------------------------------------------------------------------- projection
def dale_project(w: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
    """Dale's law as a projection: a weight stepped below zero is reflected, |w| (zero off
    `mask`); clipping at zero trained worse (docs/NOTES.md, "Reflect or clip at zero")."""
    w = jnp.abs(w)
    return w if mask is None else w * mask


class Projection(brainstate.nn.Module):
    """Non-negative weight matrix pre -> post, a `brainstate.ParamState` applied through
    braintrace's eligibility-trace-aware products.

    layout 'dense': y = x @ W; 'masked': y = x @ W with W zero off a fixed mask M (its
    gradient is masked too, `mask_gradient`); 'csr': W is the data of a brainevent CSR matrix.
    W holds the conductances themselves (`dale_project` keeps them non-negative), so the
    products carry no weight transform and braintrace's fast trace kernels apply. With
    `event_driven=True` and layout 'csr', the product uses `brainevent.BinaryArray` (spikes
    as events; BPTT only); braintrace's online algorithms need `event_driven=False` (an ETP
    primitive they can trace).
    """

    def __init__(self, weight: np.ndarray, conn: Connectivity, layout: str = "dense",
                 event_driven: bool = True):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if conn.mask is None and layout != "dense":
            layout = "dense"
        self.layout = layout
        self.event_driven = event_driven
        self.n_pre, self.n_post = conn.n_pre, conn.n_post
        self.mask = None
        if layout == "dense":
            stored = weight
        elif layout == "masked":
            self.mask = jnp.asarray(conn.mask, dtype=jnp.float32)
            stored = weight * conn.mask
        else:
            rows, cols = np.nonzero(conn.mask)  # row-major: CSR order
            indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=conn.n_pre))])
            stored = weight[rows, cols].astype(np.float32)
            self.csr = brainevent.CSR(
                (jnp.asarray(stored), jnp.asarray(cols, dtype=jnp.int32),
                 jnp.asarray(indptr, dtype=jnp.int32)),
                shape=(conn.n_pre, conn.n_post))
        self.weight = brainstate.ParamState({"weight": dale_project(jnp.asarray(stored))})

    def update(self, x: jax.Array) -> jax.Array:
        """Conductance increment caused by presynaptic activity `x` (..., n_pre)."""
        w = self.weight.value["weight"]
        if self.layout != "csr":
            return braintrace.matmul(x, w)
        if self.event_driven:
            return brainevent.BinaryArray(x) @ self.csr.with_data(w)
        return braintrace.sparse_matmul(x, w, sparse_mat=self.csr)

    def project(self) -> None:
        """Apply Dale's law to the stored weights (after an optimizer step)."""
        self.weight.value = {"weight": dale_project(self.weight.value["weight"], self.mask)}

    def mask_gradient(self, grad: jax.Array) -> jax.Array:
        """The gradient restricted to existing synapses (masked layout; others unchanged)."""
        return grad if self.mask is None else grad * self.mask

    def effective_weight(self) -> np.ndarray:
        """The dense (n_pre, n_post) matrix of effective (non-negative) weights."""
        w = np.asarray(self.weight.value["weight"])
        if self.layout != "csr":
            return w
        dense = np.zeros((self.n_pre, self.n_post), dtype=w.dtype)
        indptr = np.asarray(self.csr.indptr)
        rows = np.repeat(np.arange(self.n_pre), np.diff(indptr))
        dense[rows, np.asarray(self.csr.indices)] = w
        return dense

    def synapse_values(self, arr: Optional[np.ndarray] = None) -> np.ndarray:
        """Values of `arr` (default: the weights) at the existing synapses, 1-D, in row-major
        (CSR) order, whatever the layout; e.g. to compare gradients across layouts."""
        w = np.asarray(self.weight.value["weight"]) if arr is None else np.asarray(arr)
        if self.layout == "csr":
            return w
        if self.layout == "masked":
            return w[np.asarray(self.mask) > 0]
        return w.ravel()


def add_projections(net: brainstate.nn.Module, conn_e: Connectivity, conn_i: Connectivity,
                    init: Callable[[Connectivity, float, np.random.Generator], np.ndarray],
                    rng: np.random.Generator, layout: str, event_driven: bool) -> None:
    """Give `net` its input, E and I projections (weights from `init`, drawn in that order)
    and its readout weights N(0, 1/n_rec)."""
    cfg, n = net.cfg, net.cfg.n_rec
    net.conn_in = Connectivity(cfg.n_in, n, None)
    net.conn_e, net.conn_i = conn_e, conn_i
    w_in = init(net.conn_in, cfg.ff_scale, rng)
    w_e = init(conn_e, cfg.rec_scale, rng)
    w_i = init(conn_i, cfg.rec_scale * cfg.w_ei_ratio, rng)
    w_out = (rng.standard_normal((n, cfg.n_out)) / np.sqrt(n)).astype(np.float32)
    net.w_in = Projection(w_in, net.conn_in, "dense")
    net.w_e = Projection(w_e, conn_e, layout, event_driven)
    net.w_i = Projection(w_i, conn_i, layout, event_driven)
    net.w_out = brainstate.ParamState({"weight": jnp.asarray(w_out)})


def draw_tau_a(tau_a: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Adaptation time constants drawn uniformly in [0.5, 1.5] x tau_a (as the authors did)."""
    return rng.uniform(0.5 * tau_a, 1.5 * tau_a, size=n).astype(np.float32)


# ----------------------------------------------------------------------------- network
@dataclass
class NetConfig:
    """Hyper-parameters of the E/I network (times in ms)."""

    n_in: int = 100
    n_rec: int = 200
    n_out: int = 2
    dt: float = 1.0
    tau_neu: float = 100.0
    tau_syn: float = 10.0
    tau_a: float = 1000.0
    tau_out: float = 10.0
    beta: float = 1.0
    w_ei_ratio: float = 4.0
    ff_scale: float = 1.0
    rec_scale: float = 1.0
    conn_method: str = "dense"
    conn_prob: float = 0.1
    conn_sigma: float = 20.0
    # -- GIF neuron only (GIFNet; ignored by the ALIF network)
    tau_I2: float = 10000.0
    A2: float = 1.0
    tau_I1: float = 50.0
    A1: float = 0.01
    tau_th: float = 100.0
    Ath: float = 1.0

    @property
    def n_exc(self) -> int:
        return int(round(self.n_rec * EXC_FRACTION))

    @property
    def n_inh(self) -> int:
        return self.n_rec - self.n_exc


class EINet(brainstate.nn.Module):
    """Adaptive-LIF E/I network with COBA exponential synapses and a leaky rate readout.

    Per time step (forward Euler for V, exact decay for the linear variables):
        z     = H(V - V_th - beta a)                   spikes from the current state
        g_e  <- g_e exp(-dt/tau_syn) + x W_in + z_E W_EE       (all W >= 0)
        g_i  <- g_i exp(-dt/tau_syn) + z_I W_I
        V    <- V + dt/tau_neu (-V + g_e (E_exc - V) + g_i (E_inh - V)) - V_th z   (soft reset)
        a    <- a exp(-dt/tau_a) + (tau_neu / tau_a) z
        r    <- r exp(-dt/tau_out) + z' W_out         z' = spikes of the new state
    (ALIF threshold adaptation as in Bellec et al., Nat. Commun. 11:3625 (2020), eq. 22-23;
    COBA conductances as in the authors' BrainScale example.) `H` has a surrogate gradient:
    triangular, height 0.3, half-width `surrogate_width` (default 1; BPTT trains with
    BPTT_SURROGATE_WIDTH = 0.5, see there).
    Normalisation of a: tau_a da/dt = -a + tau_neu sum_k delta(t - t_k), so a sustained rate f
    gives a = f tau_neu (spikes per membrane time constant) whatever tau_a, and beta is the
    threshold increase per unit of it (beta 1, 10 Hz: the threshold doubles). With a += z
    instead, beta 1 and tau_a 1 s silence the network (about 1 Hz) and it learns slowly.
    """

    def __init__(self, cfg: NetConfig, seed: int, layout: str = "auto",
                 event_driven: bool = True, structure: Optional[Dict[str, np.ndarray]] = None,
                 surrogate_width: float = 1.0):
        super().__init__()
        self.cfg = cfg
        n_exc, n_inh, n = cfg.n_exc, cfg.n_inh, cfg.n_rec
        self.n_exc, self.n_inh = n_exc, n_inh
        rng = np.random.default_rng(seed)
        # One generator, fixed draw order: connectivity, tau_a, then weights.
        layout, conn_e, conn_i = layout_and_connectivity(cfg, layout, rng, structure)
        self.layout = layout
        if structure is None:
            tau_a = draw_tau_a(cfg.tau_a, n, rng)
        else:
            tau_a = np.asarray(structure["tau_a"], dtype=np.float32)
        self.tau_a = tau_a
        add_projections(self, conn_e, conn_i, init_weights, rng, layout, event_driven)

        self.syn_decay = float(np.exp(-cfg.dt / cfg.tau_syn))
        self.out_decay = float(np.exp(-cfg.dt / cfg.tau_out))
        self.a_decay = jnp.asarray(np.exp(-cfg.dt / tau_a), dtype=jnp.float32)
        self.a_jump = jnp.asarray(cfg.tau_neu / tau_a, dtype=jnp.float32)
        self.dt_tau = float(cfg.dt / cfg.tau_neu)
        # Triangular pseudo-derivative of height 0.3 (Bellec et al. 2018), half-width
        # `surrogate_width` (BPTT training uses BPTT_SURROGATE_WIDTH: see there why).
        self.spk_fun = braintools.surrogate.ReluGrad(alpha=0.3, width=surrogate_width)

    # ---------------------------------------------------------------- states
    def init_state(self, batch_size: Optional[int] = None, **kwargs) -> None:
        shape = (self.cfg.n_rec,) if batch_size is None else (batch_size, self.cfg.n_rec)
        out = (self.cfg.n_out,) if batch_size is None else (batch_size, self.cfg.n_out)
        self.V = brainstate.HiddenState(jnp.zeros(shape, jnp.float32))
        self.a = brainstate.HiddenState(jnp.zeros(shape, jnp.float32))
        self.g_e = brainstate.HiddenState(jnp.zeros(shape, jnp.float32))
        self.g_i = brainstate.HiddenState(jnp.zeros(shape, jnp.float32))
        self.r = brainstate.HiddenState(jnp.zeros(out, jnp.float32))

    def reset_state(self, batch_size: Optional[int] = None, **kwargs) -> None:
        for st in (self.V, self.a, self.g_e, self.g_i):
            st.value = jnp.zeros_like(st.value)
        self.r.value = jnp.zeros_like(self.r.value)

    # ---------------------------------------------------------------- dynamics
    def spike(self, V: jax.Array, a: jax.Array) -> jax.Array:
        """Surrogate-gradient spike of state (V, a)."""
        # Written through intermediates: brainscale 0.1.0 rejected one equation reading two
        # hidden states (docs/NOTES.md S6); kept for braintrace.
        return self.spk_fun((V - V_TH) - self.cfg.beta * a)

    def get_spike(self) -> jax.Array:
        """Spikes of the current state."""
        return self.spike(self.V.value, self.a.value)

    def update(self, x: jax.Array) -> jax.Array:
        """Advance one step with input spikes x (..., n_in); return the readout (..., n_out)."""
        V, a = self.V.value, self.a.value
        z = self.spike(V, a)
        z_e, z_i = z[..., :self.n_exc], z[..., self.n_exc:]
        x = jnp.asarray(x, dtype=jnp.float32)  # input spikes may arrive as bool (4x less memory)
        g_e = self.g_e.value * self.syn_decay + self.w_in(x) + self.w_e(z_e)
        g_i = self.g_i.value * self.syn_decay + self.w_i(z_i)
        current = g_e * (E_EXC - V) + g_i * (E_INH - V)
        V_new = V + self.dt_tau * (current - V) - V_TH * z
        a_new = a * self.a_decay + self.a_jump * z
        self.g_e.value, self.g_i.value = g_e, g_i
        self.V.value, self.a.value = V_new, a_new
        z_new = self.spike(V_new, a_new)
        r = self.r.value * self.out_decay + braintrace.matmul(z_new, self.w_out.value["weight"])
        self.r.value = r
        return r

    # ---------------------------------------------------------------- inspection
    def weight_states(self) -> Dict[str, brainstate.ParamState]:
        """Trainable weights by name (stable names used in checkpoints and figures)."""
        return {"w_in": self.w_in.weight, "w_e": self.w_e.weight, "w_i": self.w_i.weight,
                "w_out": self.w_out}

    def structure(self) -> Dict[str, np.ndarray]:
        """The fixed, non-trainable random structure (to save beside the weights)."""
        out = {"tau_a": np.asarray(self.tau_a)}
        if self.conn_e.mask is not None:
            out["mask_E"] = self.conn_e.mask
            out["mask_I"] = self.conn_i.mask
        return out

    def projections(self) -> Dict[str, Projection]:
        """The sign-constrained projections by weight name."""
        return {"w_in": self.w_in, "w_e": self.w_e, "w_i": self.w_i}

    def project_weights(self) -> None:
        """Apply Dale's law to every projection's stored weights (after an optimizer step)."""
        for proj in self.projections().values():
            proj.project()

    def mask_gradients(self, grads: Dict[str, Any]) -> Dict[str, Any]:
        """`grads` (name -> {'weight': g}) restricted to existing synapses."""
        projs = self.projections()
        return {k: {"weight": projs[k].mask_gradient(v["weight"])} if k in projs else v
                for k, v in grads.items()}

    def recurrent_matrix(self) -> np.ndarray:
        """Signed effective recurrent matrix (n_rec, n_rec): + rows for E, - rows for I."""
        return np.concatenate([self.w_e.effective_weight(), -self.w_i.effective_weight()], 0)


ALIFNet = EINet  # the adaptive-LIF network under its registry name

# GIF reversal potentials (threshold units), as in the authors' BrainScale COBA experiment
GIF_E_EXC = 5.0
GIF_E_INH = -10.0


def kaiming_abs_weights(conn: Connectivity, scale: float, rng: np.random.Generator) -> np.ndarray:
    """|N(0, scale / n_pre)| magnitudes (Kaiming-normal variance over the full fan-in, as the
    authors' KaimingNormal(scale)), zero off-mask; Dale's sign comes from the projection."""
    w = np.abs(rng.standard_normal((conn.n_pre, conn.n_post))) * np.sqrt(scale / conn.n_pre)
    if conn.mask is not None:
        w = w * conn.mask
    return w.astype(np.float32)


class GIFNet(EINet):
    """Generalised integrate-and-fire E/I network (the authors' BrainScale experiment
    ``ei_coba_net_decision_making``), COBA exponential synapses, membrane-potential readout.

    Per time step, with z the spikes of the current state and zs = stop_gradient(z) (no
    gradient through the reset and the spike-triggered jumps; the spikes sent to the
    projections keep theirs):
        g_e  <- g_e exp(-dt/tau_syn) + x W_in + z_E W_EE,  g_i <- g_i exp(-dt/tau_syn) + z_I W_I
        Vth' = Vth + Ath zs;  V' = V - Vth zs (soft reset);  I2' = I2 - A2 zs;  I1' = I1 + A1 zs
        I2 <- I2' exp(-dt/tau_I2);  I1 <- I1' exp(-dt/tau_I1)
        Vth <- 1 + (Vth' - 1) exp(-dt/tau_th)
        V  <- exponential-Euler step of tau_neu dV/dt = -V + g_e (E_exc - V) + g_i (E_inh - V)
              + I1 + I2, from V'
        m = standardize_over_neurons((V - sg(Vth)) / sg(Vth))
        r <- r exp(-dt/tau_out) + m W_out
    z = ReluGrad((V - sg(Vth)) / sg(Vth)) (triangular surrogate, height 0.3, half-width
    `surrogate_width`). E_exc 5, E_inh -10 (threshold units); V starts Uniform(0, 1) (drawn
    once from the seed per batch slot), Vth at 1, I1 = I2 = 0. The slow after-spike current I2
    (tau_I2: 10 s here, 2 s in the authors' runs) holds the cue memory over the delay, and the
    readout sees it through V, which gives the online traces a direct path (docs/NOTES.md). Input weights are drawn
    Kaiming-normal (variance ff_scale / n_in, magnitudes), recurrent ones with variance
    rec_scale / n_pre (x w_ei_ratio for I); the readout N(0, 1/n_rec).
    """

    E_EXC, E_INH = GIF_E_EXC, GIF_E_INH

    def __init__(self, cfg: NetConfig, seed: int, layout: str = "auto",
                 event_driven: bool = True, structure: Optional[Dict[str, np.ndarray]] = None,
                 surrogate_width: float = 1.0):
        brainstate.nn.Module.__init__(self)
        self.cfg, self.seed = cfg, seed
        self.n_exc, self.n_inh = cfg.n_exc, cfg.n_inh
        rng = np.random.default_rng(seed)
        # One generator, fixed draw order: connectivity, then weights.
        layout, conn_e, conn_i = layout_and_connectivity(cfg, layout, rng, structure)
        self.layout = layout
        self.tau_a = None
        add_projections(self, conn_e, conn_i, kaiming_abs_weights, rng, layout, event_driven)

        dt = cfg.dt
        self.syn_decay = float(np.exp(-dt / cfg.tau_syn))
        self.out_decay = float(np.exp(-dt / cfg.tau_out))
        self.I1_decay = float(np.exp(-dt / cfg.tau_I1))
        self.I2_decay = float(np.exp(-dt / cfg.tau_I2))
        self.th_decay = float(np.exp(-dt / cfg.tau_th))
        self.spk_fun = braintools.surrogate.ReluGrad(alpha=0.3, width=surrogate_width)

    # ---------------------------------------------------------------- states
    def _v0(self, shape: tuple) -> jax.Array:
        """Initial membrane potentials Uniform(0, 1), from the seed (same at every reset)."""
        rng = np.random.default_rng([self.seed, 1])
        return jnp.asarray(rng.uniform(0.0, 1.0, size=shape), dtype=jnp.float32)

    def init_state(self, batch_size: Optional[int] = None, **kwargs) -> None:
        shape = (self.cfg.n_rec,) if batch_size is None else (batch_size, self.cfg.n_rec)
        out = (self.cfg.n_out,) if batch_size is None else (batch_size, self.cfg.n_out)
        self.V = brainstate.HiddenState(self._v0(shape))
        # Driven by stop-gradient spikes only, so no weight reaches them by a gradient path:
        # short-term states, not hidden ones, keep them out of the eligibility traces.
        self.Vth = brainstate.ShortTermState(jnp.ones(shape, jnp.float32))
        self.I1 = brainstate.ShortTermState(jnp.zeros(shape, jnp.float32))
        self.I2 = brainstate.ShortTermState(jnp.zeros(shape, jnp.float32))
        self.g_e = brainstate.HiddenState(jnp.zeros(shape, jnp.float32))
        self.g_i = brainstate.HiddenState(jnp.zeros(shape, jnp.float32))
        self.r = brainstate.HiddenState(jnp.zeros(out, jnp.float32))

    def reset_state(self, batch_size: Optional[int] = None, **kwargs) -> None:
        self.V.value = self._v0(self.V.value.shape)
        self.Vth.value = jnp.ones_like(self.Vth.value)
        for st in (self.I1, self.I2, self.g_e, self.g_i, self.r):
            st.value = jnp.zeros_like(st.value)

    # ---------------------------------------------------------------- dynamics
    def spike(self, V: jax.Array, Vth: jax.Array) -> jax.Array:
        """Surrogate-gradient spike of state (V, Vth); the threshold carries no gradient."""
        th = jax.lax.stop_gradient(Vth)
        return self.spk_fun((V - th) / th)

    def get_spike(self) -> jax.Array:
        """Spikes of the current state."""
        return self.spike(self.V.value, self.Vth.value)

    def update(self, x: jax.Array) -> jax.Array:
        """Advance one step with input spikes x (..., n_in); return the readout (..., n_out)."""
        cfg = self.cfg
        V, Vth = self.V.value, self.Vth.value
        z = self.spike(V, Vth)
        zs = jax.lax.stop_gradient(z)
        z_e, z_i = z[..., :self.n_exc], z[..., self.n_exc:]
        x = jnp.asarray(x, dtype=jnp.float32)
        g_e = self.g_e.value * self.syn_decay + self.w_in(x) + self.w_e(z_e)
        g_i = self.g_i.value * self.syn_decay + self.w_i(z_i)
        V_r = V - Vth * zs
        Vth_r = Vth + cfg.Ath * zs
        I2 = (self.I2.value - cfg.A2 * zs) * self.I2_decay
        I1 = (self.I1.value + cfg.A1 * zs) * self.I1_decay
        Vth_new = V_TH + (Vth_r - V_TH) * self.th_decay
        # exponential Euler on the linearisation in V (exact for fixed g, I1, I2)
        drive = g_e * (self.E_EXC - V_r) + g_i * (self.E_INH - V_r) + I1 + I2
        rate = -(1.0 + g_e + g_i) / cfg.tau_neu
        V_new = V_r + jnp.expm1(rate * cfg.dt) / rate * (drive - V_r) / cfg.tau_neu
        self.g_e.value, self.g_i.value = g_e, g_i
        self.I1.value, self.I2.value = I1, I2
        self.V.value, self.Vth.value = V_new, Vth_new
        th = jax.lax.stop_gradient(Vth_new)
        mem = jax.nn.standardize((V_new - th) / th, axis=-1)
        r = self.r.value * self.out_decay + braintrace.matmul(mem, self.w_out.value["weight"])
        self.r.value = r
        return r

    def structure(self) -> Dict[str, np.ndarray]:
        """The fixed, non-trainable random structure (connectivity masks of sparse nets)."""
        if self.conn_e.mask is None:
            return {}
        return {"mask_E": self.conn_e.mask, "mask_I": self.conn_i.mask}


# ----------------------------------------------------------------------------- neurons
@dataclass(frozen=True)
class NeuronSpec:
    """A registered neuron model: its network class, the defaults of the settings whose
    default depends on the neuron, and the NetConfig fields it reads beyond the common ones."""

    net_class: type
    defaults: Dict[str, float]
    params: tuple
    summary: str
    bptt_surrogate_width: float = BPTT_SURROGATE_WIDTH  # half-width BPTT trains with


# The one list of neuron models (--neuron). Adding one: a network class with EINet's interface
# (weight_states, structure, project_weights, recurrent_matrix, get_spike, V) and one entry.
NEURONS: Dict[str, NeuronSpec] = {
    "gif": NeuronSpec(
        GIFNet,
        {"tau_neu": 200.0, "ff_scale": 4.0, "rec_scale": 2.0, "lr": 3e-3, "lr_decay": 0.9},
        ("tau_I2", "A2", "tau_I1", "A1", "tau_th", "Ath"),
        "generalised IF (after-spike currents, adaptive threshold), E 5 / I -10, "
        "standardised-membrane readout (the authors' BrainScale net; all methods learn)",
        0.4),
    "alif": NeuronSpec(
        ALIFNet,
        {"tau_neu": 100.0, "ff_scale": 1.0, "rec_scale": 1.0, "lr": 1e-3, "lr_decay": 1.0},
        ("tau_a", "beta"),
        "adaptive LIF, E 3 / I -3, spike readout (best for bptt; expsm_diag learns it "
        "backwards)"),
}


def build_net(neuron: str, cfg: NetConfig, seed: int, **kwargs: Any) -> EINet:
    """The network of the registered neuron model `neuron`."""
    if neuron not in NEURONS:
        raise ValueError(f"unknown neuron {neuron!r}; expected one of {tuple(NEURONS)}")
    return NEURONS[neuron].net_class(cfg, seed, **kwargs)
