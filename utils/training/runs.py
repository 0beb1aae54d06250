"""One training or simulation run of the E/I network, written into a run folder.

`train` trains (or resumes), keeps the best model by held-out validation accuracy, evaluates
it on held-out test trials, and writes metrics.json, checkpoint.npz, last.npz and figures.
`simulate_run` runs trials through given (or fresh) weights and plots them. Both take the task
object, created once by the caller.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import jax
import numpy as np
from tqdm import tqdm

from utils.run import GracefulInterrupt, UserError, save_figure, write_metrics
from utils.training.checkpoint import load_checkpoint, restore_optimizer, save_checkpoint
from utils.training.parallel import any_process, is_main_process
from utils.training.analysis import (activity_statistics, delay_mask, weight_distribution_test,
                                     window_bins)
from utils.training.figures import (plot_activity, plot_activity_stats, plot_connectivity,
                                    plot_training_curve, plot_weight_distributions)
from utils.training.populations import population_summary
from utils.training.recording import isi_index
from utils.training.rules import target_hz
from utils.training.task import SeededTrials, trial_seed
from utils.training.trainer import TrainConfig, Trainer, Trials, make_trainer

__all__ = ["train", "simulate_run", "save_network_figures", "record_statistics", "weight_tests"]


N_KEPT = 3  # trials kept whole (activity.png); every statistic covers every trial
WINDOW_MS = 100.0  # spike-count windows of the Fano factor and the count correlations


def cue_channels(groups: Dict[str, slice]) -> np.ndarray:
    """Input channels of the cues (every group named cue_*)."""
    return np.concatenate([np.arange(sl.start, sl.stop) for k, sl in groups.items()
                           if k.startswith("cue")])


def trial_labels(data: Trials) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The labels and stimuli (None if the task gives none) of every trial of `data`
    (SeededTrials are generated again, chunk by chunk)."""
    chunks = data.chunks() if isinstance(data, SeededTrials) else [data]
    parts = [(chunk.y, chunk.stimulus) for chunk in chunks]  # the inputs are dropped at once
    stimuli = None if parts[0][1] is None else np.concatenate([s for _, s in parts])
    return np.concatenate([y for y, _ in parts]), stimuli


def weight_tests(weights: Dict[str, Dict[str, np.ndarray]]) -> Dict[str, Dict[str, Any]]:
    """analysis.weight_distribution_test of every projection, per stage (before / after)."""
    return {stage: {k: weight_distribution_test(w) for k, w in ws.items()}
            for stage, ws in weights.items()}


def record_statistics(trainer: Trainer, data: Trials, groups: Dict[str, slice],
                      shown: Any) -> tuple[Dict[str, Any], Dict[str, Any]]:
    """Record every trial of `data`, accumulating as the trials run: spike counts per trial in
    the whole trial, the cue period (the steps before the delay), the delay and WINDOW_MS
    windows of the delay and of the trial, ISI moments in the delay and the trial, E/I current
    sums; whole trials of the first N_KEPT only. Returns (the recording, with the trials'
    "labels", and analysis.activity_statistics). `shown` holds the first trials: their `delay` mask (the
    task's) or, if the task gives none, the steps between the last cue spike and the recall
    (analysis.delay_mask)."""
    dt = trainer.dt
    delay = shown.delay if shown.delay is not None else \
        delay_mask(shown.X, shown.recall, cue_channels(groups))
    cue = np.arange(delay.size) < (np.flatnonzero(delay)[0] if delay.any() else 0)
    window = max(1, int(round(WINDOW_MS / dt)))
    bins = {"delay": np.where(delay, 0, -1), "cue": np.where(cue, 0, -1),
            "window": window_bins(delay, window),
            "window_trial": window_bins(np.ones_like(delay), window)}
    isi = {"delay": isi_index(delay), "trial": isi_index(np.ones_like(delay))}
    sim = trainer.record(data, keep=N_KEPT, bins=bins, currents=True, isi=isi)
    sim["labels"], stimuli = trial_labels(data)
    stats = activity_statistics(sim, sim["labels"], delay, trainer.net.n_exc, dt, WINDOW_MS,
                                stimuli)
    return sim, stats


