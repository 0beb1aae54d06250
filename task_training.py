"""Train a conductance-based E/I spiking network on evidence accumulation, or simulate it.

    python task_training.py --method bptt                       # train (defaults below)
    python task_training.py --method expsm_diag                 # online ES-D-RTRL (braintrace)
    python task_training.py --method diag --n_rec 50            # D-RTRL (slower per batch)
    python task_training.py --neuron alif --method bptt         # the adaptive-LIF network
    python task_training.py --conn_method gaussian --n_rec 400 --w_ei_ratio 4
    python task_training.py --mode sim --checkpoint results/task_training/RUN/checkpoint.npz
    python task_training.py --resume results/task_training/RUN  # continue an interrupted run

Each run folder holds config.json, metrics.json, checkpoint.npz (best model by held-out
validation accuracy, with its config), last.npz (latest state, for --resume) and PNG figures.
The default neuron model is gif (the authors' BrainScale network, on which all three methods
learn); --neuron alif is the adaptive-LIF network (best for bptt). The command line only: the
work is done by utils/training (train, simulate).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import jax
from jax.experimental import multihost_utils

from models.network import CONNECTIVITIES, NEURONS
from utils.run import (RunStatus, UserError, check_out_dir, cli, make_out_dir, positive_float,
                       positive_int, write_config)
from utils.training.checkpoint import load_checkpoint, upgrade_config
from utils.training.figures import show_pngs
from utils.training.parallel import (DISTRIBUTED_ENV, first_line, init_distributed,
                                     is_main_process, lost_peer)
from utils.training.rules import RULES
from utils.training.runs import simulate, train
from utils.training.task import TASKS, make_task
from utils.training.trainer import LOSSES, NET_FIELDS, OPTIMIZERS, TrainConfig

SCRIPT = "task_training"
# flags that are not TrainConfig fields: what to do with it and where
RUN_FLAGS = ("mode", "out_dir", "checkpoint", "resume", "n_sim", "show")
# flags that may differ from the saved configuration when resuming
RESUME_FREE = {"epochs", "show", "out_dir", "resume", "mode", "devices"}


DISTRIBUTED_HELP = ("several processes or hosts train one network together (each batch split "
                    "over all their devices; process 0 writes the run folder) when these are "
                    "set in every process: " + "; ".join(f"{k}: {v}" for k, v in
                                                        DISTRIBUTED_ENV.items()))


def nonneg_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser(suppress: bool = False) -> argparse.ArgumentParser:
    """The command-line interface; `suppress=True` omits defaults (to see what was given).

    Defaults are TrainConfig's; the choices of --task, --method and --conn_method are the
    registries' names (TASKS, RULES, CONNECTIVITIES).
    """
    kw = {"argument_default": argparse.SUPPRESS} if suppress else {}
    p = argparse.ArgumentParser(
        prog="task_training.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter, epilog=DISTRIBUTED_HELP, **kw)
    d = TrainConfig()

    def add(*a, **k):
        if suppress:
            k.pop("default", None)
        p.add_argument(*a, **k)

    # -- what to do
    add("--mode", choices=("train", "sim"), default="train",
        help="train the network, or simulate trials and plot activity")
    add("--task", choices=tuple(TASKS), default=d.task, help="task to train on")
    add("--method", choices=tuple(RULES), default=d.method,
        help="learning rule: bptt backprop through time; diag D-RTRL; expsm_diag ES-D-RTRL "
             "(both online, braintrace)")
    add("--etrace_decay", type=float, default=d.etrace_decay,
        help="eligibility-trace decay of expsm_diag, in (0, 1)")
    add("--update_every_step", action="store_true", default=d.update_every_step,
        help="online methods: apply the weight update at every time step with loss (the "
             "recall period) instead of once per trial")
    # -- network
    add("--neuron", choices=tuple(NEURONS), default=d.neuron,
        help="neuron model: " + "; ".join(f"{k}: {v.summary}" for k, v in NEURONS.items()))
    add("--conn_method", choices=CONNECTIVITIES, default=d.conn_method,
        help="recurrent connectivity: dense all-to-all, rand fixed probability, gaussian ring")
    add("--n_rec", type=int, default=d.n_rec,
        help="number of recurrent neurons (80%% E, 20%% I)")
    add("--w_ei_ratio", type=positive_float, default=d.w_ei_ratio,
        help="initial inhibitory / excitatory weight ratio")
    add("--conn_prob", type=positive_float, default=d.conn_prob,
        help="connection probability of --conn_method rand")
    add("--conn_sigma", type=positive_float, default=d.conn_sigma,
        help="width of --conn_method gaussian, in neuron spacings on the ring")
    add("--dt", type=positive_float, default=d.dt, help="time step (ms)")
    gif, alif = NEURONS["gif"].defaults, NEURONS["alif"].defaults

    def per_neuron(name: str) -> str:
        return f"(default: {gif[name]:g} for gif, {alif[name]:g} for alif)"

    add("--tau_neu", type=positive_float, default=d.tau_neu,
        help=f"membrane time constant (ms) {per_neuron('tau_neu')}")
    add("--tau_syn", type=positive_float, default=d.tau_syn,
        help="synaptic conductance decay (ms)")
    add("--tau_a", type=positive_float, default=d.tau_a,
        help="alif: mean adaptation time constant (ms); drawn uniformly in [0.5, 1.5] x tau_a")
    add("--tau_out", type=positive_float, default=d.tau_out, help="readout time constant (ms)")
    add("--beta", type=nonneg_float, default=d.beta, help="alif: adaptation strength")
    add("--ff_scale", type=positive_float, default=d.ff_scale,
        help=f"scale of initial input weights {per_neuron('ff_scale')}")
    add("--rec_scale", type=positive_float, default=d.rec_scale,
        help=f"scale of initial recurrent weights {per_neuron('rec_scale')}")
    add("--tau_I2", type=positive_float, default=d.tau_I2,
        help="gif: decay (ms) of the slow after-spike current I2 (the delay's memory)")
    add("--A2", type=nonneg_float, default=d.A2,
        help="gif: I2 change per spike (I2 -= A2: a slow hyperpolarising current)")
    add("--tau_I1", type=positive_float, default=d.tau_I1,
        help="gif: decay (ms) of the fast after-spike current I1")
    add("--A1", type=nonneg_float, default=d.A1, help="gif: I1 change per spike (I1 += A1)")
    add("--tau_th", type=positive_float, default=d.tau_th,
        help="gif: decay (ms) of the threshold back to 1")
    add("--Ath", type=nonneg_float, default=d.Ath, help="gif: threshold increase per spike")
    # -- task
    add("--t_delay", type=positive_float, default=d.t_delay, help="delay before recall (ms)")
    add("--num_cue", type=positive_int, default=d.num_cue, help="number of cues per trial")
    # -- optimisation
    add("--opt", choices=tuple(OPTIMIZERS), default=d.opt, help="optimizer")
    add("--lr", type=positive_float, default=d.lr,
        help=f"learning rate {per_neuron('lr')}")
    add("--lr_decay", type=positive_float, default=d.lr_decay,
        help="multiply the learning rate by this every --lr_decay_every optimizer steps, in "
             f"(0, 1]; 1: constant (default: {gif['lr_decay']:g} for gif, "
             f"{alif['lr_decay']:g} for alif)")
    add("--lr_decay_every", type=positive_int, default=d.lr_decay_every,
        help="optimizer steps between learning-rate decays (one per batch, or per time step "
             "with --update_every_step)")
    add("--epochs", type=positive_int, default=d.epochs,
        help="number of training BATCHES, one optimizer step each (not passes over a data "
             "set: every batch is freshly drawn)")
    add("--batch_size", type=positive_int, default=d.batch_size, help="trials per batch")
    add("--weight_L1", type=nonneg_float, default=d.weight_L1, help="L1 penalty on |weights|")
    add("--weight_L2", type=nonneg_float, default=d.weight_L2, help="L2 penalty on weights")
    add("--loss", choices=LOSSES, default=d.loss,
        help="step: per-step cross-entropy over the recall period (all methods); mean: "
             "cross-entropy of the recall-averaged readout (bptt only)")
    add("--rate_reg", type=nonneg_float, default=d.rate_reg,
        help="bptt: weight of the firing-rate regulariser mean_i ((rate_i - target)/target)^2")
    add("--target_rate", type=positive_float, default=d.target_rate,
        help="target firing rate of --rate_reg (Hz)")
    add("--grad_clip", type=nonneg_float, default=d.grad_clip,
        help="clip the gradient's global norm (0: no clipping; default: the rule's, none "
             "for bptt, 1 for the online rules)")
    add("--target_acc", type=positive_float, default=d.target_acc,
        help="stop early when held-out validation accuracy reaches this")
    add("--eval_every", type=positive_int, default=d.eval_every,
        help="evaluate on the validation set every N batches")
    add("--n_val", type=positive_int, default=d.n_val,
        help="held-out validation trials (model selection, early stopping)")
    add("--n_test", type=positive_int, default=d.n_test,
        help="held-out test trials (never used for training or selection)")
    add("--save_every", type=positive_int, default=d.save_every,
        help="write last.npz (for --resume) every N batches")
    # -- run
    add("--seed", type=int, default=d.seed,
        help="seed of every random choice (connectivity, tau_a, weights, trials)")
    add("--devices", type=positive_int, default=d.devices,
        help="local devices (in each process) to split each batch over, weights "
             "replicated (default: all; --batch_size must be a multiple of all devices)")
    add("--out_dir", default=None, help="run folder (default results/task_training/<time>/)")
    add("--checkpoint", default=None,
        help="checkpoint (.npz or run folder) to simulate (--mode sim) or to start from")
    add("--resume", default=None, help="run folder to continue training from its last.npz")
    add("--n_sim", type=positive_int, default=8, help="trials to simulate in --mode sim")
    add("--show", action="store_true", default=False, help="show figures (they are saved anyway)")
    return p


def parse(argv: Optional[Sequence[str]]) -> tuple[Dict[str, Any], set]:
    """Every flag's value (a new dict) and the set of flags given explicitly."""
    values = dict(vars(build_parser().parse_args(argv)))
    explicit = set(vars(build_parser(suppress=True).parse_args(argv)))
    return values, explicit


