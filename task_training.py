"""Train a conductance-based E/I spiking network on evidence accumulation, or simulate it.

    python task_training.py --method bptt                       # train (defaults below)
    python task_training.py --conn_method gaussian --n_rec 400 --w_ei_ratio 4
    python task_training.py --method expsm_diag --etrace_decay 0.98   # online (brainscale)
    python task_training.py --mode sim --checkpoint results/task_training/RUN/checkpoint.npz
    python task_training.py --resume results/task_training/RUN  # continue an interrupted run

Each run folder holds config.json, metrics.json, checkpoint.npz (best model by held-out
validation accuracy, with its config), last.npz (latest state, for --resume) and PNG figures.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

from utils.run import (UserError, cli, make_out_dir, positive_float, positive_int, save_figure,
                       write_config, write_metrics)

SCRIPT = "task_training"
METHODS = ("bptt", "diag", "expsm_diag")
CONN_METHODS = ("dense", "gaussian", "rand")
# flags that may differ from the saved configuration when resuming
RESUME_FREE = {"epochs", "show", "out_dir", "resume", "mode"}


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
    """The command-line interface; `suppress=True` omits defaults (to see what was given)."""
    kw = {"argument_default": argparse.SUPPRESS} if suppress else {}
    p = argparse.ArgumentParser(
        prog="task_training.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter, **kw)

    def add(*a, **k):
        if suppress:
            k.pop("default", None)
        p.add_argument(*a, **k)

    # -- what to do
    add("--mode", choices=("train", "sim"), default="train",
        help="train the network, or simulate trials and plot activity")
    add("--method", choices=METHODS, default="bptt",
        help="bptt: backprop through time; diag: D-RTRL; expsm_diag: ES-D-RTRL (brainscale)")
    add("--etrace_decay", type=float, default=0.98,
        help="eligibility-trace decay of expsm_diag, in (0, 1)")
    add("--update_every_step", action="store_true", default=False,
        help="online methods: apply the weight update every time step instead of once per trial")
    # -- network
    add("--conn_method", choices=CONN_METHODS, default="dense",
        help="recurrent connectivity: dense all-to-all, rand fixed probability, gaussian ring")
    add("--n_rec", type=int, default=200, help="number of recurrent neurons (80%% E, 20%% I)")
    add("--w_ei_ratio", type=positive_float, default=4.0,
        help="initial inhibitory / excitatory weight ratio")
    add("--conn_prob", type=positive_float, default=0.1,
        help="connection probability of --conn_method rand")
    add("--conn_sigma", type=positive_float, default=20.0,
        help="width of --conn_method gaussian, in neuron spacings on the ring")
    add("--dt", type=positive_float, default=1.0, help="time step (ms)")
    add("--tau_neu", type=positive_float, default=100.0, help="membrane time constant (ms)")
    add("--tau_syn", type=positive_float, default=10.0, help="synaptic conductance decay (ms)")
    add("--tau_a", type=positive_float, default=1000.0,
        help="mean adaptation time constant (ms); drawn uniformly in [0.5, 1.5] x tau_a")
    add("--tau_out", type=positive_float, default=10.0, help="readout time constant (ms)")
    add("--beta", type=nonneg_float, default=1.0, help="adaptation strength")
    add("--ff_scale", type=positive_float, default=1.0, help="scale of initial input weights")
    add("--rec_scale", type=positive_float, default=1.0,
        help="scale of initial recurrent weights")
    # -- task
    add("--t_delay", type=positive_float, default=1000.0, help="delay before recall (ms)")
    add("--num_cue", type=positive_int, default=7, help="number of cues per trial")
    # -- optimisation
    add("--opt", choices=("adam", "sgd"), default="adam", help="optimizer")
    add("--lr", type=positive_float, default=1e-3, help="learning rate")
    add("--epochs", type=positive_int, default=1000,
        help="number of training batches (one optimizer step each)")
    add("--batch_size", type=positive_int, default=32, help="trials per batch")
    add("--weight_L1", type=nonneg_float, default=0.0, help="L1 penalty on |weights|")
    add("--weight_L2", type=nonneg_float, default=0.0, help="L2 penalty on weights")
    add("--loss", choices=("step", "mean"), default="step",
        help="step: per-step cross-entropy over the recall period (all methods); mean: "
             "cross-entropy of the recall-averaged readout (bptt only)")
    add("--rate_reg", type=nonneg_float, default=0.0,
        help="bptt: weight of the firing-rate regulariser mean_i ((rate_i - target)/target)^2")
    add("--target_rate", type=positive_float, default=10.0,
        help="target firing rate of --rate_reg (Hz)")
    add("--grad_clip", type=nonneg_float, default=1.0,
        help="clip the gradient's global norm (0: no clipping)")
    add("--target_acc", type=positive_float, default=0.99,
        help="stop early when held-out validation accuracy reaches this")
    add("--eval_every", type=positive_int, default=20,
        help="evaluate on the validation set every N batches")
    add("--n_val", type=positive_int, default=128,
        help="held-out validation trials (model selection, early stopping)")
    add("--n_test", type=positive_int, default=512,
        help="held-out test trials (never used for training or selection)")
    add("--save_every", type=positive_int, default=25,
        help="write last.npz (for --resume) every N batches")
    # -- run
    add("--seed", type=int, default=0,
        help="seed of every random choice (connectivity, tau_a, weights, trials)")
    add("--out_dir", default=None, help="run folder (default results/task_training/<time>/)")
    add("--checkpoint", default=None,
        help="checkpoint (.npz or run folder) to simulate (--mode sim) or to start from")
    add("--resume", default=None, help="run folder to continue training from its last.npz")
    add("--n_sim", type=positive_int, default=8, help="trials to simulate in --mode sim")
    add("--show", action="store_true", default=False, help="show figures (they are saved anyway)")
    return p


# ----------------------------------------------------------------------------- arguments
def validate(args: argparse.Namespace) -> None:
    """Range checks argparse cannot express; UserError names the problem."""
    if args.n_rec < 5:
        raise UserError(f"--n_rec must be >= 5 (need E and I neurons), got {args.n_rec}")
    if not 0.0 < args.etrace_decay < 1.0:
        raise UserError(f"--etrace_decay must be in (0, 1), got {args.etrace_decay}")
    if args.conn_prob > 1.0:
        raise UserError(f"--conn_prob must be in (0, 1], got {args.conn_prob}")
    if args.dt * 40.0 > 1e3 or args.dt > 150.0 / 2:
        raise UserError(f"--dt {args.dt} ms is too large for the task (max 25 ms)")
    if args.dt > min(args.tau_neu, args.tau_syn, args.tau_out):
        raise UserError(f"--dt {args.dt} ms is larger than a time constant")
    if args.rate_reg > 0 and args.method != "bptt":
        raise UserError("--rate_reg needs the whole trial's rates: use it with --method bptt")
    if args.loss == "mean" and args.method != "bptt":
        raise UserError("--loss mean needs the whole recall period: use it with --method bptt")
    if args.target_acc > 1.0:
        raise UserError(f"--target_acc must be <= 1, got {args.target_acc}")


def parse(argv: Optional[Sequence[str]]) -> tuple[argparse.Namespace, set]:
    """Parsed arguments and the set of flags given explicitly."""
    args = build_parser().parse_args(argv)
    explicit = set(vars(build_parser(suppress=True).parse_args(argv)))
    return args, explicit


def check_matches(saved: Dict[str, Any], args: argparse.Namespace, explicit: set,
                  keys: Sequence[str], what: str) -> None:
    """UserError if an explicitly given flag contradicts the saved configuration."""
    for k in keys:
        if k in explicit and k in saved and saved[k] != getattr(args, k):
            raise UserError(f"{what} was made with --{k} {saved[k]}, but --{k} "
                            f"{getattr(args, k)} was given")


# ----------------------------------------------------------------------------- helpers
def make_trainer(args: argparse.Namespace, structure=None,
                 surrogate_width: Optional[float] = None) -> Any:
    """A Trainer for the arguments (network drawn from --seed unless `structure` is given;
    `surrogate_width` None keeps the method's default)."""
    from utils.training import Trainer, get_task, net_config_from_args

    task = get_task(args.dt, args.t_delay, args.num_cue)
    return Trainer(net_config_from_args(args), seed=args.seed, method=args.method,
                   batch_size=args.batch_size, n_in=task.num_inputs, opt=args.opt, lr=args.lr,
                   grad_clip=args.grad_clip, weight_l1=args.weight_L1, weight_l2=args.weight_L2,
                   etrace_decay=args.etrace_decay, update_every_step=args.update_every_step,
                   rate_reg=getattr(args, "rate_reg", 0.0),
                   loss_kind=getattr(args, "loss", "step"),
                   target_rate=getattr(args, "target_rate", 10.0),
                   structure=structure, surrogate_width=surrogate_width)


def synapse_weights(trainer: Any) -> Dict[str, np.ndarray]:
    """Effective weights of existing synapses per projection."""
    net = trainer.net
    return {"w_in": net.w_in.synapse_values(), "w_e": net.w_e.synapse_values(),
            "w_i": net.w_i.synapse_values()}


def save_network_figures(trainer: Any, data: Any, before: Dict[str, np.ndarray],
                         after: Optional[Dict[str, np.ndarray]], out_dir: Path,
                         show: bool) -> Dict[str, Any]:
    """Activity, weight-distribution and connectivity figures; returns activity statistics."""
    from utils.training import recall_correct
    from utils.training_figures import plot_activity, plot_connectivity, \
        plot_weight_distributions

    sim = trainer.simulate(data)
    n_exc = trainer.net.n_exc
    dt = trainer.dt
    save_figure(plot_activity(data.X, sim, data.y, n_exc, dt), out_dir / "activity.png", show)
    save_figure(plot_weight_distributions(before, after), out_dir / "weights.png", show)
    save_figure(plot_connectivity(trainer.net.recurrent_matrix(), n_exc),
                out_dir / "connectivity.png", show)
    spikes = sim["spikes"] > 0.5
    return {"rate_exc_hz": float(spikes[..., :n_exc].mean() / dt * 1e3),
            "rate_inh_hz": float(spikes[..., n_exc:].mean() / dt * 1e3),
            "sim_acc": float(recall_correct(sim["readout"], data.y, data.recall).mean()),
            "n_sim_trials": int(len(data))}


def lognormal_summary(weights: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """Log-normal (mu, sigma of ln w) per projection."""
    from utils.training_figures import lognormal_fit

    out = {}
    for k, w in weights.items():
        fit = lognormal_fit(w)
        out[k] = None if fit is None else {"mu": fit[0], "sigma": fit[1]}
    return out


# ----------------------------------------------------------------------------- train
def train_and_evaluate(args: argparse.Namespace, out_dir: Path, explicit: set) -> Dict[str, Any]:
    """Train (or resume), checkpoint the best model, evaluate it on held-out trials."""
    from tqdm import tqdm

    from utils.training import (get_task, load_checkpoint, restore_optimizer, sample_trials,
                                save_checkpoint, trial_seed)
    from utils.training_figures import plot_training_curve

    config = dict(vars(args))
    task = get_task(args.dt, args.t_delay, args.num_cue)
    val = sample_trials(task, args.n_val, trial_seed(args.seed, 1, 0))
    test = sample_trials(task, args.n_test, trial_seed(args.seed, 2, 0))

    resume = load_checkpoint(Path(args.resume) / "last.npz") if args.resume else None
    init = None if args.checkpoint is None else load_checkpoint(Path(args.checkpoint))
    if init is not None:
        check_matches(init["config"], args, set(explicit) | {"n_rec", "conn_method"},
                      ("n_rec", "conn_method"), f"checkpoint {init['path']}")
    source = resume or init
    trainer = make_trainer(args, structure=None if source is None else source["structure"])
    fresh_before = synapse_weights(trainer)
    state = {"epoch": 0, "history": [], "best_acc": None, "best_epoch": None, "wall_s": 0.0}
    if source is not None:
        trainer.set_params(source["params"])
    if resume is not None:
        restore_optimizer(trainer, resume["opt"])
        state.update(resume["state"])
        fresh_before = {k: np.asarray(v) for k, v in state.pop("before", {}).items()} or \
            fresh_before
    before = fresh_before
    best_path, last_path = out_dir / "checkpoint.npz", out_dir / "last.npz"

    def save_last() -> None:
        save_checkpoint(last_path, trainer, config,
                        dict(state, before={k: v.tolist() for k, v in before.items()}))

    history = state["history"]
    t_start = time.perf_counter() - state["wall_s"]
    stopped_early = interrupted = False
    last_val = float("nan")
    pbar = tqdm(range(state["epoch"], args.epochs), initial=state["epoch"], total=args.epochs,
                desc=f"{args.method}/{args.conn_method}", mininterval=1.0, file=sys.stderr)
    try:
        for ep in pbar:
            data = sample_trials(task, args.batch_size, trial_seed(args.seed, 0, ep))
            t0 = time.perf_counter()
            loss, acc = trainer.train_step(data)
            step_s = time.perf_counter() - t0
            if not math.isfinite(loss):
                raise UserError(f"training diverged (loss {loss}) at batch {ep + 1}; "
                                f"try a smaller --lr")
            rec = {"epoch": ep + 1, "loss": loss, "acc": acc, "step_s": step_s}
            if (ep + 1) % args.eval_every == 0 or ep + 1 == args.epochs:
                rec["val_loss"], rec["val_acc"] = trainer.evaluate(val)
                if state["best_acc"] is None or rec["val_acc"] > state["best_acc"]:
                    state["best_acc"], state["best_epoch"] = rec["val_acc"], ep + 1
                    save_checkpoint(best_path, trainer, config,
                                    {"epoch": ep + 1, "val_acc": rec["val_acc"]},
                                    with_optimizer=False)
            rec["wall_s"] = time.perf_counter() - t_start
            history.append(rec)
            state["epoch"], state["wall_s"] = ep + 1, rec["wall_s"]
            if "val_acc" in rec:
                last_val = rec["val_acc"]
            pbar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.2f}", s_batch=f"{step_s:.2f}",
                             val=f"{last_val:.2f}")
            if (ep + 1) % args.save_every == 0:
                save_last()
            if rec.get("val_acc", 0.0) >= args.target_acc:
                stopped_early = True
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        pbar.close()
    save_last()
    if state["best_acc"] is None:  # interrupted before the first evaluation
        save_checkpoint(best_path, trainer, config, {"epoch": state["epoch"], "val_acc": None},
                        with_optimizer=False)

    metrics: Dict[str, Any] = {
        "method": args.method, "conn_method": args.conn_method,
        "etrace_decay": args.etrace_decay if args.method == "expsm_diag" else None,
        "n_rec": args.n_rec, "history": history, "best_acc": state["best_acc"],
        "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
        "stopped_early": stopped_early, "interrupted": interrupted,
        "wall_s": state["wall_s"],
        "s_per_batch_median": float(np.median([h["step_s"] for h in history[1:]]))
        if len(history) > 1 else None,
        "checkpoint": str(best_path), "last_state": str(last_path),
        "n_val": args.n_val, "n_test": args.n_test, "test_acc": None, "test_loss": None,
    }
    if interrupted:
        write_metrics(out_dir, metrics)
        print(f"interrupted: state saved to {last_path}; continue with --resume {out_dir}; "
              f"evaluating the best checkpoint (Ctrl-C again to skip)", file=sys.stderr)
    best = load_checkpoint(best_path)
    trainer.set_params(best["params"])
    metrics["test_loss"], metrics["test_acc"] = trainer.evaluate(test)
    if history:
        history[-1]["test_acc"] = metrics["test_acc"]
    after = synapse_weights(trainer)
    metrics["lognormal_fit"] = {"before": lognormal_summary(before),
                                "after": lognormal_summary(after)}
    metrics["dale_ok"] = bool(all(np.all(w >= 0) for w in after.values()))
    save_figure(plot_training_curve(history), out_dir / "training_curve.png", args.show)
    metrics["activity"] = save_network_figures(trainer, test.take(np.arange(min(8, len(test)))),
                                               before, after, out_dir, args.show)
    write_metrics(out_dir, metrics)
    best_acc = state["best_acc"] if state["best_acc"] is not None else float("nan")
    print(f"test_acc {metrics['test_acc']:.4f} (best val {best_acc:.4f} at batch "
          f"{state['best_epoch']}); results in {out_dir}")
    if interrupted:
        raise KeyboardInterrupt
    return metrics


