"""Learning rules: the one registry (`RULES`) of how the E/I network's weights learn.

A rule is an object with
  * `build_step(trainer, example_x)`: a jitted `(xs, ys, recall, opt_state) -> (loss,
    recall-summed readout (B, n_out), new opt_state)` that runs one batch and applies the
    update (through `trainer.apply_gradients`);
  * `build_gradients(trainer, example_x)`: a jitted `(xs, ys, recall) -> grads` giving the
    whole-trial gradient without changing the weights (to compare rules);
  * `surrogate_width`, the spike surrogate's half-width the rule trains with;
  * `sparse_layout`, the (layout, event_driven) of sparse recurrent projections it needs;
  * `online`: False for rules that see the whole trial (they alone accept `--loss mean` and
    `--rate_reg`).
`trainer` offers `net`, `weights` (name -> ParamState), `config`, `params()` and
`apply_gradients(grads, opt_state)`. Adding a rule is one class and one entry:

    class MyRule(BPTT): ...
    RULES["my_rule"] = MyRule()          # then: python task_training.py --method my_rule
"""
from __future__ import annotations

import abc
from typing import Any, Callable, Dict, Tuple

import brainstate
import braintrace
import jax
import jax.numpy as jnp

from models.network import BPTT_SURROGATE_WIDTH
from utils.training.task import ce_per_step, recall_loss, recall_sum

__all__ = ["LearningRule", "BPTT", "OnlineRule", "DRTRL", "ESDRTRL", "RULES", "online_rules"]


class LearningRule(abc.ABC):
    """Interface of a learning rule (see the module docstring)."""

    online: bool = True
    surrogate_width: float = 1.0
    sparse_layout: Tuple[str, bool] = ("csr", False)

    @abc.abstractmethod
    def build_step(self, trainer: Any, example_x: Any) -> Callable:
        """The jitted training step of one batch."""

    @abc.abstractmethod
    def build_gradients(self, trainer: Any, example_x: Any) -> Callable:
        """The jitted whole-trial gradient, weights unchanged."""


class BPTT(LearningRule):
    """Backpropagation through time: brainstate's grad through a for_loop over the trial.

    Trains with the narrow surrogate BPTT_SURROGATE_WIDTH (models/network.py says why) and,
    on sparse nets, with event-driven CSR products.
    """

    online = False
    surrogate_width = BPTT_SURROGATE_WIDTH
    sparse_layout = ("csr", True)

    def loss_fn(self, trainer: Any) -> Callable:
        """`(xs, ys, recall) -> (loss, readout (T, B, n_out))` of one trial batch."""
        net, cfg = trainer.net, trainer.config
        rate_reg, target = cfg.rate_reg, cfg.target_rate * cfg.dt / 1e3  # spikes per step

        def run(x):
            out = net(x)
            return out, net.get_spike()

        def loss_fn(xs, ys, recall):
            brainstate.nn.reset_all_states(net)
            outs, spikes = brainstate.transform.for_loop(run, xs)
            loss = recall_loss(outs, ys, recall, cfg.loss)
            if rate_reg:
                # firing-rate regularisation towards a target rate, per neuron over the
                # trial (Bellec et al. 2020, Methods "firing rate regularization")
                rate = spikes.mean(axis=(0, 1))
                loss = loss + rate_reg * jnp.mean(((rate - target) / target) ** 2)
            return loss, outs

        return loss_fn

    def transform_gradients(self, grads: Dict[str, Any]) -> Dict[str, Any]:
        """Hook for variants: the gradients the optimizer receives (BPTT: unchanged)."""
        return grads

    def build_step(self, trainer: Any, example_x: Any) -> Callable:
        loss_fn = self.loss_fn(trainer)

        def step(xs, ys, recall, opt_state):
            grads, loss, outs = brainstate.transform.grad(
                lambda: loss_fn(xs, ys, recall), trainer.weights, has_aux=True,
                return_value=True)()
            opt_state = trainer.apply_gradients(self.transform_gradients(grads), opt_state)
            return loss, recall_sum(outs, recall), opt_state

        return brainstate.transform.jit(step)

    def build_gradients(self, trainer: Any, example_x: Any) -> Callable:
        net = trainer.net

        def loss_fn(xs, ys, rc):
            brainstate.nn.reset_all_states(net)
            return recall_loss(brainstate.transform.for_loop(net, xs), ys, rc)

        return brainstate.transform.jit(brainstate.transform.grad(loss_fn, trainer.weights))


