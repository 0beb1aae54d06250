"""Reproduce the paper's figures and tables, one command each (README: "Reproducing the paper").

    python reproduce.py hh        # HH fitting, voltage and spike targets: traces, 10-repeat table
    python reproduce.py gif       # the same for the GIF neuron
    python reproduce.py network   # E/I network trained by bptt, diag and expsm_diag at 3 seeds:
                                  # accuracy over seeds, learning curves, activity, weights
    python reproduce.py online    # memory and time of bptt, diag, expsm_diag vs sequence length,
                                  # and where expsm_diag's gradient disagrees with BPTT's

Run folders go under --out (default results/reproduce/<time>/); the figures the README shows are
copied into --figures (default figures/; with --quick, the run's own figures/ folder), with a
line each in that folder's manifest.json (command, date, code version), and each command
prints its table as Markdown. --quick runs tiny budgets (what the tests run). `network --resume
--out FOLDER` continues an interrupted network reproduction in FOLDER: finished runs are reused,
interrupted ones continued from their last.npz, missing ones made.
"""
from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

import neuron_fitting_of_gif_model
import neuron_fitting_of_hh_model
import task_training
from benchmarks import online_credit, online_vs_bptt
from utils.fitting import run_fitting
from utils.run import UserError, atomic_write_bytes, atomic_write_json, cli, make_out_dir, \
    positive_int, save_figure
from utils.training.figures import plot_learning_curves
from utils.training.config import RULES

FIT_SCRIPTS = {"hh": neuron_fitting_of_hh_model, "gif": neuron_fitting_of_gif_model}
AUTHORS_STARTS = {"hh": 20, "gif": 100}   # L-BFGS-B starts the authors used
FIT_METHODS = "gradient,lm,DE,PSO,TwoPointsDE,bayesian"
REPEATS = 10
SEEDS = 3  # seeds of every rule's network run
NETWORK_FIGURES = ("activity", "activity_stats", "weights", "training_curve")
QUICK_TASK = ["--n_rec", "20", "--t_delay", "40", "--num_cue", "1", "--batches", "2",
              "--eval_every", "1", "--n_val", "8", "--n_test", "8", "--batch_size", "4"]
QUICK_CREDIT = ["--n_rec", "20", "--t_delay", "40", "--num_cue", "1", "--batch_size", "4",
                "--batches", "1", "--every", "1"]


MANIFEST = "manifest.json"


def code_version() -> str:
    """The git commit of the code (with '+changes' if the checkout differs), or 'unknown'."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True,
                              text=True, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short", "HEAD")
        return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no")
                         else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Figures:
    """The folder of the figures a reproduction makes, and its manifest: figure -> the
    command, date and code version that made it (so that a stale figure shows)."""

    def __init__(self, folder: Path, command: str):
        self.folder, self.command = Path(folder), command
        self.stamp = {"command": command, "code_version": code_version(),
                      "date": datetime.date.today().isoformat()}

    def copy(self, src: Path, name: str) -> Path:
        """Copy a run's figure in (atomically) and record it in the manifest."""
        atomic_write_bytes(self.folder / name, src.read_bytes())
        path = self.folder / MANIFEST
        manifest = json.loads(path.read_text()) if path.is_file() else {}
        manifest[name] = self.stamp
        atomic_write_json(path, dict(sorted(manifest.items())))
        return self.folder / name


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


def fitting(model: str, out: Path, figures: Figures, quick: bool, repeats: int = REPEATS) -> str:
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
            figures.copy(run_dir / f"{fig}.png", f"{model}_{target}_{fig}.png")
    return repeats_table(results)


def seed_table(runs: Dict[str, List[dict]]) -> str:
    """Markdown: per rule, the held-out test accuracy of each seed's run (test trials are never
    used for training, selection or stopping), their mean and range, batches and wall time."""
    lines = ["| rule | seeds | held-out test acc per seed | mean | range | batches per seed | "
             "wall min (sum) |", "|---|---|---|---|---|---|---|"]
    for rule, ms in runs.items():
        acc = np.array([m["test_acc"] for m in ms])
        lines.append(f"| {rule} | {len(ms)} | {' / '.join(f'{a:.3f}' for a in acc)} | "
                     f"{acc.mean():.3f} | {acc.min():.3f}-{acc.max():.3f} | "
                     f"{' / '.join(str(m['epochs_run']) for m in ms)} | "
                     f"{sum(m['wall_s'] for m in ms) / 60:.1f} |")
    return "\n".join(lines)


def network_run(method: str, seed: int, run_dir: Path, quick: bool,
                resume: bool = False) -> dict:
    """One rule's run at one seed in `run_dir`; its metrics. With `resume`, a finished run
    there (metrics.json with a test accuracy, not interrupted) is reused as it is, an
    interrupted one continued from its last.npz (task_training.py --resume), a missing one
    made."""
    argv = ["--method", method, "--seed", str(seed), "--out_dir", str(run_dir),
            *(QUICK_TASK if quick else [])]
    if resume and (run_dir / "metrics.json").is_file():
        metrics = json.loads((run_dir / "metrics.json").read_text())
        if metrics.get("test_acc") is not None and not metrics.get("interrupted"):
            print(f"reusing the finished run {run_dir}", file=sys.stderr)
            return metrics
    if resume and (run_dir / "last.npz").is_file():
        return task_training.main([*argv, "--resume", str(run_dir)])
    if resume and run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"{run_dir} holds neither a finished run nor a last.npz to continue "
                        f"from: remove it and resume again")
    return task_training.main(argv)


