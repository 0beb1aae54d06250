"""The neuron-fitting run shared by the GIF and HH scripts: flags, running every method,
scoring the fits, the results table, metrics.json and figures."""
from __future__ import annotations

import argparse
import math
import sys
from typing import Callable, NamedTuple, Sequence

import numpy as np
from tqdm import tqdm

from utils.fitting.data import LAYOUT_CHOICES
from utils.fitting.metrics import gamma_undefined_rate, gamma_warning, mean_gamma
from utils.fitting.objectives import make_objectives, population_mesh
from utils.fitting.optim import (BAD_LOSS, OPTIMIZERS, OptimResult, default_methods,
                                 method_names, run_method)
from utils.fitting.plots import plot_all, preload_pyplot
from utils.fitting.problem import FitDefaults, Problem, make_problem, simulate_params
from utils.run import (RunStatus, UserError, make_out_dir, nonneg_int, positive_float,
                       positive_int, write_config, write_metrics)

__all__ = ["parse_methods", "build_parser", "problem_from_flags", "Fits", "score", "fit_all",
           "format_table", "run_fitting"]


# --------------------------------------------------------------------------- flags

def parse_methods(text: str) -> list[str]:
    """argparse type: comma list of registered methods (utils.fitting.optim.OPTIMIZERS)."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in OPTIMIZERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown method {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(method_names())}")
    return list(dict.fromkeys(names))


def _methods_help() -> str:
    described = "; ".join(f"{name}: {opt.help}" for name, opt in OPTIMIZERS.items())
    return (f"comma list of methods among {','.join(method_names())} ({described}) "
            f"(default: {','.join(default_methods())})")


def build_parser(d: FitDefaults) -> argparse.ArgumentParser:
    """Every flag of a fitting script."""
    p = argparse.ArgumentParser(
        prog=f"{d.script}.py",
        description=f"Fit a {d.title} to membrane potentials or spike trains, by gradient and gradient-free "
                    "methods.")
    p.add_argument("--target", choices=["potential", "spike"], default="potential",
                   help="fit membrane potentials (voltage MSE) or spike trains (van Rossum loss, "
                        "scored by the gamma factor)")
    p.add_argument("--methods", type=parse_methods, default=list(default_methods()),
                   help=_methods_help())
    p.add_argument("--n_starts", type=positive_int, default=d.n_starts,
                   help="random starts of the gradient-based methods "
                        f"({', '.join(method_names('gradient-based'))})")
    p.add_argument("--maxiter", type=positive_int, default=200,
                   help="iterations per start of the gradient-based methods")
    p.add_argument("--presearch", choices=["on", "off"], default="on",
                   help="gradient-based methods in two stages where the model supports it "
                        "(GIF): fit with resets forced at the target's spike times, then "
                        "refine on the real loss from the best results; off: the real loss only")
    p.add_argument("--presearch_dt", type=positive_float, default=d.presearch_dt,
                   help="time step (ms) of a first, cheaper presearch stage on a coarser grid "
                        "(rounded to a whole number of --dt steps), whose best results the "
                        f"presearch on --dt then polishes (default: {d.presearch_dt or '--dt'}; "
                        "set it to --dt to skip that stage)")
    p.add_argument("--confirm", type=nonneg_int, default=3,
                   help="stop the remaining starts of a gradient-based method once this many "
                        "have converged to the same best loss (within 1e-6 relative; 0: run "
                        "every start to convergence)")
    p.add_argument("--n_refine", type=positive_int, default=2,
                   help="points each later stage refines (with --presearch on): the best "
                        "point scored so far, the earlier stage's best end by its own loss, "
                        "then its other ends by the real loss (one per minimum)")
    p.add_argument("--budget", type=positive_int, default=100,
                   help="simulations allowed to each gradient-free method")
    p.add_argument("--devices", type=positive_int, default=None,
                   help="devices to shard each population of parameter sets (starts, "
                        "candidates) over (default: every local device)")
    p.add_argument("--popsize", type=positive_int, default=20,
                   help="candidates per round (one batched simulation) of gradient-free methods")
    p.add_argument("--fit", default=",".join(d.fit),
                   help=f"comma list of parameters to fit (default {','.join(d.fit)})")
    p.add_argument("--fix", default="",
                   help="NAME=VALUE[,NAME=VALUE...]: set fixed parameters (units as in README)")
    p.add_argument("--bounds", default="",
                   help="NAME=LO:HI[,...]: search bounds of fitted parameters")
    p.add_argument("--data_current", help="CSV of input currents, one trace per row")
    p.add_argument("--data_voltage", help="CSV of recorded membrane potentials (mV), same shape")
    p.add_argument("--data_spikes", help="CSV of spike times (ms), one row per trace")
    p.add_argument("--current_unit", choices=["nA", "pA", "A"], default="nA",
                   help="unit of the values in --data_current")
    p.add_argument("--csv_header", choices=LAYOUT_CHOICES, default="auto",
                   help="line 1 of the trace files is a header (yes), data (no), or auto: a "
                        "header when it holds no number, or reads 0,1,...,T-1 (pandas' column "
                        "labels) where the other files' row counts confirm it")
    p.add_argument("--csv_index", choices=LAYOUT_CHOICES, default="auto",
                   help="the first column of the trace files is an index to drop (yes), data "
                        "(no), or auto: an index only when the header's first cell is empty, "
                        "'index' or 'Unnamed: 0'")
    p.add_argument("--dt", type=positive_float, default=None,
                   help=f"sampling interval in ms (default {d.dt} for the synthetic problem; "
                        "required with --data_current)")
    p.add_argument("--noise_mV", type=float, default=0.0,
                   help="std of Gaussian noise added to the synthetic voltage target (mV)")
    p.add_argument("--spike_tau", type=positive_float, default=d.spike_tau,
                   help="time constant (ms) of the van Rossum spike loss")
    p.add_argument("--gamma_window", type=positive_float, default=d.gamma_window,
                   help="coincidence window (ms) of the gamma factor (default "
                        f"{d.gamma_window:g}); the score is reported as null where a model "
                        "rate nu makes 2 nu window >= 1")
    p.add_argument("--repeats", type=positive_int, default=1,
                   help="run each method N times with different seeds; report mean and std")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--out_dir", default=None,
                   help=f"output folder (default results/{d.script}/<timestamp>/)")
    p.add_argument("--show", action="store_true", help="open the figures as well as saving them")
    d.add_args(p)
    return p


def problem_from_flags(d: FitDefaults, argv: Sequence[str]) -> Problem:
    """The fitting problem a script builds from these flags (nothing is run or written)."""
    args = build_parser(d).parse_args(argv)
    return make_problem(d.make_model(args), d, args)


# --------------------------------------------------------------------------- running

class Fits(NamedTuple):
    """What fit_all returns, by method: metrics.json entries, best-loss histories of the best
    run, and the traces (V [N, T], spike times) of its fitted parameters; `interrupted` is set
    when Ctrl-C stopped the fit (the methods finished before it are kept)."""

    metrics: dict
    histories: dict
    traces: dict
    interrupted: tuple = ()  # methods not finished because of Ctrl-C

    @property
    def was_interrupted(self) -> bool:
        return bool(self.interrupted)


def _finite(loss: float) -> bool:
    return math.isfinite(loss) and loss < BAD_LOSS


def _history(res: OptimResult) -> list:
    """[[wall_s, n_evals, best_loss], ...]; a best loss that is not finite yet is None."""
    return [[t, n, b if _finite(b) else None] for t, n, b in res.history]


def score(problem: Problem, res: OptimResult) -> tuple[dict, tuple[np.ndarray, list]]:
    """The metrics.json entry of one result, and its simulated voltage and spike times. A loss
    that is not finite (every point tried gave NaN or inf) is reported as None, with no RMSE
    and no gamma."""
    x = problem.box.to_params(res.z)
    params = {n: float(v) for n, v in zip(problem.free, x)}
    v, spikes = simulate_params(problem, params)
    finite = _finite(res.loss)
    rmse = (float(np.sqrt(np.mean((v - problem.v_target) ** 2)))
            if problem.v_target is not None and finite else None)
    gamma = (mean_gamma(spikes, problem.spikes_target, problem.gamma_window, problem.duration)
             if finite else None)
    rel = ({n: abs(params[n] - t) / abs(t) if t != 0 else abs(params[n])
            for n, t in problem.truth.items()} if problem.truth else None)
    entry = {"params": params, "loss": res.loss if finite else None, "wall_s": res.wall_s,
             "n_evals": res.n_evals, "rmse_mV": rmse, "gamma": gamma, "rel_err": rel,
             "history": _history(res)}
    return entry, (v, spikes)


def _repeats_summary(runs: Sequence[OptimResult]) -> dict:
    losses = np.array([res.loss if _finite(res.loss) else np.nan for res in runs])
    walls = np.array([res.wall_s for res in runs])
    return {"n": len(runs), "loss_mean": losses.mean(), "loss_std": losses.std(),
            "wall_s_mean": walls.mean(), "wall_s_std": walls.std(),
            "losses": losses, "wall_s": walls}


def _run_with_progress(problem: Problem, method: str, objectives, desc: str,
                       show_progress: bool, first_batch: Callable[[], None] | None = None,
                       **settings) -> OptimResult:
    gradient_free = OPTIMIZERS[method].kind == "gradient-free"
    with tqdm(total=settings["budget"] if gradient_free else None, desc=desc, unit="sim",
              disable=not show_progress, leave=False, mininterval=0.5) as bar:
        lowest = [math.inf]  # over all stages (each stage reports its own best)

        def progress(n, best):
            if first_batch is not None and bar.n == 0:
                first_batch()
            lowest[0] = min(lowest[0], best)
            bar.update(n)
            bar.set_postfix(best=f"{lowest[0]:.4g}" if _finite(lowest[0]) else "not finite")
        return run_method(method, objectives, len(problem.free), progress=progress, **settings)


def fit_all(problem: Problem, methods: Sequence[str], *, n_starts: int, budget: int,
            popsize: int, maxiter: int, seed: int, repeats: int = 1, n_refine: int = 2,
            confirm: int = 0, show_progress: bool = True, devices: int | None = 1,
            first_batch: Callable[[], None] | None = None) -> Fits:
    """Run every method `repeats` times (seeds seed, seed + 1000, ...); the best run of each is
    scored; populations are sharded over `devices` (None: all); `confirm` as in run_method;
    `first_batch` is called when a run has evaluated its first batch. Ctrl-C ends the fit: the
    methods already finished are returned, the one running (and those after it) listed in
    `interrupted`."""
    fits = Fits({}, {}, {})
    for k, method in enumerate(methods):
        try:
            # fresh: each method pays its own compilation
            objectives = make_objectives(problem, devices)
            runs = [_run_with_progress(problem, method, objectives,
                                       f"{method}" + (f" {r + 1}/{repeats}" if repeats > 1
                                                      else ""),
                                       show_progress, first_batch, n_starts=n_starts,
                                       budget=budget, popsize=popsize, maxiter=maxiter,
                                       seed=seed + 1000 * r, n_refine=n_refine,
                                       confirm=confirm)
                    for r in range(repeats)]
            best = min(runs, key=lambda res: res.loss)
            entry, traces = score(problem, best)
        except KeyboardInterrupt:
            return fits._replace(interrupted=tuple(methods[k:]))
        if repeats > 1:
            entry["repeats"] = _repeats_summary(runs)
        fits.metrics[method], fits.traces[method] = entry, traces
        fits.histories[method] = best.history
    return fits


def _fmt(value, spec: str, width: int) -> str:
    """A table cell: `value` formatted, '-' for None, right-aligned in `width` and at least
    one space from its left neighbour (too long: 3 significant digits)."""
    text = "-" if value is None else format(value, spec)
    if len(text) > width - 1:
        text = format(float(value), ".3g")
    return text.rjust(width)


def format_table(problem: Problem, results: dict) -> str:
    """The printed results table: one row per method; every number in %.4g-like widths, so
    that huge or tiny values keep the columns aligned."""
    units = problem.model.units
    labels = [f"{n} ({units[n]})" for n in problem.free]
    widths = [max(len(label), 11) for label in labels]
    head = (f"{'method':<12}{'loss':>12}{'RMSE mV':>11}{'gamma':>11}{'wall s':>10}{'sims':>9}"
            + "".join("  " + label.rjust(w) for label, w in zip(labels, widths)))
    lines = [head, "-" * len(head)]
    if problem.truth:
        lines.append(f"{'truth':<12}{'':>53}" + "".join(
            "  " + _fmt(problem.truth[n], ".6g", w) for n, w in zip(problem.free, widths)))
    for m, r in results.items():
        lines.append(f"{m:<12.12}{_fmt(r['loss'], '.5g', 12)}{_fmt(r['rmse_mV'], '.4g', 11)}"
                     f"{_fmt(r['gamma'], '.4g', 11)}{_fmt(r['wall_s'], '.4g', 10)}"
                     f"{_fmt(r['n_evals'], 'd', 9)}" + "".join(
                         "  " + _fmt(r['params'][n], ".6g", w)
                         for n, w in zip(problem.free, widths)))
        if "repeats" in r:
            rp = r["repeats"]
            lines.append(f"{'':<12}loss {rp['loss_mean']:.4g} +/- {rp['loss_std']:.2g}, wall "
                         f"{rp['wall_s_mean']:.2f} +/- {rp['wall_s_std']:.2f} s "
                         f"over {rp['n']} repeats")
    return "\n".join(lines)


def _warnings(problem: Problem, fits: Fits) -> list[str]:
    """One line per method whose loss is not finite, and one line for the run if the gamma
    factor was undefined for any method."""
    lines = [f"warning: method {m}: loss is not finite (NaN or inf at every point it tried); "
             "reported as null" for m, r in fits.metrics.items() if r["loss"] is None]
    undefined = {}
    for m, (_, spikes) in fits.traces.items():
        if fits.metrics[m]["loss"] is None:
            continue
        rate = gamma_undefined_rate(spikes, problem.spikes_target, problem.gamma_window,
                                    problem.duration)
        if rate is not None:
            undefined[m] = rate
    if undefined:
        lines.append(gamma_warning(problem.gamma_window, max(undefined.values()),
                                   list(undefined)))
    return lines


def run_fitting(d: FitDefaults, argv: Sequence[str] | None = None) -> dict:
    """Parse flags, validate every input, then create a fresh run folder, write config.json,
    fit inside RunStatus (status.json), print the table, write metrics.json and figures.

    Nothing is written before the flags and data are validated, and an existing non-empty
    --out_dir is refused. Ctrl-C keeps the methods finished so far: metrics.json gets them
    with "interrupted": true (no figures), then KeyboardInterrupt goes on to the caller (exit
    130 through utils.run.cli). A run in which no method reached a finite loss fails with a
    UserError after writing its metrics."""
    args = build_parser(d).parse_args(argv)
    model = d.make_model(args)
    problem = make_problem(model, d, args)
    population_mesh(args.devices)  # refuse more devices than present before writing anything
    out_dir = make_out_dir(d.script, args.out_dir, reuse=False)
    write_config(out_dir, args)
    with RunStatus(out_dir):
        fits = fit_all(problem, args.methods, n_starts=args.n_starts, budget=args.budget,
                       popsize=args.popsize, maxiter=args.maxiter, seed=args.seed,
                       repeats=args.repeats, n_refine=args.n_refine, confirm=args.confirm,
                       devices=args.devices,
                       # pyplot's import then overlaps the simulations, not the compilation
                       # (a display backend is set up in the main thread: not with --show)
                       first_batch=None if args.show else preload_pyplot)
        metrics = {"model": model.name, "target": problem.target, "dt_ms": problem.dt,
                   "source": problem.source, "free_params": problem.free,
                   "fixed_params": problem.fixed, "units": dict(model.units),
                   "truth": problem.truth, "gamma_window_ms": problem.gamma_window,
                   "methods": fits.metrics}
        if fits.was_interrupted:
            metrics["interrupted"] = True
            metrics["not_finished"] = fits.interrupted
        write_metrics(out_dir, metrics)
        if fits.metrics:
            print(format_table(problem, fits.metrics))
        for line in _warnings(problem, fits):
            print(line, file=sys.stderr)
        if fits.was_interrupted:
            print(f"interrupted during {fits.interrupted[0]}: results of "
                  f"{', '.join(fits.metrics) or 'no method'} in {out_dir}", file=sys.stderr)
            raise KeyboardInterrupt
        plot_all(problem, fits.metrics, fits.histories, fits.traces, out_dir, show=args.show)
        print(f"results in {out_dir}")
        if not any(r["loss"] is not None for r in fits.metrics.values()):
            raise UserError(f"no method reached a finite loss (results in {out_dir})")
    return metrics
