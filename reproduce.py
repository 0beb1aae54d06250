"""Reproduce the paper's figures and tables, one command each (README: "Reproducing the paper").

    python reproduce.py hh        # HH fitting, voltage and spike targets: traces, 10-repeat table
    python reproduce.py gif       # the same for the GIF neuron
    python reproduce.py network   # E/I network: activity and weights after BPTT training, and
                                  # learning curves of bptt, diag and expsm_diag
    python reproduce.py online    # memory and time of bptt, diag, expsm_diag vs sequence length,
                                  # and where expsm_diag's gradient disagrees with BPTT's

Run folders go under --out (default results/reproduce/<time>/); the figures the README shows are
copied into --figures (default figures/), and each command prints its table as Markdown.
--quick runs tiny budgets (what the tests run).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

import neuron_fitting_of_gif_model
import neuron_fitting_of_hh_model
import task_training
from benchmarks import online_credit, online_vs_bptt
from utils.fitting import run_fitting
from utils.run import atomic_write_bytes, cli, make_out_dir, positive_int, save_figure
from utils.training.figures import plot_learning_curves
from utils.training.config import RULES

FIT_SCRIPTS = {"hh": neuron_fitting_of_hh_model, "gif": neuron_fitting_of_gif_model}
AUTHORS_STARTS = {"hh": 20, "gif": 100}   # L-BFGS-B starts the authors used
FIT_METHODS = "gradient,lm,DE,PSO,TwoPointsDE,bayesian"
REPEATS = 10
# the three learning rules on one task that D-RTRL can finish on a CPU (see README)
LEARNING_CURVE_TASK = ["--n_rec", "40", "--t_delay", "100", "--num_cue", "3", "--epochs", "150",
                       "--eval_every", "10", "--n_val", "128", "--n_test", "256"]
QUICK_TASK = ["--n_rec", "20", "--t_delay", "40", "--num_cue", "1", "--epochs", "2",
              "--eval_every", "1", "--n_val", "8", "--n_test", "8", "--batch_size", "4"]
QUICK_CREDIT = ["--n_rec", "20", "--t_delay", "40", "--num_cue", "1", "--batch_size", "4",
                "--batches", "1", "--every", "1"]


def _copy(src: Path, figures: Path, name: str) -> Path:
    """Copy a run's figure into the figures folder (atomically)."""
    atomic_write_bytes(figures / name, src.read_bytes())
    return figures / name


def repeats_table(metrics_by_target: dict) -> str:
    """Markdown: loss and wall time, mean +/- std over repeats, per target and method."""
    lines = ["| target | method | loss (mean +/- std) | wall s (mean +/- std) | sims | "
             "best RMSE mV | best gamma |", "|---|---|---|---|---|---|---|"]
    for target, m in metrics_by_target.items():
        for method, r in m["methods"].items():
            rp = r["repeats"]
            rmse = f"{r['rmse_mV']:.3f}" if r["rmse_mV"] is not None else "-"
            gamma = f"{r['gamma']:.3f}" if r["gamma"] is not None else "-"
            lines.append(f"| {target} | {method} | {rp['loss_mean']:.3g} +/- {rp['loss_std']:.2g}"
                         f" | {rp['wall_s_mean']:.2f} +/- {rp['wall_s_std']:.2f} | {r['n_evals']}"
                         f" | {rmse} | {gamma} |")
    return "\n".join(lines)


def fitting(model: str, out: Path, figures: Path, quick: bool, repeats: int = REPEATS) -> str:
    """Both targets with the authors' budgets, every method `repeats` times."""
    defaults = FIT_SCRIPTS[model].DEFAULTS
    budget = (["--n_starts", "2", "--maxiter", "3", "--n_refine", "1", "--budget", "6",
               "--popsize", "3"] if quick else
              ["--n_starts", str(AUTHORS_STARTS[model]), "--budget", "100", "--popsize", "20"])
    results = {}
    for target in ("potential", "spike"):
        run_dir = out / f"{model}_{target}"
        results[target] = run_fitting(defaults, ["--target", target, "--methods", FIT_METHODS,
                                                 "--seed", "0", "--out_dir", str(run_dir),
                                                 "--repeats", str(repeats), *budget])
        for fig in ("traces", "repeats"):
            _copy(run_dir / f"{fig}.png", figures, f"{model}_{target}_{fig}.png")
    return repeats_table(results)


