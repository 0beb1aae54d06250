"""The `Trainer`: network + optimizer + the jitted steps a learning rule builds, with
evaluation and simulation in chunks of the batch size (settings: utils/training/config.py).

    config = TrainConfig.make(method="expsm_diag", n_rec=40)
    task = make_task(config.task, config.net.dt, config.t_delay, config.num_cue)
    trainer = make_trainer(config, task)
    loss, acc = trainer.train_step(task.sample(config.batch_size, seed))
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Union

import brainstate
import jax
import jax.numpy as jnp
import numpy as np
import optax

from models.networks import build_net
from models.networks.base import EINetwork
from utils.run import UserError
from utils.training.config import OPTIMIZERS, RULES, TrainConfig
from utils.training.parallel import data_mesh, gather, replicate, shard_batch
from utils.training.task import SeededTrials, TaskData, recall_correct, recall_loss

Trials = Union[TaskData, SeededTrials]

__all__ = ["TrainConfig", "Trainer", "make_trainer", "build_network", "build_optimizer",
           "learning_rate", "weight_penalty", "log_space_gradients", "multiplicative_step"]

# ----------------------------------------------------------------------------- parts
def background_channels(task: Any) -> int:
    """How many of the task's last input channels are background noise (its input group
    'noise', when it ends the inputs), else 0."""
    noise = task.input_groups().get("noise")
    return noise.stop - noise.start if noise is not None and noise.stop == task.num_inputs \
        else 0


def build_network(config: TrainConfig, n_in: int, structure: Optional[Dict[str, Any]] = None,
                  surrogate_width: Optional[float] = None, n_background: int = 0) -> EINetwork:
    """The network for `config` with `n_in` inputs, the last `n_background` of them
    background, its states batched to config.batch_size; the rule chooses the sparse layout
    and (unless `surrogate_width` is given) the surrogate width."""
    config = config.resolved()
    rule, net_cfg = config.rule, config.net.replace(n_in=n_in, n_background=n_background)
    layout, event_driven = ("dense", False) if net_cfg.conn_method == "dense" else \
        rule.sparse_layout
    width = rule.surrogate_width_for(net_cfg.neuron) if surrogate_width is None else \
        surrogate_width
    if structure is not None:
        try:
            net_cfg.spec.net_class.check_structure(structure)
        except ValueError:
            raise UserError(f"the checkpoint's network was made with another neuron model "
                            f"than --neuron {net_cfg.neuron}") from None
    with brainstate.environ.context(dt=net_cfg.dt):
        net = build_net(net_cfg, seed=config.seed, layout=layout, event_driven=event_driven,
                        structure=structure, surrogate_width=width)
        brainstate.nn.init_all_states(net, config.batch_size)
    return net


def learning_rate(config: TrainConfig) -> Any:
    """The learning rate: constant, or (lr_decay < 1) a step decay, lr x lr_decay every
    lr_decay_every optimizer steps (the authors' StepLR)."""
    config = config.resolved()
    if config.lr_decay >= 1.0:
        return config.lr
    return optax.exponential_decay(config.lr, transition_steps=config.lr_decay_every,
                                   decay_rate=config.lr_decay, staircase=True)


def build_optimizer(config: TrainConfig) -> Any:
    """optax: optional global-norm clipping, then adam or sgd with `learning_rate(config)`."""
    chain = [optax.clip_by_global_norm(config.grad_clip)] if config.grad_clip > 0 else []
    return optax.chain(*chain, OPTIMIZERS[config.opt](learning_rate(config)))


def weight_penalty(params: Dict[str, Any], l1: float, l2: float) -> Any:
    """L1/L2 penalty on the (non-negative) input and recurrent weights."""
    total = 0.0
    for name in ("w_in", "w_e", "w_i"):
        w = params[name]["weight"]
        if l1:
            total = total + l1 * w.sum()
        if l2:
            total = total + l2 * (w ** 2).sum()
    return total


def log_space_gradients(grads: Dict[str, Any], params: Dict[str, Any],
                        names: Tuple[str, ...]) -> Dict[str, Any]:
    """The gradients w.r.t. ln w of the weights `names` (dL/d ln w = w dL/dw); others as given."""
    return {k: {"weight": g["weight"] * params[k]["weight"]} if k in names else g
            for k, g in grads.items()}


def multiplicative_step(params: Dict[str, Any], updates: Dict[str, Any],
                        names: Tuple[str, ...]) -> Dict[str, Any]:
    """w exp(u) for the weights `names` (a step u in ln w: the sign is kept, zeros stay zero;
    Loewenstein et al. 2011, J Neurosci 31:9481), w + u for the others."""
    return {k: {"weight": p["weight"] * jnp.exp(updates[k]["weight"]) if k in names
                else p["weight"] + updates[k]["weight"]} for k, p in params.items()}


def _forward(net: EINetwork) -> Callable:
    def fwd(xs):
        brainstate.nn.reset_all_states(net)
        return brainstate.transform.for_loop(net, xs)

    return brainstate.transform.jit(fwd)


def _chunks(data: Trials, size: int) -> Iterator[Tuple[int, TaskData]]:
    """(real trials, chunk padded to `size` by repeating its first trial); SeededTrials are
    generated one chunk at a time."""
    parts = data.chunks() if isinstance(data, SeededTrials) else [data]
    for part in parts:
        n = len(part)
        for start in range(0, n, size):
            idx = np.arange(start, min(start + size, n))
            pad = np.concatenate([idx, np.full(size - idx.size, idx[0], dtype=int)])
            yield idx.size, part.take(pad)


def _mask_key(recall: np.ndarray) -> str:
    """A cache key for the loss steps a compiled step was specialised on."""
    recall = np.asarray(recall, dtype=bool)
    return f"{recall.size}-{hash(np.packbits(recall).tobytes())}"


def _arrays(data: TaskData) -> Tuple[Any, Any, Any]:
    return jnp.asarray(data.X, dtype=bool), jnp.asarray(data.y), jnp.asarray(data.recall)


# ----------------------------------------------------------------------------- trainer
class Trainer:
    """A network, its optimizer and the jitted steps of `config.rule` (built at first use)."""

    def __init__(self, config: TrainConfig, net: EINetwork, tx: Any):
        self.config, self.rule, self.net, self.tx = config, config.rule, net, tx
        self.dt = config.net.dt
        self.mesh = data_mesh(config.devices, config.batch_size)
        self.weights = net.weight_states()
        self.set_params(self.params())
        self.opt_state = replicate(tx.init(self.params()), self.mesh)
        self.online_algorithm = None  # set by an online rule, shared by step and gradients
        self._compiled: Dict[str, Callable] = {}

    # ------------------------------------------------------------ parameters
    @property
    def n_devices(self) -> int:
        """Devices each batch is split over (all processes together)."""
        return 1 if self.mesh is None else int(self.mesh.devices.size)

    def params(self) -> Dict[str, Any]:
        """Current weights as a plain pytree {name: {'weight': array}}."""
        return {k: v.value for k, v in self.weights.items()}

    def set_params(self, params: Dict[str, Any]) -> None:
        """Write weights (e.g. from a checkpoint) into the network."""
        for k, st in self.weights.items():
            st.value = replicate({"weight": jnp.asarray(params[k]["weight"], dtype=jnp.float32)},
                                 self.mesh)

    def apply_gradients(self, grads: Dict[str, Any], opt_state: Any) -> Any:
        """Add the weight penalty, take an optimizer step (additive, or multiplicative on the
        sign-constrained weights: config.weight_update), keep Dale's law; new opt_state."""
        grads = self.net.mask_gradients(grads)
        params = self.params()
        l1, l2 = self.config.weight_L1, self.config.weight_L2
        if l1 or l2:
            pen = jax.grad(weight_penalty)(params, l1, l2)
            grads = jax.tree.map(lambda a, b: a + b, grads, pen)
        if self.config.weight_update == "multiplicative":
            names = tuple(self.net.projections())
            updates, opt_state = self.tx.update(log_space_gradients(grads, params, names),
                                                opt_state, params)
            self.set_params(multiplicative_step(params, updates, names))
        else:
            updates, opt_state = self.tx.update(grads, opt_state, params)
            self.set_params(optax.apply_updates(params, updates))
        self.net.project_weights()
        return opt_state

    def _get(self, name: str, build: Callable[[], Callable]) -> Callable:
        if name not in self._compiled:
            self._compiled[name] = build()
        return self._compiled[name]

    # ------------------------------------------------------------ learning
    def train_step(self, data: TaskData) -> Tuple[float, float]:
        """One optimizer step on a batch; returns (loss, accuracy)."""
        xs, ys, rc = shard_batch(*_arrays(data), self.mesh)
        with brainstate.environ.context(dt=self.dt):
            step = self._get(f"step{_mask_key(data.recall)}",
                             lambda: self.rule.build_step(self, xs[0], data.recall))
            loss, summed, self.opt_state = step(xs, ys, rc, self.opt_state)
        acc = float(np.mean(np.argmax(gather(summed), -1) == data.y))
        return float(loss), acc

    @property
    def compiled_step(self) -> Optional[Callable]:
        """The jitted training step last built (for memory analysis), else None."""
        steps = [v for k, v in self._compiled.items() if k.startswith("step")]
        return steps[-1] if steps else None

    def gradients(self, data: TaskData) -> Dict[str, np.ndarray]:
        """Whole-trial gradient of the recall loss w.r.t. each weight, by this trainer's rule.

        Does not change the weights (used to compare rules). Compiled once per trainer.
        """
        xs, ys, rc = shard_batch(*_arrays(data), self.mesh)
        with brainstate.environ.context(dt=self.dt):
            fn = self._get(f"gradients{_mask_key(data.recall)}",
                           lambda: self.rule.build_gradients(self, xs[0], data.recall))
            grads = self.net.mask_gradients(fn(xs, ys, rc))
        return {k: np.asarray(v["weight"]) for k, v in grads.items()}

    # ------------------------------------------------------------ evaluation
    def evaluate(self, data: Trials) -> Tuple[float, float]:
        """(loss, accuracy) of the current weights on `data` (TaskData, or SeededTrials
        generated chunk by chunk), in chunks of batch_size."""
        fwd = self._get("forward", lambda: _forward(self.net))
        correct, losses = [], []
        with brainstate.environ.context(dt=self.dt):
            for n_real, chunk in _chunks(data, self.config.batch_size):
                outs = np.asarray(fwd(jnp.asarray(chunk.X, dtype=bool)))[:, :n_real]
                y = chunk.y[:n_real]
                correct.append(recall_correct(outs, y, chunk.recall))
                losses.append(float(recall_loss(jnp.asarray(outs), jnp.asarray(y),
                                                jnp.asarray(chunk.recall),
                                                self.config.loss)) * n_real)
        return float(np.sum(losses) / len(data)), float(np.concatenate(correct).mean())

    def record(self, data: Trials, keep: Optional[int] = None,
               bins: Optional[Dict[str, np.ndarray]] = None, currents: bool = False,
               isi: Optional[Dict[str, np.ndarray]] = None,
               v_cells: Optional[np.ndarray] = None) -> Dict[str, Any]:
        """Run every trial of `data` and return what was accumulated as they ran
        (utils/training/recording.py): correctness "correct" (n,), mean E and I rates (Hz), and
        "counts": name -> each neuron's spike count per bin and trial (n_bins, n, n_rec) for
        `bins` (name -> (T,) int, the bin of each step, < 0: none; "trial", the whole trial,
        always); "isi": name -> per-cell count, sum and sum of squares of the inter-spike
        intervals on the step index isi[name] (recording.isi_index); with `currents`,
        "balance" (analysis.trial_balance over every trial) and the synaptic currents "I_e",
        "I_i" (T, n_rec) of trial 0. Whole trials are kept for the first k = min(keep, n,
        batch_size) trials only (default: all of the first chunk): "readout" (T, k, n_out),
        "spikes" (T, k, n_rec) and "V" (T, k, len(v_cells)) of the cells "V_cells" (default:
        the first three E and the first three I cells)."""
        from utils.training.recording import bin_counts, record, recorder

        B = self.config.batch_size
        keep = min(B, len(data) if keep is None else keep)
        n_exc, n_rec = self.net.n_exc, self.config.net.n_rec
        v_cells = np.r_[0:min(3, n_exc), n_exc:min(n_exc + 3, n_rec)] if v_cells is None \
            else np.asarray(v_cells)
        bins = {k: np.asarray(v, dtype=np.int32) for k, v in (bins or {}).items()}
        isi = {k: np.asarray(v, dtype=np.int32) for k, v in (isi or {}).items()}
        n_bins = bin_counts(bins)
        sim = self._get(f"record{keep}-{sorted(n_bins.items())}-{sorted(isi)}-{currents}-"
                        f"{v_cells.tolist()}", lambda: recorder(self.net, keep, n_bins,
                                                                tuple(isi), currents, v_cells))
        out = record(sim, self.dt, _chunks(data, B), bins, isi, currents)
        out["V_cells"] = v_cells
        T = out["readout"].shape[0]
        per_cell = out["counts"]["trial"][0].mean(axis=0) / (T * self.dt) * 1e3
        out["rate_exc_hz"] = float(per_cell[:n_exc].mean())
        out["rate_inh_hz"] = float(per_cell[n_exc:].mean())
        return out

    def synapse_weights(self) -> Dict[str, np.ndarray]:
        """Effective weights of existing synapses per projection."""
        return {k: proj.synapse_values() for k, proj in self.net.projections().items()}


def make_trainer(config: TrainConfig, task: Any, structure: Optional[Dict[str, Any]] = None,
                 surrogate_width: Optional[float] = None) -> Trainer:
    """A Trainer for `config` on `task` (network drawn from config.seed unless `structure`,
    the fixed random structure of a checkpoint, is given; `surrogate_width` None keeps the
    rule's). Raises ValueError for an unknown rule, task or connectivity."""
    if config.method not in RULES:
        raise ValueError(f"unknown learning rule {config.method!r}; expected one of "
                         f"{tuple(RULES)}")
    config = config.resolved()
    net = build_network(config, task.num_inputs, structure, surrogate_width,
                        background_channels(task))
    return Trainer(config, net, build_optimizer(config))
