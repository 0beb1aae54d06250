"""Learning rules: how the E/I network's weights learn.

A rule is an object with
  * `build_step(trainer, example_x, recall)`: a jitted `(xs, ys, recall, opt_state) ->
    (loss, recall-summed readout (B, n_out), new opt_state)` that runs one batch and applies
    the update (through `trainer.apply_gradients`); `recall` (T,) bool, the steps with loss,
    is given at build time too, so a rule may specialise on it;
  * `build_gradients(trainer, example_x, recall)`: a jitted `(xs, ys, recall) -> grads`
    giving the whole-trial gradient without changing the weights (to compare rules);
  * `surrogate_width_for(neuron)`, the spike surrogate's half-width the rule trains with;
  * `grad_clip`, its default global-norm clipping (`--grad_clip` overrides it);
  * `sparse_layout`, the (layout, event_driven) of sparse recurrent projections it needs;
  * `online`: False for rules that see the whole trial (they alone accept `--loss mean` and
    `--rate_reg`).
`trainer` offers `net`, `weights` (name -> ParamState), `config`, `params()` and
`apply_gradients(grads, opt_state)`. Adding a rule is one class and one entry:

    class MyRule(BPTT): ...
    RULES["my_rule"] = MyRule()          # utils.training.config.RULES
                                         # then: python task_training.py --method my_rule
"""
from __future__ import annotations

import abc
from typing import Any, Callable, Dict, List, Tuple

import brainstate
import braintrace
import jax
import jax.numpy as jnp
import numpy as np

from models.networks import NEURONS
from utils.training import trace_kernels
from utils.training.config import RULES
from utils.training.task import ce_per_step, recall_loss, recall_sum

__all__ = ["LearningRule", "target_hz", "target_per_step", "rate_term", "BPTT", "OnlineRule",
           "DRTRL", "ESDRTRL", "RULES", "online_rules",
           "loss_segments"]


class LearningRule(abc.ABC):
    """Interface of a learning rule (see the module docstring)."""

    online: bool = True
    surrogate_width: float = 1.0
    sparse_layout: Tuple[str, bool] = ("csr", False)
    grad_clip: float = 1.0  # default global-norm clipping of the update (0: none)

    def surrogate_width_for(self, neuron: str) -> float:
        """The spike surrogate's half-width this rule trains network `neuron` with."""
        return self.surrogate_width

    @abc.abstractmethod
    def build_step(self, trainer: Any, example_x: Any, recall: np.ndarray) -> Callable:
        """The jitted training step of one batch (trials whose loss steps are `recall`)."""

    @abc.abstractmethod
    def build_gradients(self, trainer: Any, example_x: Any, recall: np.ndarray) -> Callable:
        """The jitted whole-trial gradient, weights unchanged."""


def target_hz(config: Any, n_exc: int) -> np.ndarray:
    """(n_rec,) the target rate (Hz) of --rate_reg of each cell: its population's."""
    targets = config.population_targets()
    return np.where(np.arange(config.net.n_rec) < n_exc, targets["E"], targets["I"])


def target_per_step(config: Any, net: Any) -> np.ndarray:
    """(n_rec,) the target rate of --rate_reg of each cell, in spikes per step."""
    return (target_hz(config, net.n_exc) * config.net.dt / 1e3).astype(np.float32)


def rate_term(rate: Any, target: Any) -> Any:
    """The firing-rate regulariser mean_i ((rate_i - target_i) / target_i)^2 of per-cell rates
    over the trial (Bellec et al. 2020, Nat Commun 11:3625, Methods "firing rate
    regularization"; here with a target per population)."""
    return jnp.mean(((rate - target) / target) ** 2)