def rate_term_hz(config: TrainConfig, n_exc: int, rate_hz: np.ndarray) -> float:
    """The --rate_reg term mean_i ((rate_i - target_i) / target_i)^2 of measured per-cell
    rates (Hz) against the population targets of `config` (rules.rate_term, in NumPy)."""
    target = target_hz(config, n_exc)
    return float(np.mean(((rate_hz - target) / target) ** 2))


def _trace_of_most_active(sim: Dict[str, Any], n_exc: int) -> Dict[str, Any]:
    """The currents of trial 0 of the most active E cell (for plot_activity_stats)."""
    i = int(np.argmax(sim["spikes"][:, 0, :n_exc].sum(axis=0)))
    return {"I_e": sim["I_e"][:, i], "I_i": sim["I_i"][:, i], "name": f"E cell {i}"}


def save_network_figures(trainer: Trainer, data: Trials, groups: Dict[str, slice],
                         weights: Dict[str, Dict[str, np.ndarray]],
                         out_dir: Path) -> tuple[Dict[str, Any], Dict[str, Any], List[Path]]:
    """Activity, weight-distribution, activity-statistics and connectivity figures; (activity
    statistics over all trials of `data`, weight tests per stage of `weights` (e.g. before /
    after training), paths). Whole trials are kept for the first N_KEPT trials only."""
    shown = data.first(N_KEPT) if isinstance(data, SeededTrials) else \
        data.take(np.arange(min(N_KEPT, len(data))))
    sim, stats = record_statistics(trainer, data, groups, shown)
    tests = weight_tests(weights)
    n_exc, dt = trainer.net.n_exc, trainer.dt
    paths = [save_figure(plot_activity(shown.X, sim, shown.y, n_exc, dt,
                                       trials=range(min(N_KEPT, len(shown))),
                                       input_groups=groups),
                         out_dir / "activity.png"),
             save_figure(plot_weight_distributions(weights, tests), out_dir / "weights.png"),
             save_figure(plot_activity_stats(stats, n_exc, _trace_of_most_active(sim, n_exc), dt),
                         out_dir / "activity_stats.png"),
             save_figure(plot_connectivity(trainer.net.recurrent_matrix(), n_exc),
                         out_dir / "connectivity.png")]
    activity = dict(stats["summary"], sim_acc=float(sim["correct"].mean()),
                    n_sim_trials=int(len(data)),
                    rate_term=rate_term_hz(trainer.config, n_exc, stats["cells"]["rate_hz"]))
    if trainer.net.connectome is not None:
        trial_s = sim["readout"].shape[0] * dt / 1e3
        activity["populations"], figs = population_summary(
            trainer.net, weights, sim["counts"]["trial"][0], trial_s,
            sim["counts"]["cue"][0], sim["labels"])
        paths += [save_figure(fig, out_dir / name) for fig, name in
                  zip(figs, ("connectivity_populations.png", "rates_populations.png"))]
    return activity, tests, paths


def evaluate_and_plot(trainer: Trainer, test: Trials, groups: Dict[str, slice],
                      best_path: Path, before: Dict[str, np.ndarray], history: List[dict],
                      metrics: Dict[str, Any], out_dir: Path) -> List[Path]:
    """Test accuracy of the best checkpoint, the weight-distribution tests (before / after
    training), the activity statistics of the test trials and figures, added to `metrics`
    and written; returns the figure paths."""
    trainer.set_params(load_checkpoint(best_path)["params"])
    metrics["test_loss"], metrics["test_acc"] = trainer.evaluate(test)
    if history:
        history[-1]["test_acc"] = metrics["test_acc"]
    after = trainer.synapse_weights()
    metrics["dale_ok"] = bool(all(np.all(w >= 0) for w in after.values()))
    paths = [save_figure(plot_training_curve(history), out_dir / "training_curve.png")]
    metrics["activity"], metrics["weight_distributions"], more = save_network_figures(
        trainer, test, groups, {"before": before, "after": after}, out_dir)
    write_metrics(out_dir, metrics)
    return paths + more


