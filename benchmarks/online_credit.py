"""Where the online methods' credit goes: agreement with BPTT per weight group, during training.

Trains one online method (D-RTRL `diag` or ES-D-RTRL `expsm_diag`) on an evidence-accumulation
task and, every --every batches, compares its whole-trial gradient with BPTT's at the same
weights on a fixed probe batch: the cosine per weight group, with the input weights split by
input channel group (left cue, right cue, recall, noise), and the probe accuracy. BPTT here
uses the online methods' surrogate (half-width 1), so both differentiate the same model.

The task needs credit for the cue inputs across the delay; a method whose cue-input gradient
points against BPTT's learns the task backwards. Prints a table, draws cosine and accuracy
against batches, writes results/benchmarks/online_credit/<time>/{online_credit.json,
online_credit.png}.

    python -m benchmarks.online_credit                          # expsm_diag, 40 GIF neurons
    python -m benchmarks.online_credit --neuron alif            # the adaptive-LIF network
    python -m benchmarks.online_credit --method diag --batches 20 --every 5
    python -m benchmarks.online_credit --etrace_decay 0.9
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Dict, Sequence

import numpy as np
from matplotlib.figure import Figure

from benchmarks.kit.base import run_folder, write_result
from models.networks import NEURONS, NetConfig
from utils.run import cli, positive_int, save_figure
from utils.training.rules import online_rules
from utils.training.task import make_task, trial_seed
from utils.training.trainer import TrainConfig, make_trainer

GROUPS = ("cue_left", "cue_right", "recall", "noise", "w_e", "w_i", "w_out")


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--method", default="expsm_diag", choices=online_rules(),
                   help="online method to train and compare with BPTT")
    p.add_argument("--etrace_decay", type=float, default=0.98,
                   help="expsm_diag trace decay, in (0, 1)")
    p.add_argument("--batches", type=positive_int, default=60, help="training batches")
    p.add_argument("--every", type=positive_int, default=10,
                   help="compare with BPTT every this many batches")
    p.add_argument("--n_rec", type=positive_int, default=40, help="recurrent neurons")
    p.add_argument("--t_delay", type=positive_int, default=100, help="delay before recall (ms)")
    p.add_argument("--num_cue", type=positive_int, default=3, help="cues per trial")
    p.add_argument("--batch_size", type=positive_int, default=32, help="trials per batch")
    p.add_argument("--neuron", default=NetConfig().neuron, choices=tuple(NEURONS),
                   help="neuron model of the network (alif: the network whose cue credit "
                        "ES-D-RTRL gets backwards)")
    p.add_argument("--seed", type=int, default=0, help="network, trials and probe batch")
    p.add_argument("--out_dir", default=None, help="output folder")
    return p


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays (0 when either is zero)."""
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float((a * b).sum()) / den if den > 0 else 0.0


def group_cosines(g: Dict[str, np.ndarray], ref: Dict[str, np.ndarray],
                  channels: Dict[str, slice]) -> Dict[str, float]:
    """Cosine of `g` with `ref` per weight group, input weights split by channel group."""
    out = {k: cosine(g["w_in"][s], ref["w_in"][s]) for k, s in channels.items()}
    out.update({k: cosine(g[k], ref[k]) for k in ("w_e", "w_i", "w_out")})
    return out


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The online method's training configuration for this comparison (validated)."""
    config = TrainConfig.make(method=args.method, neuron=args.neuron, n_rec=args.n_rec,
                              t_delay=float(args.t_delay), num_cue=args.num_cue,
                              batch_size=args.batch_size, seed=args.seed,
                              etrace_decay=args.etrace_decay)
    config.validate()  # the training script's range checks, one-line errors
    return config


def markdown_table(rows: Sequence[dict]) -> str:
    """The comparison as a Markdown table (one row per compared batch)."""
    lines = ["| batch | probe acc | " + " | ".join(GROUPS) + " |",
             "|---" * (len(GROUPS) + 2) + "|"]
    lines += [f"| {r['batch']} | {r['acc']:.2f} | "
              + " | ".join(f"{r['cos'][k]:+.2f}" for k in GROUPS) + " |" for r in rows]
    return "\n".join(lines)


def plot(rows: Sequence[dict], title: str):
    """Cosine per group and probe accuracy against training batches."""
    fig = Figure(figsize=(10, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    batches = [r["batch"] for r in rows]
    for k in GROUPS:
        style = "-o" if k.startswith("cue") else "--."
        ax1.plot(batches, [r["cos"][k] for r in rows], style, label=k)
    ax1.axhline(0, color="k", lw=0.5)
    ax1.set(xlabel="training batch", ylabel="cosine with BPTT", ylim=(-1, 1), title=title)
    ax1.legend(fontsize=7, ncol=2)
    ax2.plot(batches, [r["acc"] for r in rows], "-o", color="k")
    ax2.axhline(0.5, color="grey", ls=":", lw=1)
    ax2.set(xlabel="training batch", ylabel="probe accuracy", ylim=(0, 1))
    fig.tight_layout()
    return fig


def main(argv: Sequence[str] | None = None) -> dict:
    """Train, compare with BPTT every --every batches, report and save."""
    args = build_parser().parse_args(argv)
    config = train_config(args)
    out = run_folder("online_credit", args.out_dir)
    task = make_task(config.task, config.net.dt, config.t_delay, config.num_cue)
    online = make_trainer(config, task)
    bptt = make_trainer(config.replace(method="bptt"), task, surrogate_width=1.0)
    channels = task.input_groups()
    probe = task.sample(args.batch_size, trial_seed(args.seed, 1, 0))
    rows, t0 = [], time.perf_counter()
    print(f"{'batch':>5} {'acc':>5} " + " ".join(f"{k:>9}" for k in GROUPS))
    for batch in range(args.batches + 1):
        if batch % args.every == 0 or batch == args.batches:
            bptt.set_params(online.params())
            cos = group_cosines(online.gradients(probe), bptt.gradients(probe), channels)
            acc = online.evaluate(probe)[1]
            rows.append({"batch": batch, "acc": acc, "cos": cos})
            print(f"{batch:5d} {acc:5.2f} " + " ".join(f"{cos[k]:+9.2f}" for k in GROUPS),
                  flush=True)
        if batch < args.batches:
            online.train_step(task.sample(args.batch_size, trial_seed(args.seed, 0, batch)))
    result = {"config": vars(args), "rows": rows, "wall_s": time.perf_counter() - t0}
    title = args.method + (f" (decay {args.etrace_decay})" if args.method == "expsm_diag" else "")
    save_figure(plot(rows, title), out / "online_credit.png")
    write_result("online_credit", result, out)
    return result


if __name__ == "__main__":
    sys.exit(cli(main))