class BPTT(LearningRule):
    """Backpropagation through time: brainstate's grad through a for_loop over the trial.

    Trains with the neuron's narrow surrogate (NeuronSpec.bptt_surrogate_width; docs/NOTES.md
    says why) and, on sparse nets, with event-driven CSR products.
    """

    online = False
    sparse_layout = ("csr", True)
    grad_clip = 0.0  # Adam alone: clipping rescaled nearly every step (docs/NOTES.md)

    def surrogate_width_for(self, neuron: str) -> float:
        return NEURONS[neuron].bptt_surrogate_width

    def loss_fn(self, trainer: Any) -> Callable:
        """`(xs, ys, recall) -> (loss, readout (T, B, n_out))` of one trial batch."""
        net, cfg = trainer.net, trainer.config
        rate_reg, target = cfg.rate_reg, target_per_step(cfg, net)

        def run(x):
            out = net(x)
            return out, net.get_spike()

        def loss_fn(xs, ys, recall):
            brainstate.nn.reset_all_states(net)
            outs, spikes = brainstate.transform.for_loop(run, xs)
            loss = recall_loss(outs, ys, recall, cfg.loss)
            if rate_reg:
                loss = loss + rate_reg * rate_term(spikes.mean(axis=(0, 1)), target)
            return loss, outs

        return loss_fn

    def transform_gradients(self, grads: Dict[str, Any]) -> Dict[str, Any]:
        """Hook for variants: the gradients the optimizer receives (BPTT: unchanged)."""
        return grads

    def build_step(self, trainer: Any, example_x: Any, recall: np.ndarray) -> Callable:
        loss_fn = self.loss_fn(trainer)

        def step(xs, ys, recall, opt_state):
            grads, loss, outs = brainstate.transform.grad(
                lambda: loss_fn(xs, ys, recall), trainer.weights, has_aux=True,
                return_value=True)()
            opt_state = trainer.apply_gradients(self.transform_gradients(grads), opt_state)
            return loss, recall_sum(outs, recall), opt_state

        return brainstate.transform.jit(step)

    def build_gradients(self, trainer: Any, example_x: Any, recall: np.ndarray) -> Callable:
        loss_fn = self.loss_fn(trainer)
        return brainstate.transform.jit(brainstate.transform.grad(
            lambda xs, ys, rc: loss_fn(xs, ys, rc)[0], trainer.weights))


def loss_segments(recall: np.ndarray) -> List[Tuple[int, int, bool]]:
    """The trial cut into runs of steps with and without loss: [(start, stop, has_loss)],
    in order, ending at the last step with loss (later steps cannot change the gradient)."""
    recall = np.asarray(recall, dtype=bool)
    if not recall.any():
        raise ValueError("the trial has no step with loss (recall mask is all False)")
    last = int(np.flatnonzero(recall)[-1]) + 1
    edges = [0] + [t for t in range(1, last) if recall[t] != recall[t - 1]] + [last]
    return [(a, b, bool(recall[a])) for a, b in zip(edges[:-1], edges[1:])]


