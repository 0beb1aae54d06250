"""Task data, loss, the BPTT / online training steps, evaluation and checkpoints for the E/I net.

Figures live in utils/training_figures.py. Nothing here runs at import.
"""
from __future__ import annotations

import io
import json
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from utils.run import UserError, atomic_write_bytes

__all__ = [
    "TaskData", "get_task", "sample_trials", "net_config_from_args", "layout_for",
    "Trainer", "save_checkpoint", "load_checkpoint", "CHECKPOINT_KEYS",
]

NET_KEYS = ("n_rec", "dt", "tau_neu", "tau_syn", "tau_a", "tau_out", "beta", "w_ei_ratio",
            "ff_scale", "rec_scale", "conn_method", "conn_prob", "conn_sigma")
CHECKPOINT_KEYS = ("n_rec", "conn_method")  # a checkpoint must match these to be loaded


# ----------------------------------------------------------------------------- task data
@lru_cache(maxsize=None)
def get_task(dt: float, t_delay: float, num_cue: int) -> Any:
    """The EvidenceAccumulation task, one instance per (dt, t_delay, num_cue) per process.

    brainpy-datasets 0.0.0.7 shares its default Feature objects between instances, so a second
    default instance shifts the channels of every instance (ECOSYSTEM.md item 11). Each
    instance here gets its own fresh Feature objects (same values as the defaults), and
    instances are cached; tests/test_task_training.py checks the channel layout after
    creating a second instance.
    """
    from brainpy_datasets.cognitive import EvidenceAccumulation
    from brainpy_datasets._src.cognitive.base import Feature

    return EvidenceAccumulation(
        dt=dt, t_delay=t_delay, num_cue=num_cue, mode="spiking",
        ft_left=Feature(1, 25, 40.), ft_right=Feature(1, 25, 40.),
        ft_recall=Feature(1, 25, 40.), ft_noise=Feature(1, 25, 10.))


class TaskData:
    """A batch of trials, time-major: X (T, n, 100) bool spikes, y (n,) int32, recall (T,) bool."""

    def __init__(self, X: np.ndarray, y: np.ndarray, recall: np.ndarray):
        self.X, self.y, self.recall = X, y, recall

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def take(self, idx: np.ndarray) -> "TaskData":
        """Trials `idx` (may repeat, for padding)."""
        return TaskData(self.X[:, idx], self.y[idx], self.recall)