def train(config: TrainConfig, task: Any, out_dir: Path, saved_config: Dict[str, Any],
          init: Optional[Dict[str, Any]] = None,
          resume: Optional[Dict[str, Any]] = None) -> tuple[Dict[str, Any], List[Path]]:
    """Train for config.batches batches (or until config.target_acc), checkpoint the best model,
    evaluate it on held-out trials; returns (metrics, figure paths).

    `saved_config` is the dict stored in the checkpoints (the run's full configuration);
    `init` a loaded checkpoint to start from, `resume` a loaded last.npz to continue.
    Ctrl-C (or SIGTERM) stops after the current batch (twice: at once), saves last.npz with
    the last completed batch and metrics.json, evaluates the best checkpoint, then raises
    KeyboardInterrupt.
    """
    # held-out trials are generated chunk by chunk from their seeds whenever they are
    # evaluated: memory does not grow with their number or length
    val = SeededTrials(task, config.n_val, trial_seed(config.seed, 1, 0), config.batch_size)
    test = SeededTrials(task, config.n_test, trial_seed(config.seed, 2, 0), config.batch_size)
    source = resume or init
    trainer = make_trainer(config, task, structure=None if source is None else source["structure"])
    before = trainer.synapse_weights()
    state = {"epoch": 0, "history": [], "best_acc": None, "best_epoch": None, "wall_s": 0.0}
    if source is not None:
        trainer.set_params(source["params"])
    if resume is not None:
        restore_optimizer(trainer, resume["opt"])
        state.update(resume["state"])
        before = {k: np.asarray(v) for k, v in state.pop("before", {}).items()} or before
    best_path, last_path = out_dir / "checkpoint.npz", out_dir / "last.npz"
    structure = trainer.net.structure()
    before_saved = {k: v.tolist() for k, v in before.items()}

    def snapshot() -> Dict[str, Any]:
        """The state after the last completed batch (jax arrays are immutable: no copy)."""
        return {"params": trainer.params(), "opt": trainer.opt_state,
                "state": dict(state, history=list(state["history"]))}

    def save_last(snap: Dict[str, Any]) -> None:
        save_checkpoint(last_path, snap["params"], structure, saved_config,
                        dict(snap["state"], before=before_saved), snap["opt"])

    history = state["history"]
    t_start = time.perf_counter() - state["wall_s"]
    stopped_early = False
    last_val = float("nan")
    done = snapshot()
    pbar = tqdm(range(state["epoch"], config.batches), initial=state["epoch"],
                total=config.batches, desc=f"{config.method}/{config.net.conn_method}",
                mininterval=1.0, file=sys.stderr, disable=not is_main_process())
    # Ctrl-C stops after the current batch; a second Ctrl-C stops at once, and last.npz then
    # holds the last completed batch, so --resume repeats nothing and skips nothing.
    stop = GracefulInterrupt("stopping after this batch (Ctrl-C again to stop now)")
    try:
        with stop:
            for ep in pbar:
                data = task.sample(config.batch_size, trial_seed(config.seed, 0, ep))
                t0 = time.perf_counter()
                loss, acc = trainer.train_step(data)
                step_s = time.perf_counter() - t0
                if not math.isfinite(loss):
                    raise UserError(f"training diverged (loss {loss}) at batch {ep + 1}; "
                                    f"try a smaller --lr")
                rec = {"epoch": ep + 1, "loss": loss, "acc": acc, "step_s": step_s}
                if (ep + 1) % config.eval_every == 0 or ep + 1 == config.batches:
                    rec["val_loss"], rec["val_acc"] = trainer.evaluate(val)
                    if state["best_acc"] is None or rec["val_acc"] > state["best_acc"]:
                        state["best_acc"], state["best_epoch"] = rec["val_acc"], ep + 1
                        save_checkpoint(best_path, trainer.params(), structure, saved_config,
                                        {"epoch": ep + 1, "val_acc": rec["val_acc"]})
                rec["wall_s"] = time.perf_counter() - t_start
                history.append(rec)
                state["epoch"], state["wall_s"] = ep + 1, rec["wall_s"]
                done = snapshot()
                if "val_acc" in rec:
                    last_val = rec["val_acc"]
                pbar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.2f}", s_batch=f"{step_s:.2f}",
                                 val=f"{last_val:.2f}")
                if (ep + 1) % config.save_every == 0:
                    save_last(done)
                if rec.get("val_acc", 0.0) >= config.target_acc:
                    stopped_early = True
                    break
                # every process stops after the same batch (a signal may reach them apart)
                if any_process(stop.requested):
                    stop.requested = True
                    break
    except KeyboardInterrupt:
        stop.requested = True
    finally:
        pbar.close()
    interrupted = stop.requested
    state = done["state"]
    history = state["history"]
    save_last(done)
    if state["best_acc"] is None:  # interrupted before the first evaluation
        save_checkpoint(best_path, done["params"], structure, saved_config,
                        {"epoch": state["epoch"], "val_acc": None})

    metrics: Dict[str, Any] = {
        "method": config.method, "neuron": config.net.neuron,
        "conn_method": config.net.conn_method,
        "etrace_decay": config.etrace_decay if config.method == "expsm_diag" else None,
        "n_rec": config.net.n_rec, "task": config.task, **config.net.cell_types(),
        "rate_reg": config.rate_reg, "rate_targets_hz": config.population_targets(),
        "history": history, "best_acc": state["best_acc"],
        "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
        "stopped_early": stopped_early, "interrupted": interrupted,
        "wall_s": state["wall_s"],
        "s_per_batch_median": float(np.median([h["step_s"] for h in history[1:]]))
        if len(history) > 1 else None,
        "checkpoint": str(best_path), "last_state": str(last_path),
        "n_val": config.n_val, "n_test": config.n_test, "test_acc": None, "test_loss": None,
        "devices": trainer.n_devices, "processes": jax.process_count(),
    }
    # written now, so that an interrupt during the evaluation below loses nothing
    write_metrics(out_dir, metrics)
    if interrupted:
        print(f"interrupted after batch {state['epoch']}: state saved to {last_path}; "
              f"continue with --resume {out_dir}; evaluating the best checkpoint (Ctrl-C "
              f"again to skip)", file=sys.stderr)
    try:
        paths = evaluate_and_plot(trainer, test, task.input_groups(), best_path, before, history,
                                  metrics, out_dir)
    except KeyboardInterrupt:
        print(f"interrupted during the final evaluation: the training state is in {last_path} "
              f"and metrics.json has the history (no test_acc)", file=sys.stderr)
        raise
    best_acc = state["best_acc"] if state["best_acc"] is not None else float("nan")
    if is_main_process():
        print(f"test_acc {metrics['test_acc']:.4f} (best val {best_acc:.4f} at batch "
              f"{state['best_epoch']}); results in {out_dir}")
    if interrupted:
        raise KeyboardInterrupt
    return metrics, paths


