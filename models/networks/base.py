"""What every E/I network shares: connectivity, the input, E and I projections under Dale's
law, the readout, the conductance update and the states common to all neuron models.

A neuron model subclasses `EINetwork` and supplies `update(x)` and `get_spike()` (the spikes
of the current state), and where it differs its reversal potentials, weight initialisation
and own states (see models/networks/alif.py, gif.py). All
quantities are unit-free: voltages in units of the threshold, times in ms, conductances
relative to the leak.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import brainstate
import braintools
import braintrace
import jax
import jax.numpy as jnp
import numpy as np

from models.networks.anatomy import initial_weights, make_connectome
from models.networks.connectivity import (Connectivity, WeightInit, draw_connectivity,
                                          half_normal_weights)
from models.networks.connectome import STRUCTURE_KEYS, Connectome
from models.networks.projection import Projection

__all__ = ["EINetwork", "V_TH"]

V_TH = 1.0  # spike threshold at rest (the unit of voltages)


class EINetwork(brainstate.nn.Module):
    """n_rec neurons (80 % excitatory, 20 % inhibitory), three conductance projections
    (input -> all, E -> all, I -> all, weights >= 0) and a leaky readout r (n_out).

    Construction draws, from one generator seeded by `seed` and in this order: the E and I
    connectivity, the neuron's own random structure (`draw_structure`), then the input, E, I
    and readout weights (`weight_init`; readout N(0, 1/n_rec)). A saved `structure` (masks and
    the neuron's arrays) replaces the first two draws. A network from anatomy
    (models.networks.anatomy) takes its cells, E and I counts, synapses, initial recurrent
    magnitudes, input cells and readout cells from its connectome (`self.connectome`, E cells
    first; None for the generic networks); the input weights reach the input cells only
    (background channels: every cell), the readout reads the readout cells only. `layout` ('auto', 'dense', 'masked',
    'csr') and `event_driven` choose how sparse projections are held (models.networks.
    projection); spikes pass a triangular surrogate gradient of height 0.3 and half-width
    `surrogate_width` (Bellec et al. 2018).
    """

    E_EXC: float = 3.0                                # excitatory reversal potential
    E_INH: float = -3.0                               # inhibitory reversal potential
    weight_init: WeightInit = staticmethod(half_normal_weights)
    structure_keys: tuple = ()                        # the neuron's own saved random arrays
    readout_mask: Optional[jax.Array] = None           # 1 for readout cells (connectomes)

    def __init__(self, cfg: Any, seed: int, layout: str = "auto", event_driven: bool = True,
                 structure: Optional[Dict[str, np.ndarray]] = None,
                 surrogate_width: float = 1.0):
        super().__init__()
        self.cfg, self.seed = cfg, seed
        if structure is not None:
            self.check_structure(structure)
        rng = np.random.default_rng(seed)
        saved = structure if structure is not None and "cell_id" in structure else None
        self.connectome = make_connectome(cfg, seed, saved)
        conn = self.connectome
        self.n_exc, self.n_inh = (cfg.n_exc, cfg.n_inh) if conn is None else (conn.n_exc,
                                                                              conn.n_inh)
        self.layout, self.conn_e, self.conn_i = draw_connectivity(cfg, layout, rng, structure,
                                                                  conn)
        self.draw_structure(rng, structure)
        self._add_weights(rng, event_driven)
        self.syn_decay = float(np.exp(-cfg.dt / cfg.tau_syn))
        self.out_decay = float(np.exp(-cfg.dt / cfg.tau_out))
        self.spk_fun = braintools.surrogate.ReluGrad(alpha=0.3, width=surrogate_width)

    # ---------------------------------------------------------------- construction
    @classmethod
    def check_structure(cls, structure: Dict[str, np.ndarray]) -> None:
        """ValueError unless a saved structure holds exactly this neuron's own arrays."""
        own = set(structure) - {"mask_E", "mask_I"} - set(STRUCTURE_KEYS)
        if own != set(cls.structure_keys):
            raise ValueError("the checkpoint's network was made with another neuron model")

    def draw_structure(self, rng: np.random.Generator,
                       structure: Optional[Dict[str, np.ndarray]]) -> None:
        """Draw (or read from `structure`) the neuron's own fixed random arrays."""

    def per_cell(self, value: float, fast_spiking: float) -> jax.Array:
        """(n_rec,) float32: `value` for every cell, except `fast_spiking` for the inhibitory
        cells (the last n_inh) when cfg.inh_type is fast_spiking."""
        fs = self.cfg.inh_type == "fast_spiking"
        inh = np.arange(self.cfg.n_rec) >= self.n_exc
        return jnp.asarray(np.where(inh & fs, fast_spiking, value), dtype=jnp.float32)

    def _add_weights(self, rng: np.random.Generator, event_driven: bool) -> None:
        cfg, n, conn = self.cfg, self.cfg.n_rec, self.connectome
        init = type(self).weight_init
        if conn is None:
            self.conn_in = Connectivity(cfg.n_in, n, None)
            w_in = init(self.conn_in, cfg.ff_scale, rng)
            w_e = init(self.conn_e, cfg.rec_scale, rng)
            w_i = init(self.conn_i, cfg.rec_scale * cfg.w_ei_ratio, rng)
            w_out = (rng.standard_normal((n, cfg.n_out)) / np.sqrt(n)).astype(np.float32)
        else:
            self.conn_in = Connectivity(cfg.n_in, n, self._input_mask(conn))
            w_in = init(self.conn_in, cfg.ff_scale, rng)
            w_e, w_i = initial_weights(conn, cfg.rec_scale, cfg.w_ei_ratio)
            w_out = self._readout_weights(conn, rng)
        # input to some cells: a dense product with a fixed mask (a CSR product's backward
        # pass is slower than dense at the input's density)
        self.w_in = Projection(w_in, self.conn_in, "dense" if conn is None else "masked")
        self.w_e = Projection(w_e, self.conn_e, self.layout, event_driven)
        self.w_i = Projection(w_i, self.conn_i, self.layout, event_driven)
        self.w_out = brainstate.ParamState({"weight": jnp.asarray(w_out)})

    def _input_mask(self, conn: Connectome) -> np.ndarray:
        """(n_in, n) synapses of the input: the task's signal channels reach the input cells,
        its last n_background channels (background) every cell, as the external drive of
        Potjans and Diesmann's model reaches every population."""
        n_in, n_bg = self.cfg.n_in, self.cfg.n_background
        mask = np.repeat(conn.input[None], n_in, 0)
        mask[n_in - n_bg:] = True
        return mask

    def _readout_weights(self, conn: Connectome, rng: np.random.Generator) -> np.ndarray:
        """N(0, 1/n_readout) from the readout cells, zero from the others (which the readout
        mask silences, so their weights never change)."""
        read = conn.readout.astype(np.float32)
        self.readout_mask = jnp.asarray(read)
        w = rng.standard_normal((conn.n, self.cfg.n_out)) / np.sqrt(read.sum())
        return (w * read[:, None]).astype(np.float32)

    # ---------------------------------------------------------------- states
    def initial_potential(self, shape: tuple) -> jax.Array:
        """Membrane potentials at the start of every trial."""
        return jnp.zeros(shape, jnp.float32)

    def init_neuron_states(self, shape: tuple) -> None:
        """Create the neuron model's own states (shape: batch x n_rec)."""

    def reset_neuron_states(self) -> None:
        """Reset the neuron model's own states to their start-of-trial values."""

    def init_state(self, batch_size: Optional[int] = None, **kwargs: Any) -> None:
        """V, the neuron's own states, the conductances g_e, g_i and the readout r."""
        batch = () if batch_size is None else (batch_size,)
        shape = batch + (self.cfg.n_rec,)
        self.V = brainstate.HiddenState(self.initial_potential(shape))
        self.init_neuron_states(shape)
        self.g_e = brainstate.HiddenState(jnp.zeros(shape, jnp.float32))
        self.g_i = brainstate.HiddenState(jnp.zeros(shape, jnp.float32))
        self.r = brainstate.HiddenState(jnp.zeros(batch + (self.cfg.n_out,), jnp.float32))

    def reset_state(self, batch_size: Optional[int] = None, **kwargs: Any) -> None:
        """Every state back to its start-of-trial value."""
        self.V.value = self.initial_potential(self.V.value.shape)
        self.reset_neuron_states()
        for st in (self.g_e, self.g_i, self.r):
            st.value = jnp.zeros_like(st.value)

    # ---------------------------------------------------------------- dynamics
    def conductances(self, x: jax.Array, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        """g_e, g_i after one step: exact decay, then the increments of input spikes x and
        recurrent spikes z (COBA exponential synapses)."""
        x = jnp.asarray(x, dtype=jnp.float32)  # input spikes may arrive as bool
        g_e = self.g_e.value * self.syn_decay + self.w_in(x) + self.w_e(z[..., :self.n_exc])
        g_i = self.g_i.value * self.syn_decay + self.w_i(z[..., self.n_exc:])
        self.g_e.value, self.g_i.value = g_e, g_i
        return g_e, g_i

    def readout(self, signal: jax.Array) -> jax.Array:
        """r <- r exp(-dt/tau_out) + signal W_out (signal of the readout cells only);
        returns r."""
        if self.readout_mask is not None:
            signal = signal * self.readout_mask
        r = self.r.value * self.out_decay + braintrace.matmul(signal, self.w_out.value["weight"])
        self.r.value = r
        return r

    # ---------------------------------------------------------------- weights
    def weight_states(self) -> Dict[str, brainstate.ParamState]:
        """Trainable weights by name (stable names used in checkpoints and figures)."""
        return {"w_in": self.w_in.weight, "w_e": self.w_e.weight, "w_i": self.w_i.weight,
                "w_out": self.w_out}

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

    def structure(self) -> Dict[str, np.ndarray]:
        """The fixed, non-trainable random structure (to save beside the weights): the
        connectivity masks of sparse networks and the neuron's own arrays."""
        out = {k: np.asarray(getattr(self, k)) for k in self.structure_keys}
        if self.connectome is not None:
            out.update(self.connectome.to_arrays())
        if self.conn_e.mask is not None:
            out["mask_E"], out["mask_I"] = self.conn_e.mask, self.conn_i.mask
        return out

    def recurrent_matrix(self) -> np.ndarray:
        """Signed effective recurrent matrix (n_rec, n_rec): + rows for E, - rows for I."""
        return np.concatenate([self.w_e.effective_weight(), -self.w_i.effective_weight()], 0)