class OnlineRule(LearningRule):
    """Online learning with a braintrace algorithm: at each step with loss, that step's
    gradient comes from the eligibility traces; per-step gradients are summed over the trial
    and applied once (or at every such step with `update_every_step`). Only the per-step loss
    is causal, so `--loss step`; nothing of length T is kept.

    Steps without loss need no gradient: there the traces are only rolled forward, `window`
    steps per call, which lets braintrace roll D-RTRL's traces in closed form (its chunked
    kernels) instead of step by step. Memory stays flat in the trial length (one window of
    Jacobians at a time)."""

    online = True
    window = 64

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

    @staticmethod
    def advance(algo: Any, xs: Any) -> None:
        """Advance network and traces over the steps `xs` (L, B, n_in) in one call.

        braintrace 0.2.6 counts a multi-step call as one step in `running_index`, the step
        count of ES-D-RTRL's warm-up correction 1 - decay^(n+1); it is set to the true count.
        """
        algo(braintrace.MultiStepData(xs))
        algo.running_index.value = algo.running_index.value + (xs.shape[0] - 1)

    def roll(self, algo: Any, xs: Any, start: int, stop: int) -> None:
        """Advance network and traces over steps start..stop of `xs` (T, B, n_in) without
        gradient work, reading each window in place (no copy of the input)."""
        n_win, rest = divmod(stop - start, self.window)
        if n_win:
            brainstate.transform.for_loop(
                lambda i: self.advance(algo, jax.lax.dynamic_slice_in_dim(
                    xs, start + i * self.window, self.window)), jnp.arange(n_win))
        if rest:
            self.advance(algo, xs[stop - rest:stop])

    def trial(self, trainer: Any, algo: Any, recall: np.ndarray, on_step: Callable) -> Callable:
        """`(xs, ys, carry) -> carry`: one trial from reset, rolling the steps without loss
        and calling `on_step(carry, x_t, ys) -> carry` at each step with loss."""
        net, B = trainer.net, trainer.config.batch_size
        segments = loss_segments(recall)

        def run(xs, ys, carry):
            brainstate.nn.reset_all_states(net)
            algo.reset_state(B)
            for start, stop, has_loss in segments:
                if not has_loss:
                    self.roll(algo, xs, start, stop)
                    continue
                carry, _ = brainstate.transform.scan(
                    lambda c, x: (on_step(c, x, ys), None), carry, xs[start:stop])
            return carry

        return run

    def step_gradient(self, trainer: Any, algo: Any, n_recall: int) -> Callable:
        """`(x_t, ys) -> (grads, loss_t, readout_t)` of one step with loss."""
        weights = trainer.weights

        def grad_t(x_t, ys):
            def loss_t():
                out = algo(x_t)
                return ce_per_step(out, ys).mean() / n_recall, out

            return brainstate.transform.grad(loss_t, weights, has_aux=True, return_value=True)()

        return grad_t

    def gradient_trial(self, trainer: Any, example_x: Any, recall: np.ndarray,
                       every_step: bool) -> Callable:
        """`(xs, ys, opt_state) -> (summed gradients, opt_state, loss, recall-summed readout)`
        of one trial; with `every_step` each step's gradient is applied at once instead."""
        n_out = trainer.net.cfg.n_out
        algo = self.algorithm(trainer, example_x)
        grad_t = self.step_gradient(trainer, algo, int(np.sum(recall)))

        def on_step(carry, x_t, ys):
            acc, opt_state, loss, summed = carry
            g, l, out = grad_t(x_t, ys)
            if every_step:
                opt_state = trainer.apply_gradients(g, opt_state)
            else:
                acc = jax.tree.map(jnp.add, acc, g)
            return acc, opt_state, loss + l, summed + out

        run = self.trial(trainer, algo, recall, on_step)

        def gradients(xs, ys, opt_state):
            zeros = jax.tree.map(jnp.zeros_like, trainer.params())
            return run(xs, ys, (zeros, opt_state, jnp.zeros(()),
                                jnp.zeros((ys.shape[0], n_out))))

        return gradients

    def build_step(self, trainer: Any, example_x: Any, recall: np.ndarray) -> Callable:
        every_step = trainer.config.update_every_step
        run = self.gradient_trial(trainer, example_x, recall, every_step)

        def step(xs, ys, _recall, opt_state):
            grads, opt_state, loss, summed = run(xs, ys, opt_state)
            if not every_step:
                opt_state = trainer.apply_gradients(grads, opt_state)
            return loss, summed, opt_state

        return brainstate.transform.jit(step)

    def build_gradients(self, trainer: Any, example_x: Any, recall: np.ndarray) -> Callable:
        run = self.gradient_trial(trainer, example_x, recall, every_step=False)
        return brainstate.transform.jit(lambda xs, ys, _recall: run(xs, ys, None)[0])


class DRTRL(OnlineRule):
    """D-RTRL: braintrace's `ParamDimVjpAlgorithm` (one trace per weight and batch element).

    braintrace cannot trace a batched CSR product here (docs/NOTES.md S4), so sparse nets
    use a dense matrix that is zero off a fixed mask (the gradient masked too): same
    synapses, same gradients. Registers the fused trace kernel (trace_kernels) first.
    """

    sparse_layout = ("masked", False)

    def make_algorithm(self, net: Any, config: Any) -> Any:
        trace_kernels.install()
        return braintrace.ParamDimVjpAlgorithm(net)


class ESDRTRL(OnlineRule):
    """ES-D-RTRL: braintrace's `IODimVjpAlgorithm` with trace decay `config.etrace_decay`
    (exponential smoothing of input and hidden-dimension traces); CSR products on sparse nets."""

    sparse_layout = ("csr", False)

    def make_algorithm(self, net: Any, config: Any) -> Any:
        if not 0.0 < config.etrace_decay < 1.0:
            raise ValueError(f"etrace_decay must be in (0, 1), got {config.etrace_decay}")
        return braintrace.IODimVjpAlgorithm(net, float(config.etrace_decay))


# The registered instances (utils.training.config.RULES names them).
bptt, diag, expsm_diag = BPTT(), DRTRL(), ESDRTRL()


def online_rules() -> Tuple[str, ...]:
    """Names of the registered rules that learn online."""
    return tuple(name for name, rule in RULES.items() if rule.online)