def network(out: Path, figures: Figures, quick: bool, seeds: int = SEEDS,
            resume: bool = False) -> str:
    """The default network (200 GIF neurons, dense, default task) trained by every learning
    rule with its default flags at seeds 0..seeds-1: the held-out accuracy over seeds, and
    (seed 0) learning curves and the activity, weights and statistics of each trained network
    (the BPTT run's figures are the README's). `resume`: reuse or continue the runs already
    in `out` (network_run)."""
    histories, runs = {}, {}
    for method in RULES:
        runs[method] = []
        for seed in range(seeds):
            run_dir = out / f"network_{method}" if seed == 0 else \
                out / f"network_{method}_seed{seed}"
            runs[method].append(network_run(method, seed, run_dir, quick, resume))
        histories[method] = runs[method][0]["history"]
        for fig in NETWORK_FIGURES:
            figures.copy(out / f"network_{method}" / f"{fig}.png", f"network_{method}_{fig}.png")
    save_figure(plot_learning_curves(histories), out / "learning_curves.png")
    figures.copy(out / "learning_curves.png", "network_learning_curves.png")
    return seed_table(runs)


def online(out: Path, figures: Figures, quick: bool) -> str:
    """benchmarks/online_vs_bptt.py at 200 neurons, 500 to 5000 steps, then
    benchmarks/online_credit.py (expsm_diag's gradient per weight group against BPTT's)."""
    run_dir = out / "online"
    argv = (["--n_rec", "20", "--seq_lens", "310", "400", "--steps", "1", "--batch_size", "4",
             "--num_cue", "1"]
            if quick else ["--n_rec", "200", "--seq_lens", "500", "1000", "2000", "5000",
                           "--steps", "1", "--diag_max_len", "1000"])
    result = online_vs_bptt.main([*argv, "--out_dir", str(run_dir)])
    figures.copy(run_dir / "online_vs_bptt.png", "online_memory.png")
    lines = ["| n_rec | steps | method | s per batch | XLA MB | peak RSS increase MB |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if "error" in r:
            raise RuntimeError(f"online benchmark failed: {r['error']}")
        lines.append(f"| {r['n_rec']} | {r['T']} | {r['method']} | {r['s_per_batch']:.2f} | "
                     f"{r['xla_step_mb']:.1f} | {r['peak_rss_increase_mb']:.0f} |")
    credit_dir = out / "online_credit"
    credit = online_credit.main([*(QUICK_CREDIT if quick else []), "--out_dir", str(credit_dir)])
    figures.copy(credit_dir / "online_credit.png", "online_credit.png")
    return "\n".join(lines + [""] + result["checks"] + [
        "", "expsm_diag against BPTT, cosine per weight group (benchmarks/online_credit.py):",
        "", online_credit.markdown_table(credit["rows"])])


JOBS = {"hh": lambda o, f, q, r, resume: fitting("hh", o, f, q, r),
        "gif": lambda o, f, q, r, resume: fitting("gif", o, f, q, r),
        "network": lambda o, f, q, r, resume: network(o, f, q, r, resume),
        "online": lambda o, f, q, r, resume: online(o, f, q)}
RESUMABLE = ("network",)  # jobs that --resume can continue


def main(argv: Sequence[str] | None = None) -> str:
    """Run one reproduction; returns (and prints) its Markdown table."""
    p = argparse.ArgumentParser(prog="reproduce.py", description=__doc__.splitlines()[0])
    p.add_argument("what", choices=list(JOBS), help="which result to reproduce")
    p.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run")
    p.add_argument("--repeats", type=positive_int, default=None,
                   help=f"hh, gif: repeats of every method (default {REPEATS}, the authors' "
                        f"protocol; 2 with --quick); network: seeds of every rule (default "
                        f"{SEEDS}, also with --quick)")
    p.add_argument("--out", default=None,
                   help="a new folder for the run folders (default results/reproduce/<time>/)")
    p.add_argument("--figures", default=None,
                   help="folder for the README's figures (default figures/; with --quick, "
                        "the run folder's figures/)")
    p.add_argument("--resume", action="store_true",
                   help="network: continue the interrupted reproduction in --out (finished "
                        "runs reused, interrupted ones continued from their last.npz)")
    args = p.parse_args(argv)
    if args.resume and (args.what not in RESUMABLE or args.out is None):
        raise UserError(f"--resume continues a {' or '.join(RESUMABLE)} reproduction: give "
                        f"the folder of the interrupted one as --out")
    out = make_out_dir("reproduce", args.out, reuse=args.resume)
    t0 = time.perf_counter()
    repeats = args.repeats or (SEEDS if args.what == "network" else 2 if args.quick else REPEATS)
    command = " ".join(["python reproduce.py", *(argv if argv is not None else sys.argv[1:])])
    folder = args.figures or (out / "figures" if args.quick else Path("figures"))
    table = JOBS[args.what](out, Figures(folder, command), args.quick, repeats, args.resume)
    minutes = (time.perf_counter() - t0) / 60
    text = f"{table}\n\n`{command}`: {minutes:.1f} min\n"
    atomic_write_bytes(out / f"{args.what}.md", text.encode())
    print(text)
    return text


if __name__ == "__main__":
    sys.exit(cli(main, cache=True))
