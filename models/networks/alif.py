"""The adaptive-LIF E/I network (--neuron alif)."""
from __future__ import annotations

from typing import Dict, Optional

import brainstate
import jax
import jax.numpy as jnp
import numpy as np

from models.networks.base import V_TH, EINetwork

__all__ = ["ALIFNet", "draw_tau_a"]


def draw_tau_a(tau_a: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Adaptation time constants drawn uniformly in [0.5, 1.5] x tau_a (as the authors did)."""
    return rng.uniform(0.5 * tau_a, 1.5 * tau_a, size=n).astype(np.float32)


class ALIFNet(EINetwork):
    """Adaptive-LIF neurons, E 3 / I -3 (threshold units), spike readout.

    Per time step (forward Euler for V, exact decay for the linear variables):
        z     = H(V - V_th - beta a)                   spikes from the current state
        g_e  <- g_e exp(-dt/tau_syn) + x W_in + z_E W_EE       (all W >= 0)
        g_i  <- g_i exp(-dt/tau_syn) + z_I W_I
        V    <- V + dt/tau_neu (-V + g_e (E_exc - V) + g_i (E_inh - V)) - V_th z   (soft reset)
        a    <- a exp(-dt/tau_a) + (tau_neu / tau_a) z
        r    <- r exp(-dt/tau_out) + z' W_out         z' = spikes of the new state
    (ALIF threshold adaptation as in Bellec et al., Nat. Commun. 11:3625 (2020), eq. 22-23;
    COBA conductances as in the authors' BrainScale example.) tau_a is drawn per neuron in
    [0.5, 1.5] x tau_a. Normalisation of a: tau_a da/dt = -a + tau_neu sum_k delta(t - t_k),
    so a sustained rate f gives a = f tau_neu whatever tau_a, and beta is the threshold
    increase per unit of it (beta 1, 10 Hz: the threshold doubles). With cfg.inh_type
    fast_spiking the inhibitory cells have beta x cfg.inh_adapt_ratio (0 by default) and
    tau_neu x cfg.inh_tau_ratio.
    """

    structure_keys = ("tau_a",)

    def draw_structure(self, rng: np.random.Generator,
                       structure: Optional[Dict[str, np.ndarray]]) -> None:
        """tau_a per neuron, drawn after the connectivity (or read from `structure`)."""
        cfg = self.cfg
        self.tau_a = (draw_tau_a(cfg.tau_a, cfg.n_rec, rng) if structure is None
                      else np.asarray(structure["tau_a"], dtype=np.float32))
        self.a_decay = jnp.asarray(np.exp(-cfg.dt / self.tau_a), dtype=jnp.float32)
        self.a_jump = jnp.asarray(cfg.tau_neu / self.tau_a, dtype=jnp.float32)
        self.dt_tau = self.per_cell(cfg.dt / cfg.tau_neu,
                                    cfg.dt / (cfg.tau_neu * cfg.inh_tau_ratio))
        self.beta = self.per_cell(cfg.beta, cfg.beta * cfg.inh_adapt_ratio)

    def init_neuron_states(self, shape: tuple) -> None:
        self.a = brainstate.HiddenState(jnp.zeros(shape, jnp.float32))

    def reset_neuron_states(self) -> None:
        self.a.value = jnp.zeros_like(self.a.value)

    def spike(self, V: jax.Array, a: jax.Array) -> jax.Array:
        """Surrogate-gradient spike of state (V, a)."""
        return self.spk_fun((V - V_TH) - self.beta * a)

    def get_spike(self) -> jax.Array:
        return self.spike(self.V.value, self.a.value)

    def update(self, x: jax.Array) -> jax.Array:
        """Advance one step with input spikes x (..., n_in); return the readout (..., n_out)."""
        V, a = self.V.value, self.a.value
        z = self.spike(V, a)
        g_e, g_i = self.conductances(x, z)
        current = g_e * (self.E_EXC - V) + g_i * (self.E_INH - V)
        V_new = V + self.dt_tau * (current - V) - V_TH * z
        a_new = a * self.a_decay + self.a_jump * z
        self.V.value, self.a.value = V_new, a_new
        return self.readout(self.spike(V_new, a_new))