def split(values: Dict[str, Any]) -> tuple[TrainConfig, Dict[str, Any]]:
    """(TrainConfig, run options) from flag values."""
    return TrainConfig.from_dict(values), {k: values[k] for k in RUN_FLAGS}


def check_matches(saved: Dict[str, Any], values: Dict[str, Any], explicit: set,
                  keys: Sequence[str], what: str) -> None:
    """UserError if an explicitly given flag contradicts the saved configuration."""
    for k in keys:
        if k in explicit and k in saved and saved[k] != values[k]:
            raise UserError(f"{what} was made with --{k} {saved[k]}, but --{k} "
                            f"{values[k]} was given")


def resumed_values(values: Dict[str, Any], explicit: set) -> Dict[str, Any]:
    """The flag values of a --resume run: the saved run's, except RESUME_FREE flags (and
    --epochs only when given); UserError if a given flag contradicts the saved run."""
    run_dir = Path(values["resume"])
    cfg_path = run_dir / "config.json"
    if not (run_dir / "last.npz").is_file() or not cfg_path.is_file():
        raise UserError(f"--resume {values['resume']}: no last.npz/config.json there")
    saved = upgrade_config(json.loads(cfg_path.read_text()))
    check_matches(saved, values, explicit, [k for k in saved if k not in RESUME_FREE],
                  f"run {values['resume']}")
    out = dict(values)
    for k, v in saved.items():
        if k in out and (k not in RESUME_FREE or (k == "epochs" and "epochs" not in explicit)):
            out[k] = v
    if out["out_dir"] is None:
        out["out_dir"] = values["resume"]
    out["mode"] = "train"
    return out