# ----------------------------------------------------------------------------- simulate
def simulate(args: argparse.Namespace, out_dir: Path, explicit: set) -> Dict[str, Any]:
    """Load a checkpoint (or use fresh weights, saying so), simulate trials, plot them."""
    from utils.training import NET_KEYS, get_task, load_checkpoint, sample_trials, trial_seed

    ckpt = None
    if args.checkpoint is not None:
        ckpt = load_checkpoint(Path(args.checkpoint))
        saved = ckpt["config"]
        check_matches(saved, args, explicit, NET_KEYS, f"checkpoint {ckpt['path']}")
        for k in NET_KEYS + ("seed",):
            setattr(args, k, saved[k])
        for k in ("t_delay", "num_cue"):
            if k not in explicit:
                setattr(args, k, saved[k])
    else:
        print("no --checkpoint given: simulating freshly initialised weights", file=sys.stderr)
    args.method = "bptt"  # simulation does not need an online algorithm
    trainer = make_trainer(args, structure=None if ckpt is None else ckpt["structure"])
    before = synapse_weights(trainer)
    after = None
    if ckpt is not None:
        trainer.set_params(ckpt["params"])
        after = synapse_weights(trainer)
    task = get_task(args.dt, args.t_delay, args.num_cue)
    data = sample_trials(task, args.n_sim, trial_seed(args.seed, 3, 0))
    stats = save_network_figures(trainer, data, before, after, out_dir, args.show)
    metrics = {"mode": "sim", "conn_method": args.conn_method, "n_rec": args.n_rec,
               "checkpoint": None if ckpt is None else ckpt["path"], **stats}
    write_metrics(out_dir, metrics)
    print(f"simulated {args.n_sim} trials (accuracy {stats['sim_acc']:.3f}, E "
          f"{stats['rate_exc_hz']:.1f} Hz, I {stats['rate_inh_hz']:.1f} Hz); figures in {out_dir}")
    return metrics


# ----------------------------------------------------------------------------- main
def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Parse arguments, then train or simulate; returns the metrics written."""
    args, explicit = parse(argv)
    validate(args)
    if not args.show:
        from utils.training_figures import use_agg
        use_agg()
    if args.resume is not None:
        cfg_path = Path(args.resume) / "config.json"
        if not (Path(args.resume) / "last.npz").is_file() or not cfg_path.is_file():
            raise UserError(f"--resume {args.resume}: no last.npz/config.json there")
        saved = json.loads(cfg_path.read_text())
        check_matches(saved, args, explicit, [k for k in saved if k not in RESUME_FREE],
                      f"run {args.resume}")
        for k, v in saved.items():
            if k not in RESUME_FREE or (k == "epochs" and "epochs" not in explicit):
                setattr(args, k, v)
        if args.out_dir is None:
            args.out_dir = args.resume
        args.mode = "train"
    out_dir = make_out_dir(SCRIPT, args.out_dir)
    write_config(out_dir, args)
    if args.mode == "sim":
        return simulate(args, out_dir, explicit)
    return train_and_evaluate(args, out_dir, explicit)


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    """A batch scheduler's SIGTERM saves and evaluates like Ctrl-C."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    sys.exit(cli(main))