def simulate_run(config: TrainConfig, task: Any, out_dir: Path, n_sim: int,
             checkpoint: Optional[Dict[str, Any]] = None) -> tuple[Dict[str, Any], List[Path]]:
    """Simulate n_sim trials through the weights of `checkpoint` (a loaded checkpoint) or
    fresh ones, plot them; returns (metrics, figure paths). Runs the forward model only, so
    the learning rule plays no part (the network is built as for bptt)."""
    config = config.replace(method="bptt")
    trainer = make_trainer(config, task,
                           structure=None if checkpoint is None else checkpoint["structure"])
    weights = {"initial": trainer.synapse_weights()}
    if checkpoint is not None:
        trainer.set_params(checkpoint["params"])
        weights["checkpoint"] = trainer.synapse_weights()
    data = SeededTrials(task, n_sim, trial_seed(config.seed, 3, 0), config.batch_size)
    stats, tests, paths = save_network_figures(trainer, data, task.input_groups(), weights,
                                               out_dir)
    metrics = {"mode": "sim", "neuron": config.net.neuron, "conn_method": config.net.conn_method,
               "n_rec": config.net.n_rec, "task": config.task, **config.net.cell_types(),
               "checkpoint": None if checkpoint is None else checkpoint["path"], **stats,
               "weight_distributions": tests}
    write_metrics(out_dir, metrics)
    print(f"simulated {n_sim} trials (accuracy {stats['sim_acc']:.3f}, E "
          f"{stats['rate_exc_hz']:.1f} Hz, I {stats['rate_inh_hz']:.1f} Hz); figures in {out_dir}")
    return metrics, paths