def simulated_values(values: Dict[str, Any], explicit: set,
                     ckpt: Dict[str, Any]) -> Dict[str, Any]:
    """The flag values of --mode sim on a checkpoint: its network and seed (a given network
    flag must match), its task timing unless given."""
    saved = ckpt["config"]
    check_matches(saved, values, explicit, NET_FIELDS, f"checkpoint {ckpt['path']}")
    out = dict(values)
    for k in NET_FIELDS + ("seed",):
        out[k] = saved.get(k, out[k])  # older checkpoints lack the other neuron's fields
    for k in ("t_delay", "num_cue"):
        if k not in explicit:
            out[k] = saved[k]
    return out


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Parse arguments, then train or simulate; returns the metrics written."""
    values, explicit = parse(argv)
    init_distributed()  # a multi-process run, if its environment variables are set
    if values["resume"] is not None:
        values = resumed_values(values, explicit)
    ckpt = None
    if values["checkpoint"] is not None:
        ckpt = load_checkpoint(Path(values["checkpoint"]))
        if values["mode"] == "sim":
            values = simulated_values(values, explicit, ckpt)
        else:
            check_matches(ckpt["config"], values, explicit | {"n_rec", "conn_method", "neuron"},
                          ("n_rec", "conn_method", "neuron"), f"checkpoint {ckpt['path']}")
    config, run = split(values)
    config.validate()
    resume = load_checkpoint(Path(run["resume"]) / "last.npz") if run["resume"] else None
    # everything is read and checked: only now is the run folder made and written
    continuing = run["resume"] is not None and (
        Path(run["out_dir"]).resolve() == Path(run["resume"]).resolve())
    with contextlib.ExitStack() as scratch:
        try:
            out_dir = run_folder(run["out_dir"], continuing, scratch)
            metrics, figures = run_in(out_dir, config, run, ckpt, resume)
        except jax.errors.JaxRuntimeError as err:
            if not lost_peer(err):
                raise
            raise UserError(f"process {jax.process_index()} lost the other processes of the "
                            f"run (one of them stopped?): {first_line(err)}") from None
    if run["show"] and is_main_process():
        show_pngs(figures)
    return metrics


def run_folder(out_dir: Optional[str], continuing: bool, scratch: contextlib.ExitStack) -> Path:
    """The run folder, made fresh (or reused when continuing). In a multi-process run every
    process checks it before process 0 makes it (so all refuse the same folder), and the
    other processes, which compute the same, write their copies into a temporary folder that
    `scratch` removes."""
    if jax.process_count() > 1:
        if out_dir is not None:
            check_out_dir(Path(out_dir), reuse=continuing)
        multihost_utils.sync_global_devices("run folder checked")
        if not is_main_process():
            return Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix=SCRIPT)))
    return make_out_dir(SCRIPT, out_dir, reuse=continuing)


def run_in(out_dir: Path, config: TrainConfig, run: Dict[str, Any],
           ckpt: Optional[Dict[str, Any]],
           resume: Optional[Dict[str, Any]]) -> tuple[Dict[str, Any], list]:
    """Write the configuration into `out_dir`, then train or simulate there; (metrics,
    figure paths)."""
    # the neuron's defaults filled in: the run records the values it used
    saved_config = {**dataclasses.asdict(config.resolved()), **run}
    write_config(out_dir, saved_config)
    # The one task of this run, passed to everything that needs it.
    task = make_task(config.task, config.dt, config.t_delay, config.num_cue)
    with RunStatus(out_dir):
        if run["mode"] == "sim":
            if ckpt is None:
                print("no --checkpoint given: simulating freshly initialised weights",
                      file=sys.stderr)
            metrics, figures = simulate(config, task, out_dir, run["n_sim"], ckpt)
        else:
            metrics, figures = train(config, task, out_dir, saved_config, init=ckpt,
                                     resume=resume)
    return metrics, figures


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    """A batch scheduler's SIGTERM saves and evaluates like Ctrl-C."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    sys.exit(cli(main))