def trial_seed(seed: int, stream: int, index: int) -> int:
    """Independent 32-bit seed for (run seed, stream, index); streams: 0 train, 1 val, 2 test."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


def sample_trials(task: Any, n: int, seed: int) -> TaskData:
    """Draw n trials from `task` with a fresh RandomState(seed) (reproducible, independent)."""
    task.rng = np.random.RandomState(seed)
    xs, ys, periods = [], [], None
    for i in range(n):
        X, y, period = task.sample_a_trial(i)
        xs.append(np.asarray(X, dtype=bool))
        ys.append(int(y))
        periods = np.asarray(period)
    X = np.stack(xs, axis=1)
    recall = periods == periods.max()  # the last period is 'recall'
    return TaskData(X, np.asarray(ys, dtype=np.int32), recall)


# ----------------------------------------------------------------------------- network set-up
def net_config_from_args(args: Any) -> Any:
    """NetConfig from parsed arguments (or a config dict)."""
    from models.network import NetConfig

    get = (lambda k: args[k]) if isinstance(args, dict) else (lambda k: getattr(args, k))
    return NetConfig(**{k: get(k) for k in NET_KEYS})


def layout_for(method: str, conn_method: str) -> Tuple[str, bool]:
    """(layout, event_driven) of the recurrent projections for a training method.

    bptt: CSR with event-driven products for sparse nets. diag (D-RTRL): brainscale 0.1.0
    cannot trace a batched CSR op (ECOSYSTEM.md item 5), so sparse nets use a dense matrix
    with a fixed mask applied in weight_fn (item 4): same synapses, same gradients.
    expsm_diag (ES-D-RTRL): CSR through brainscale's SpMatMulOp (not event-driven).
    """
    if conn_method == "dense":
        return "dense", False
    if method == "bptt":
        return "csr", True
    if method == "diag":
        return "masked", False
    return "csr", False


# ----------------------------------------------------------------------------- loss
def ce_per_step(outs: Any, labels: Any) -> Any:
    """Softmax cross-entropy of readout `outs` (..., B, 2) against integer labels (B,)."""
    import jax
    import jax.numpy as jnp

    logp = jax.nn.log_softmax(outs, axis=-1)
    onehot = jax.nn.one_hot(labels, outs.shape[-1], dtype=outs.dtype)
    return -(logp * onehot).sum(axis=-1)


def recall_loss(outs: Any, labels: Any, recall: Any, kind: str = "step") -> Any:
    """Cross-entropy during the recall period, averaged over the batch; outs (T, B, 2).

    kind 'step': mean over recall steps of the per-step cross-entropy (causal: usable online);
    'mean': cross-entropy of the readout averaged over the recall period (the quantity the
    accuracy is read from; needs the whole recall period, so BPTT only).
    """
    if kind == "mean":
        return ce_per_step(recall_sum(outs, recall) / recall.sum(), labels).mean()
    ce = ce_per_step(outs, labels).mean(axis=-1)  # (T,)
    return (ce * recall).sum() / recall.sum()


def recall_sum(outs: Any, recall: Any) -> Any:
    """Readout summed over the recall period: (T, B, 2) -> (B, 2)."""
    return (outs * recall[:, None, None]).sum(axis=0)


def recall_correct(outs: np.ndarray, labels: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """Per-trial correctness: argmax of the readout summed over the recall period."""
    summed = np.asarray(outs)[np.asarray(recall)].sum(axis=0)  # (B, 2)
    return np.argmax(summed, axis=-1) == np.asarray(labels)


def weight_penalty(params: Dict[str, Any], l1: float, l2: float) -> Any:
    """L1/L2 penalty on the effective (absolute) input and recurrent weights."""
    import jax.numpy as jnp

    total = 0.0
    for name in ("w_in", "w_e", "w_i"):
        w = jnp.abs(params[name]["weight"])
        if l1:
            total = total + l1 * w.sum()
        if l2:
            total = total + l2 * (w ** 2).sum()
    return total


# ----------------------------------------------------------------------------- trainer
class Trainer:
    """The network, its optimizer and jitted train / evaluate / simulate steps.

    method 'bptt' differentiates through the whole trial (brainstate for_loop + grad);
    'diag' and 'expsm_diag' learn online with brainscale: at each step the gradient comes from
    eligibility traces; per-step gradients are summed over the trial and applied once
    (or applied every step with `update_every_step=True`). `surrogate_width` overrides the
    spike surrogate's half-width (default: BPTT_SURROGATE_WIDTH for bptt, 1 for the online
    methods), e.g. to compare BPTT and online gradients of the same model.
    """

    def __init__(self, cfg: Any, seed: int, method: str, batch_size: int, n_in: int,
                 opt: str = "adam", lr: float = 1e-3, grad_clip: float = 1.0,
                 weight_l1: float = 0.0, weight_l2: float = 0.0, etrace_decay: float = 0.98,
                 update_every_step: bool = False, rate_reg: float = 0.0,
                 target_rate: float = 10.0, loss_kind: str = "step",
                 structure: Optional[Dict[str, np.ndarray]] = None,
                 surrogate_width: Optional[float] = None):
        import brainstate
        import optax

        from models.network import BPTT_SURROGATE_WIDTH, EINet

        self.method, self.batch_size, self.n_in = method, batch_size, n_in
        self.weight_l1, self.weight_l2 = weight_l1, weight_l2
        self.update_every_step = update_every_step
        self.rate_reg, self.target_rate = rate_reg, target_rate
        self.loss_kind = loss_kind
        self.etrace_decay = etrace_decay
        layout, event_driven = layout_for(method, cfg.conn_method)
        self.dt = cfg.dt
        with brainstate.environ.context(dt=cfg.dt):
            # BPTT uses a narrower surrogate than the online methods (models/network.py,
            # BPTT_SURROGATE_WIDTH): with width 1 its gradients explode as training proceeds.
            width = surrogate_width if surrogate_width is not None else (
                BPTT_SURROGATE_WIDTH if method == "bptt" else 1.0)
            self.net = EINet(cfg, seed=seed, layout=layout, event_driven=event_driven,
                             structure=structure, surrogate_width=width)
            brainstate.nn.init_all_states(self.net, batch_size)
        self.weights = self.net.weight_states()
        base = optax.adam(lr) if opt == "adam" else optax.sgd(lr)
        chain = [optax.clip_by_global_norm(grad_clip)] if grad_clip > 0 else []
        self.tx = optax.chain(*chain, base)
        self.opt_state = self.tx.init(self.params())
        self.algo = None
        self._train_step = None
        self._forward = None
        self._simulate = None
        self._gradients = None

    # ------------------------------------------------------------ parameters
    def params(self) -> Dict[str, Any]:
        """Current weights as a plain pytree {name: {'weight': array}}."""
        return {k: v.value for k, v in self.weights.items()}

    def set_params(self, params: Dict[str, Any]) -> None:
        """Write weights (e.g. from a checkpoint) into the network."""
        import jax.numpy as jnp

        for k, st in self.weights.items():
            st.value = {"weight": jnp.asarray(params[k]["weight"], dtype=jnp.float32)}

    def _apply(self, grads: Dict[str, Any], opt_state: Any) -> Any:
        import jax
        import optax

        params = self.params()
        if self.weight_l1 or self.weight_l2:
            pen = jax.grad(weight_penalty)(params, self.weight_l1, self.weight_l2)
            grads = jax.tree.map(lambda a, b: a + b, grads, pen)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        self.set_params(optax.apply_updates(params, updates))
        self.net.project_weights()
        return opt_state

    # ------------------------------------------------------------ steps
    def _build_bptt(self) -> Callable:
        import brainstate
        import jax.numpy as jnp

        net, weights = self.net, self.weights

        rate_reg, target = self.rate_reg, self.target_rate * self.dt / 1e3  # spikes per step

        def run(x):
            out = net(x)
            return out, net.get_spike()

        def step(xs, ys, recall, opt_state):
            def loss_fn():
                brainstate.nn.reset_all_states(net)
                outs, spikes = brainstate.transform.for_loop(run, xs)
                loss = recall_loss(outs, ys, recall, self.loss_kind)
                if rate_reg:
                    # firing-rate regularisation towards a target rate, per neuron over the
                    # trial (Bellec et al. 2020, Methods "firing rate regularization")
                    rate = spikes.mean(axis=(0, 1))
                    loss = loss + rate_reg * jnp.mean(((rate - target) / target) ** 2)
                return loss, outs

            grads, loss, outs = brainstate.transform.grad(
                loss_fn, weights, has_aux=True, return_value=True)()
            opt_state = self._apply(grads, opt_state)
            return loss, recall_sum(outs, recall), opt_state

        return brainstate.transform.jit(step)

    def _build_online(self, example_x: Any) -> Callable:
        import brainstate
        import jax
        import jax.numpy as jnp

        from utils.online import make_online_algorithm

        net, weights, B = self.net, self.weights, self.batch_size
        if self.algo is None:
            with brainstate.environ.context(dt=self.dt):
                self.algo = make_online_algorithm(net, self.method, self.etrace_decay, example_x)
        algo = self.algo

        def step(xs, ys, recall, opt_state):
            brainstate.nn.reset_all_states(net)
            algo.reset_state(B)
            n_recall = recall.sum()

            # Nothing of length T is kept: the carry holds the summed gradient, the loss and
            # the recall-period readout sum (for accuracy).
            def one_step(carry, inp):
                acc, opt_state, loss, summed = carry
                x_t, m_t = inp

                def loss_t():
                    out = algo(x_t)
                    return m_t * ce_per_step(out, ys).mean() / n_recall, out

                g, l, out = brainstate.transform.grad(
                    loss_t, weights, has_aux=True, return_value=True)()
                if self.update_every_step:
                    opt_state = self._apply(g, opt_state)
                else:
                    acc = jax.tree.map(jnp.add, acc, g)
                return (acc, opt_state, loss + l, summed + m_t * out), None

            zeros = jax.tree.map(jnp.zeros_like, self.params())
            init = (zeros, opt_state, jnp.zeros(()), jnp.zeros((B, self.net.cfg.n_out)))
            (grads, opt_state, loss, summed), _ = brainstate.transform.scan(
                one_step, init, (xs, recall.astype(jnp.float32)))
            if not self.update_every_step:
                opt_state = self._apply(grads, opt_state)
            return loss, summed, opt_state

        return brainstate.transform.jit(step)

    def train_step(self, data: "TaskData") -> Tuple[float, float]:
        """One optimizer step on a batch; returns (loss, accuracy)."""
        import brainstate
        import jax.numpy as jnp

        xs, ys, rc = jnp.asarray(data.X, dtype=bool), jnp.asarray(data.y), jnp.asarray(data.recall)
        with brainstate.environ.context(dt=self.dt):
            if self._train_step is None:
                self._train_step = (self._build_bptt() if self.method == "bptt"
                                    else self._build_online(xs[0]))
            loss, summed, self.opt_state = self._train_step(xs, ys, rc, self.opt_state)
        acc = float(np.mean(np.argmax(np.asarray(summed), -1) == data.y))
        return float(loss), acc

    def gradients(self, data: "TaskData") -> Dict[str, np.ndarray]:
        """Whole-trial gradient of the recall loss w.r.t. each weight, by this trainer's method.

        Does not change the weights (used to compare online methods with BPTT). Compiled once
        per trainer and batch shape.
        """
        import brainstate
        import jax.numpy as jnp

        xs, ys, rc = jnp.asarray(data.X, dtype=bool), jnp.asarray(data.y), jnp.asarray(data.recall)
        with brainstate.environ.context(dt=self.dt):
            if self._gradients is None:
                self._gradients = self._build_gradients(xs[0])
            grads = self._gradients(xs, ys, rc)
        return {k: np.asarray(v["weight"]) for k, v in grads.items()}

    def _build_gradients(self, example_x: Any) -> Callable:
        import brainstate
        import jax
        import jax.numpy as jnp

        net, weights, B = self.net, self.weights, self.batch_size
        if self.method == "bptt":
            def loss_fn(xs, ys, rc):
                brainstate.nn.reset_all_states(net)
                return recall_loss(brainstate.transform.for_loop(net, xs), ys, rc)

            return brainstate.transform.jit(brainstate.transform.grad(loss_fn, weights))
        if self.algo is None:
            from utils.online import make_online_algorithm
            self.algo = make_online_algorithm(net, self.method, self.etrace_decay, example_x)
        algo = self.algo

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

            zeros = jax.tree.map(jnp.zeros_like, self.params())
            return brainstate.transform.scan(one_step, zeros, (xs, rc.astype(jnp.float32)))[0]

        return brainstate.transform.jit(run)

    # ------------------------------------------------------------ evaluation
    def _build_forward(self) -> Callable:
        import brainstate

        net = self.net

        def fwd(xs):
            brainstate.nn.reset_all_states(net)
            return brainstate.transform.for_loop(net, xs)

        return brainstate.transform.jit(fwd)

    def _build_simulate(self) -> Callable:
        import brainstate

        net = self.net

        def sim(xs):
            brainstate.nn.reset_all_states(net)

            def step(x):
                out = net(x)
                return out, net.V.value, net.get_spike()

            return brainstate.transform.for_loop(step, xs)

        return brainstate.transform.jit(sim)

    def _chunks(self, data: "TaskData"):
        n, B = len(data), self.batch_size
        for start in range(0, n, B):
            idx = np.arange(start, min(start + B, n))
            pad = np.concatenate([idx, np.full(B - idx.size, idx[0], dtype=int)])
            yield idx.size, data.take(pad)

    def evaluate(self, data: "TaskData") -> Tuple[float, float]:
        """(loss, accuracy) of the current weights on `data`, in chunks of batch_size."""
        import brainstate
        import jax.numpy as jnp

        if self._forward is None:
            self._forward = self._build_forward()
        correct, losses = [], []
        with brainstate.environ.context(dt=self.dt):
            for n_real, chunk in self._chunks(data):
                outs = np.asarray(self._forward(jnp.asarray(chunk.X, dtype=bool)))[:, :n_real]
                y = chunk.y[:n_real]
                correct.append(recall_correct(outs, y, chunk.recall))
                losses.append(float(recall_loss(jnp.asarray(outs), jnp.asarray(y),
                                                jnp.asarray(chunk.recall),
                                                self.loss_kind)) * n_real)
        return float(np.sum(losses) / len(data)), float(np.concatenate(correct).mean())

    def simulate(self, data: "TaskData") -> Dict[str, np.ndarray]:
        """Readout (T, n, 2), membrane potentials and spikes (T, n, n_rec) for `data`."""
        import brainstate
        import jax.numpy as jnp

        if self._simulate is None:
            self._simulate = self._build_simulate()
        outs, vs, spikes = [], [], []
        with brainstate.environ.context(dt=self.dt):
            for n_real, chunk in self._chunks(data):
                o, v, s = self._simulate(jnp.asarray(chunk.X, dtype=bool))
                outs.append(np.asarray(o)[:, :n_real])
                vs.append(np.asarray(v)[:, :n_real])
                spikes.append(np.asarray(s)[:, :n_real])
        return {"readout": np.concatenate(outs, 1), "V": np.concatenate(vs, 1),
                "spikes": np.concatenate(spikes, 1)}


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, trainer: Trainer, config: Dict[str, Any],
                    state: Dict[str, Any], with_optimizer: bool = True) -> Path:
    """Write weights, fixed structure, config, progress (and optimizer state) as one .npz, atomically."""
    import jax

    arrays: Dict[str, np.ndarray] = {}
    for k, v in trainer.params().items():
        arrays[f"param/{k}"] = np.asarray(v["weight"])
    for k, v in trainer.net.structure().items():
        arrays[f"structure/{k}"] = np.asarray(v)
    if with_optimizer:
        for i, leaf in enumerate(jax.tree.leaves(trainer.opt_state)):
            arrays[f"opt/{i:05d}"] = np.asarray(leaf)
    arrays["config"] = np.asarray(json.dumps(config))
    arrays["state"] = np.asarray(json.dumps(state))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; UserError if missing or unreadable."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.npz"
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            files = {k: z[k] for k in z.files}
        out = {
            "params": {k[6:]: {"weight": v} for k, v in files.items() if k.startswith("param/")},
            "structure": {k[10:]: v for k, v in files.items() if k.startswith("structure/")},
            "opt": [files[k] for k in sorted(k for k in files if k.startswith("opt/"))],
            "config": json.loads(str(files["config"])),
            "state": json.loads(str(files["state"])),
            "path": str(path),
        }
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"cannot read checkpoint {path}: {err}") from None
    if set(out["params"]) != {"w_in", "w_e", "w_i", "w_out"}:
        raise UserError(f"{path} is not a task_training checkpoint (weights missing)")
    return out


def restore_optimizer(trainer: Trainer, leaves: list) -> None:
    """Put saved optimizer leaves back into the trainer's optimizer-state structure."""
    import jax
    import jax.numpy as jnp

    treedef = jax.tree.structure(trainer.opt_state)
    if len(leaves) != treedef.num_leaves:
        raise UserError("checkpoint optimizer state does not match --opt (cannot resume)")
    trainer.opt_state = jax.tree.unflatten(treedef, [jnp.asarray(x) for x in leaves])


def config_dict(cfg: Any) -> Dict[str, Any]:
    """A NetConfig as a plain dict."""
    return asdict(cfg)