class OnlineRule(LearningRule):
    """Online learning with a braintrace algorithm: at each step the gradient of that step's
    loss comes from eligibility traces; per-step gradients are summed over the trial and
    applied once (or every step with `update_every_step`). Only the per-step loss is causal,
    so `--loss step`; nothing of length T is kept."""

    online = True

    @abc.abstractmethod
    def make_algorithm(self, net: Any, config: Any) -> Any:
        """The (uncompiled) braintrace algorithm for `net`."""

    def algorithm(self, trainer: Any, example_x: Any) -> Any:
        """The trainer's compiled algorithm, built once and shared by step and gradients."""
        if trainer.online_algorithm is None:
            algo = self.make_algorithm(trainer.net, trainer.config)
            algo.compile_graph(example_x)
            trainer.online_algorithm = algo
        return trainer.online_algorithm

    def build_step(self, trainer: Any, example_x: Any) -> Callable:
        net, weights, B = trainer.net, trainer.weights, trainer.config.batch_size
        every_step = trainer.config.update_every_step
        n_out = net.cfg.n_out
        algo = self.algorithm(trainer, example_x)

        def step(xs, ys, recall, opt_state):
            brainstate.nn.reset_all_states(net)
            algo.reset_state(B)
            n_recall = recall.sum()

            # The carry holds the summed gradient, the loss and the recall-period readout sum.
            def one_step(carry, inp):
                acc, opt_state, loss, summed = carry
                x_t, m_t = inp

                def loss_t():
                    out = algo(x_t)
                    return m_t * ce_per_step(out, ys).mean() / n_recall, out

                g, l, out = brainstate.transform.grad(
                    loss_t, weights, has_aux=True, return_value=True)()
                if every_step:
                    opt_state = trainer.apply_gradients(g, opt_state)
                else:
                    acc = jax.tree.map(jnp.add, acc, g)
                return (acc, opt_state, loss + l, summed + m_t * out), None

            zeros = jax.tree.map(jnp.zeros_like, trainer.params())
            init = (zeros, opt_state, jnp.zeros(()), jnp.zeros((B, n_out)))
            (grads, opt_state, loss, summed), _ = brainstate.transform.scan(
                one_step, init, (xs, recall.astype(jnp.float32)))
            if not every_step:
                opt_state = trainer.apply_gradients(grads, opt_state)
            return loss, summed, opt_state

        return brainstate.transform.jit(step)

    def build_gradients(self, trainer: Any, example_x: Any) -> Callable:
        net, weights, B = trainer.net, trainer.weights, trainer.config.batch_size
        algo = self.algorithm(trainer, example_x)

        def run(xs, ys, rc):
            brainstate.nn.reset_all_states(net)
            algo.reset_state(B)
            n_recall = rc.sum()

            def one_step(acc, inp):
                x_t, m_t = inp

                def loss_t():
                    return m_t * ce_per_step(algo(x_t), ys).mean() / n_recall

                g = brainstate.transform.grad(loss_t, weights)()
                return jax.tree.map(jnp.add, acc, g), None

            zeros = jax.tree.map(jnp.zeros_like, trainer.params())
            return brainstate.transform.scan(one_step, zeros, (xs, rc.astype(jnp.float32)))[0]

        return brainstate.transform.jit(run)


class DRTRL(OnlineRule):
    """D-RTRL: braintrace's `ParamDimVjpAlgorithm` (one trace per weight and batch element).

    braintrace cannot trace a batched CSR product here (docs/NOTES.md S4), so sparse nets
    use a dense matrix with a fixed mask inside weight_fn: same synapses, same gradients.
    """

    sparse_layout = ("masked", False)

    def make_algorithm(self, net: Any, config: Any) -> Any:
        return braintrace.ParamDimVjpAlgorithm(net)


class ESDRTRL(OnlineRule):
    """ES-D-RTRL: braintrace's `IODimVjpAlgorithm` with trace decay `config.etrace_decay`
    (exponential smoothing of input and hidden-dimension traces); CSR products on sparse nets."""

    sparse_layout = ("csr", False)

    def make_algorithm(self, net: Any, config: Any) -> Any:
        if not 0.0 < config.etrace_decay < 1.0:
            raise ValueError(f"etrace_decay must be in (0, 1), got {config.etrace_decay}")
        return braintrace.IODimVjpAlgorithm(net, float(config.etrace_decay))


RULES: Dict[str, LearningRule] = {
    "bptt": BPTT(),
    "diag": DRTRL(),
    "expsm_diag": ESDRTRL(),
}


def online_rules() -> Tuple[str, ...]:
    """Names of the registered rules that learn online."""
    return tuple(name for name, rule in RULES.items() if rule.online)
