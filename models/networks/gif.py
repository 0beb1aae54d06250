"""The generalised integrate-and-fire E/I network (--neuron gif, the default)."""
from __future__ import annotations

import brainstate
import jax
import jax.numpy as jnp
import numpy as np

from models.networks.base import V_TH, EINetwork
from models.networks.connectivity import kaiming_abs_weights

__all__ = ["GIFNet"]


class GIFNet(EINetwork):
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
    z = ReluGrad((V - sg(Vth)) / sg(Vth)). E_exc 5, E_inh -10 (threshold units, as the
    authors' COBA experiment); V starts Uniform(0, 1) (drawn once from the seed per batch
    slot), Vth at 1, I1 = I2 = 0. The slow after-spike current I2 holds the cue memory over
    the delay, and the readout sees it through V, which gives the online traces a direct path
    (docs/NOTES.md). With cfg.inh_type fast_spiking the inhibitory cells have A2 and Ath x
    cfg.inh_adapt_ratio (0 by default) and tau_neu x cfg.inh_tau_ratio. Weights are drawn Kaiming-normal (variance ff_scale / n_in, rec_scale /
    n_pre, x w_ei_ratio for I), as magnitudes.
    """

    E_EXC, E_INH = 5.0, -10.0
    weight_init = staticmethod(kaiming_abs_weights)

    def draw_structure(self, rng, structure) -> None:
        """No random structure of its own; the decay factors of its currents and the
        per-cell parameters (fast-spiking inhibitory cells: cfg.inh_type)."""
        cfg = self.cfg
        self.tau_neu = self.per_cell(cfg.tau_neu, cfg.tau_neu * cfg.inh_tau_ratio)
        self.A2 = self.per_cell(cfg.A2, cfg.A2 * cfg.inh_adapt_ratio)
        self.Ath = self.per_cell(cfg.Ath, cfg.Ath * cfg.inh_adapt_ratio)
        self.I1_decay = float(np.exp(-cfg.dt / cfg.tau_I1))
        self.I2_decay = float(np.exp(-cfg.dt / cfg.tau_I2))
        self.th_decay = float(np.exp(-cfg.dt / cfg.tau_th))

    def initial_potential(self, shape: tuple) -> jax.Array:
        """Uniform(0, 1), from the seed (the same at every reset)."""
        rng = np.random.default_rng([self.seed, 1])
        return jnp.asarray(rng.uniform(0.0, 1.0, size=shape), dtype=jnp.float32)

    def init_neuron_states(self, shape: tuple) -> None:
        # Driven by stop-gradient spikes only, so no weight reaches them by a gradient path:
        # short-term states, not hidden ones, keep them out of the eligibility traces.
        self.Vth = brainstate.ShortTermState(jnp.ones(shape, jnp.float32))
        self.I1 = brainstate.ShortTermState(jnp.zeros(shape, jnp.float32))
        self.I2 = brainstate.ShortTermState(jnp.zeros(shape, jnp.float32))

    def reset_neuron_states(self) -> None:
        self.Vth.value = jnp.ones_like(self.Vth.value)
        self.I1.value = jnp.zeros_like(self.I1.value)
        self.I2.value = jnp.zeros_like(self.I2.value)

    def spike(self, V: jax.Array, Vth: jax.Array) -> jax.Array:
        """Surrogate-gradient spike of state (V, Vth); the threshold carries no gradient."""
        th = jax.lax.stop_gradient(Vth)
        return self.spk_fun((V - th) / th)

    def get_spike(self) -> jax.Array:
        return self.spike(self.V.value, self.Vth.value)

    def update(self, x: jax.Array) -> jax.Array:
        """Advance one step with input spikes x (..., n_in); return the readout (..., n_out)."""
        cfg = self.cfg
        V, Vth = self.V.value, self.Vth.value
        z = self.spike(V, Vth)
        zs = jax.lax.stop_gradient(z)
        g_e, g_i = self.conductances(x, z)
        V_r = V - Vth * zs
        Vth_r = Vth + self.Ath * zs
        I2 = (self.I2.value - self.A2 * zs) * self.I2_decay
        I1 = (self.I1.value + cfg.A1 * zs) * self.I1_decay
        Vth_new = V_TH + (Vth_r - V_TH) * self.th_decay
        # exponential Euler on the linearisation in V (exact for fixed g, I1, I2)
        drive = g_e * (self.E_EXC - V_r) + g_i * (self.E_INH - V_r) + I1 + I2
        rate = -(1.0 + g_e + g_i) / self.tau_neu
        V_new = V_r + jnp.expm1(rate * cfg.dt) / rate * (drive - V_r) / self.tau_neu
        self.I1.value, self.I2.value = I1, I2
        self.V.value, self.Vth.value = V_new, Vth_new
        th = jax.lax.stop_gradient(Vth_new)
        return self.readout(jax.nn.standardize((V_new - th) / th, axis=-1))