def network(out: Path, figures: Path, quick: bool) -> str:
    """A dense network trained by BPTT on the default task (activity, weights, curve), then
    every learning rule on one smaller task (learning curves)."""
    main_run = out / "network_bptt"
    m = task_training.main(["--out_dir", str(main_run), "--seed", "0",
                            *(QUICK_TASK if quick else [])])
    for fig in ("activity", "weights", "training_curve"):
        _copy(main_run / f"{fig}.png", figures, f"network_{fig}.png")
    rows = [f"| bptt, dense, default task | {m['test_acc']:.3f} | {m['epochs_run']} | "
            f"{m['wall_s']:.0f} |"]
    task = QUICK_TASK if quick else LEARNING_CURVE_TASK
    histories = {}
    for method in RULES:
        mm = task_training.main(["--method", method, "--seed", "0", "--out_dir",
                     str(out / f"curves_{method}"), *task])
        histories[method] = mm["history"]
        rows.append(f"| {method}, learning-curve task | {mm['test_acc']:.3f} | "
                    f"{mm['epochs_run']} | {mm['wall_s']:.0f} |")
    save_figure(plot_learning_curves(histories), out / "learning_curves.png")
    _copy(out / "learning_curves.png", figures, "network_learning_curves.png")
    return "\n".join(["| run | held-out test acc | batches | wall s |", "|---|---|---|---|",
                      *rows])


def online(out: Path, figures: Path, quick: bool) -> str:
    """benchmarks/online_vs_bptt.py at 200 neurons, 500 to 5000 steps, then
    benchmarks/online_credit.py (expsm_diag's gradient per weight group against BPTT's)."""
    run_dir = out / "online"
    argv = (["--n_rec", "20", "--seq_lens", "310", "400", "--steps", "1", "--batch_size", "4",
             "--num_cue", "1"]
            if quick else ["--n_rec", "200", "--seq_lens", "500", "1000", "2000", "5000",
                           "--steps", "1", "--diag_max_len", "1000"])
    result = online_vs_bptt.main([*argv, "--out_dir", str(run_dir)])
    _copy(run_dir / "online_vs_bptt.png", figures, "online_memory.png")
    lines = ["| n_rec | steps | method | s per batch | XLA MB | peak RSS increase MB |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if "error" in r:
            raise RuntimeError(f"online benchmark failed: {r['error']}")
        lines.append(f"| {r['n_rec']} | {r['T']} | {r['method']} | {r['s_per_batch']:.2f} | "
                     f"{r['xla_step_mb']:.1f} | {r['peak_rss_increase_mb']:.0f} |")
    credit_dir = out / "online_credit"
    credit = online_credit.main([*(QUICK_CREDIT if quick else []), "--out_dir", str(credit_dir)])
    _copy(credit_dir / "online_credit.png", figures, "online_credit.png")
    return "\n".join(lines + [""] + result["checks"] + [
        "", "expsm_diag against BPTT, cosine per weight group (benchmarks/online_credit.py):",
        "", online_credit.markdown_table(credit["rows"])])


JOBS = {"hh": lambda o, f, q, r: fitting("hh", o, f, q, r),
        "gif": lambda o, f, q, r: fitting("gif", o, f, q, r),
        "network": lambda o, f, q, r: network(o, f, q),
        "online": lambda o, f, q, r: online(o, f, q)}


def main(argv: Sequence[str] | None = None) -> str:
    """Run one reproduction; returns (and prints) its Markdown table."""
    p = argparse.ArgumentParser(prog="reproduce.py", description=__doc__.splitlines()[0])
    p.add_argument("what", choices=list(JOBS), help="which result to reproduce")
    p.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run")
    p.add_argument("--repeats", type=positive_int, default=None,
                   help=f"hh, gif: repeats of every method (default {REPEATS}, the authors' "
                        "protocol; 2 with --quick)")
    p.add_argument("--out", default=None,
                   help="a new folder for the run folders (default results/reproduce/<time>/)")
    p.add_argument("--figures", default="figures", help="folder for the README's figures")
    args = p.parse_args(argv)
    out = make_out_dir("reproduce", args.out)
    t0 = time.perf_counter()
    repeats = args.repeats or (2 if args.quick else REPEATS)
    table = JOBS[args.what](out, Path(args.figures), args.quick, repeats)
    minutes = (time.perf_counter() - t0) / 60
    command = " ".join(["python reproduce.py", *(argv if argv is not None else sys.argv[1:])])
    text = f"{table}\n\n`{command}`: {minutes:.1f} min\n"
    atomic_write_bytes(out / f"{args.what}.md", text.encode())
    print(text)
    return text


if __name__ == "__main__":
    sys.exit(cli(main, cache=True))
