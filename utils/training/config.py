"""Every setting of a training run, declared once (`TrainConfig`, with the network's
`NetConfig` inside it, and `RunOptions`), and the registries whose names are their choices.

Light on purpose: the command line of task_training.py (and its --help) is built from these
fields without importing JAX. The registries list names without importing their entries:

    RULES        learning rules (utils/training/rules.py)
    TASKS        tasks (utils/training/task.py)
    OPTIMIZERS   optax optimizers
    LOSSES       recall-period losses (utils/training/task.py: recall_loss)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from models.networks import NEURONS, NetConfig, per_neuron
from models.registry import Registry
from utils.distributed_env import DISTRIBUTED_ENV
from utils.run import UserError
from utils.settings import (Settings, group, nonneg_float, positive_float, positive_int,
                            setting)

__all__ = ["TrainConfig", "RunOptions", "TrainingJob", "RULES", "TASKS", "OPTIMIZERS",
           "LOSSES", "DISTRIBUTED_ENV"]

RULES = Registry({"bptt": "utils.training.rules:bptt", "diag": "utils.training.rules:diag",
                  "expsm_diag": "utils.training.rules:expsm_diag"})
TASKS = Registry({"evidence_accumulation": "utils.training.task:EvidenceAccumulationTask",
                  "delay_comparison": "utils.training.task:DelayComparisonTask",
                  "delay_match_sample": "utils.training.task:DelayMatchSampleTask"})
OPTIMIZERS = Registry({"adam": "optax:adam", "sgd": "optax:sgd"})
LOSSES = ("step", "mean")

@dataclass(frozen=True)
class TrainConfig(Settings):
    """Every setting of a training run: task, learning rule, network, optimisation, loop.

    Field names are the command-line flags of task_training.py; None: the neuron model's
    default (NEURONS[neuron].defaults) or, for grad_clip, the rule's."""

    # -- task
    task: str = setting("evidence_accumulation", "task to train on (brainpy-datasets, spiking "
                        "input): evidence_accumulation, which side had more cues; "
                        "delay_comparison, is f1 > f2 after a delay (DelayComparison); "
                        "delay_match_sample, does the test direction match the sample after "
                        "a delay (CircleFeatDMS)", choices=lambda: TASKS)
    t_delay: float = setting(1000.0, "delay period (ms)", type=positive_float)
    num_cue: int = setting(7, "evidence_accumulation: number of cues per trial",
                           type=positive_int)
    # -- learning rule
    method: str = setting("bptt", "learning rule: bptt backprop through time; diag D-RTRL; "
                          "expsm_diag ES-D-RTRL (both online, braintrace)", choices=lambda: RULES)
    etrace_decay: float = setting(0.995, "eligibility-trace decay of expsm_diag, in (0, 1)",
                                  type=float)
    update_every_step: bool = setting(False, "online methods: apply the weight update at every "
                                      "time step with loss (the recall period) instead of once "
                                      "per trial")
    # -- network
    net: NetConfig = group(NetConfig)
    # -- optimisation
    opt: str = setting("adam", "optimizer", choices=lambda: OPTIMIZERS)
    lr: Optional[float] = setting(None, "learning rate", type=positive_float,
                                  default_text=lambda: per_neuron("lr"))
    lr_decay: Optional[float] = setting(
        None, "multiply the learning rate by this every --lr_decay_every optimizer steps, in "
        "(0, 1]; 1: constant", type=positive_float, default_text=lambda: per_neuron("lr_decay"))
    lr_decay_every: int = setting(60, "optimizer steps between learning-rate decays (one per "
                                  "batch, or per time step with --update_every_step)",
                                  type=positive_int)
    batches: int = setting(1000, "number of training batches, one optimizer step each (every "
                           "batch is freshly drawn; --epochs is the same flag under its old "
                           "name)", type=positive_int, aliases=("epochs",))
    batch_size: int = setting(32, "trials per batch", type=positive_int)
    weight_update: str = setting(
        "additive", "how the sign-constrained weights (w_in, w_e, w_i) change: additive, w + u; "
        "multiplicative, trained in log space, w exp(u) with u the optimizer's step on the "
        "gradient w.r.t. ln w (Loewenstein et al. 2011: multiplicative dynamics give "
        "log-normal weights); the readout stays additive",
        choices=("additive", "multiplicative"))
    weight_L1: float = setting(0.0, "L1 penalty on |weights|", type=nonneg_float)
    weight_L2: float = setting(0.0, "L2 penalty on weights", type=nonneg_float)
    loss: str = setting("step", "step: per-step cross-entropy over the recall period (all "
                        "methods); mean: cross-entropy of the recall-averaged readout (bptt "
                        "only)", choices=LOSSES)
    rate_reg: float = setting(0.0, "bptt: weight of the firing-rate regulariser mean_i "
                              "((rate_i - target_i)/target_i)^2, rate_i cell i's rate over the "
                              "trial, target_i its population's (--target_rate, "
                              "--target_rates)", type=nonneg_float)
    target_rate: float = setting(10.0, "target firing rate of --rate_reg (Hz)",
                                 type=positive_float)
    target_rates: str = setting("", "per-population targets of --rate_reg, POP:HZ,... with POP "
                                "E or I (e.g. E:2,I:10); a population left out keeps "
                                "--target_rate")
    grad_clip: Optional[float] = setting(
        None, "clip the gradient's global norm (0: no clipping)", type=nonneg_float,
        default_text="the rule's: none for bptt, 1 for the online rules")
    target_acc: float = setting(0.99, "stop early when held-out validation accuracy reaches "
                                "this", type=positive_float)
    eval_every: int = setting(20, "evaluate on the validation set every N batches",
                              type=positive_int)
    n_val: int = setting(256, "held-out validation trials (model selection, early stopping)",
                         type=positive_int)
    n_test: int = setting(512, "held-out test trials (never used for training or selection)",
                          type=positive_int)
    save_every: int = setting(25, "write last.npz (for --resume) every N batches",
                              type=positive_int)
    # -- run
    seed: int = setting(0, "seed of every random choice (connectivity, tau_a, weights, "
                        "trials)", type=int)
    devices: Optional[int] = setting(
        None, "local devices (in each process) to split each batch over, weights replicated "
        "(default: all; --batch_size must be a multiple of all devices)", type=positive_int)

    @property
    def rule(self):
        """The registered learning rule `method`."""
        return RULES[self.method]

    def resolved(self) -> "TrainConfig":
        """A copy with every default that depends on the neuron model or on the rule filled in
        (what the run uses and its checkpoints record)."""
        changes = {}
        if self.grad_clip is None and self.method in RULES:
            changes["grad_clip"] = self.rule.grad_clip
        if self.net.neuron in NEURONS:
            defaults = NEURONS[self.net.neuron].defaults
            changes.update({k: defaults[k] for k in ("lr", "lr_decay")
                            if getattr(self, k) is None})
        return self.replace(**changes).replace_net(self.net.resolved())

    def population_targets(self) -> Dict[str, float]:
        """The target rate (Hz) of --rate_reg for E and I cells; UserError for a bad
        --target_rates."""
        targets = {"E": self.target_rate, "I": self.target_rate}
        for entry in filter(None, (e.strip() for e in self.target_rates.split(","))):
            pop, _, value = entry.partition(":")
            try:
                hz = float(value)
            except ValueError:
                hz = float("nan")
            if pop.strip() not in targets or not hz > 0:
                raise UserError(f"--target_rates: bad entry {entry!r} (expected POP:HZ with POP "
                                f"E or I and HZ > 0)")
            targets[pop.strip()] = hz
        return targets

    def replace_net(self, net: NetConfig) -> "TrainConfig":
        """A copy with the network settings `net`."""
        return self.replace(**net.to_flat())

    def validate(self) -> None:
        """Range checks; UserError names the flag."""
        for name, known in (("method", RULES), ("task", TASKS), ("opt", OPTIMIZERS),
                            ("loss", LOSSES)):
            if getattr(self, name) not in known:
                raise UserError(f"--{name} must be one of {tuple(known)}, "
                                f"got {getattr(self, name)!r}")
        try:
            self.net.check()
        except ValueError as err:
            raise UserError(str(err)) from None
        self.population_targets()
        self._check_ranges(self.resolved())

    @staticmethod
    def _check_ranges(cfg: "TrainConfig") -> None:
        if not 0.0 < cfg.lr_decay <= 1.0:
            raise UserError(f"--lr_decay must be in (0, 1], got {cfg.lr_decay}")
        if cfg.lr_decay_every < 1:
            raise UserError(f"--lr_decay_every must be >= 1, got {cfg.lr_decay_every}")
        if not 0.0 < cfg.etrace_decay < 1.0:
            raise UserError(f"--etrace_decay must be in (0, 1), got {cfg.etrace_decay}")
        if cfg.net.dt * 40.0 > 1e3 or cfg.net.dt > 150.0 / 2:
            raise UserError(f"--dt {cfg.net.dt} ms is too large for the task (max 25 ms)")
        if cfg.rate_reg > 0 and cfg.rule.online:
            raise UserError("--rate_reg needs the whole trial's rates: use it with a rule "
                            "that sees the whole trial (--method bptt)")
        if cfg.loss == "mean" and cfg.rule.online:
            raise UserError("--loss mean needs the whole recall period: use it with a rule "
                            "that sees the whole trial (--method bptt)")
        if cfg.target_acc > 1.0:
            raise UserError(f"--target_acc must be <= 1, got {cfg.target_acc}")
        from utils.training.parallel import data_mesh  # JAX: only once the flags are read

        data_mesh(cfg.devices, cfg.batch_size)  # enough devices, batch splits over them


@dataclass(frozen=True)
class RunOptions(Settings):
    """What task_training.py does with a TrainConfig, and where."""

    mode: str = setting("train", "train the network; sim: simulate trials and plot activity; "
                        "connectome: write the network's connectome (cells.csv, edges.csv; "
                        "--conn_method pd14, celegans or file) into the run folder, to read "
                        "back with --connectome", choices=("train", "sim", "connectome"))
    out_dir: Optional[str] = setting(None, "run folder (default results/task_training/<time>/)")
    checkpoint: Optional[str] = setting(None, "checkpoint (.npz or run folder) to simulate "
                                        "(--mode sim) or to start from")
    resume: Optional[str] = setting(None, "run folder to continue training from its last.npz")
    n_sim: int = setting(8, "trials to simulate in --mode sim", type=positive_int)
    show: bool = setting(False, "show figures (they are saved anyway)")


@dataclass(frozen=True)
class TrainingJob(Settings):
    """Every setting of one task_training.py run: the training and what to do with it."""

    config: TrainConfig = group(TrainConfig)
    run: RunOptions = group(RunOptions)
