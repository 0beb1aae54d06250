"""The neuron-fitting run shared by the GIF and HH scripts: flags, running every method,
scoring the fits, the results table, metrics.json and figures."""
from __future__ import annotations

import argparse
from typing import NamedTuple, Sequence

import numpy as np
from tqdm import tqdm

from utils.fitting.metrics import mean_gamma
from utils.fitting.objectives import make_objectives
from utils.fitting.optim import OPTIMIZERS, OptimResult, default_methods, method_names, run_method
from utils.fitting.plots import plot_all
from utils.fitting.problem import FitDefaults, Problem, make_problem, simulate_params
from utils.run import make_out_dir, positive_float, positive_int, write_config, write_metrics

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
    p.add_argument("--n_refine", type=positive_int, default=4,
                   help="presearch optima refined on the real loss (with --presearch on)")
    p.add_argument("--budget", type=positive_int, default=100,
                   help="simulations allowed to each gradient-free method")
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
    p.add_argument("--dt", type=positive_float, default=None,
                   help=f"sampling interval in ms (default {d.dt} for the synthetic problem; "
                        "required with --data_current)")
    p.add_argument("--noise_mV", type=float, default=0.0,
                   help="std of Gaussian noise added to the synthetic voltage target (mV)")
    p.add_argument("--spike_tau", type=positive_float, default=d.spike_tau,
                   help="time constant (ms) of the van Rossum spike loss")
    p.add_argument("--gamma_window", type=positive_float, default=2.0,
                   help="coincidence window (ms) of the gamma factor")
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
    run, and the traces (V [N, T], spike times) of its fitted parameters."""

    metrics: dict
    histories: dict
    traces: dict


def score(problem: Problem, res: OptimResult) -> tuple[dict, tuple[np.ndarray, list]]:
    """The metrics.json entry of one result, and its simulated voltage and spike times."""
    x = problem.box.to_params(res.z)
    params = {n: float(v) for n, v in zip(problem.free, x)}
    v, spikes = simulate_params(problem, params)
    rmse = (float(np.sqrt(np.mean((v - problem.v_target) ** 2)))
            if problem.v_target is not None else None)
    gamma = mean_gamma(spikes, problem.spikes_target, problem.gamma_window, problem.duration)
    rel = ({n: abs(params[n] - t) / abs(t) if t != 0 else abs(params[n])
            for n, t in problem.truth.items()} if problem.truth else None)
    entry = {"params": params, "loss": res.loss, "wall_s": res.wall_s, "n_evals": res.n_evals,
             "rmse_mV": rmse, "gamma": gamma, "rel_err": rel}
    return entry, (v, spikes)


def _repeats_summary(runs: Sequence[OptimResult]) -> dict:
    losses = np.array([res.loss for res in runs])
    walls = np.array([res.wall_s for res in runs])
    return {"n": len(runs), "loss_mean": losses.mean(), "loss_std": losses.std(),
            "wall_s_mean": walls.mean(), "wall_s_std": walls.std(),
            "losses": losses, "wall_s": walls}


def _run_with_progress(problem: Problem, method: str, objectives, desc: str,
                       show_progress: bool, **settings) -> OptimResult:
    gradient_free = OPTIMIZERS[method].kind == "gradient-free"
    with tqdm(total=settings["budget"] if gradient_free else None, desc=desc, unit="sim",
              disable=not show_progress, leave=False, mininterval=0.5) as bar:
        def progress(n, best):
            bar.update(n)
            bar.set_postfix(best=f"{best:.4g}")
        return run_method(method, objectives, len(problem.free), progress=progress, **settings)


def fit_all(problem: Problem, methods: Sequence[str], *, n_starts: int, budget: int,
            popsize: int, maxiter: int, seed: int, repeats: int = 1, n_refine: int = 4,
            show_progress: bool = True) -> Fits:
    """Run every method `repeats` times (seeds seed, seed + 1000, ...); the best run of each is
    scored."""
    fits = Fits({}, {}, {})
    for method in methods:
        objectives = make_objectives(problem)  # fresh: each method pays its own compilation
        runs = [_run_with_progress(problem, method, objectives,
                                   f"{method}" + (f" {r + 1}/{repeats}" if repeats > 1 else ""),
                                   show_progress, n_starts=n_starts, budget=budget,
                                   popsize=popsize, maxiter=maxiter, seed=seed + 1000 * r,
                                   n_refine=n_refine)
                for r in range(repeats)]
        best = min(runs, key=lambda res: res.loss)
        entry, fits.traces[method] = score(problem, best)
        if repeats > 1:
            entry["repeats"] = _repeats_summary(runs)
        fits.metrics[method] = entry
        fits.histories[method] = best.history
    return fits


def format_table(problem: Problem, results: dict) -> str:
    """The printed results table: one row per method."""
    units = problem.model.units
    head = (f"{'method':<12}{'loss':>12}{'RMSE mV':>10}{'gamma':>8}{'wall s':>9}{'sims':>8}  "
            + "  ".join(f"{n} ({units[n]})" for n in problem.free))
    lines = [head, "-" * len(head)]
    if problem.truth:
        lines.append(f"{'truth':<12}{'':>47}  " + "  ".join(
            f"{problem.truth[n]:.6g}".rjust(len(f'{n} ({units[n]})')) for n in problem.free))
    for m, r in results.items():
        rmse = f"{r['rmse_mV']:.3f}" if r["rmse_mV"] is not None else "-"
        gam = f"{r['gamma']:.3f}" if r["gamma"] is not None else "-"
        lines.append(f"{m:<12}{r['loss']:>12.5g}{rmse:>10}{gam:>8}{r['wall_s']:>9.2f}"
                     f"{r['n_evals']:>8d}  " + "  ".join(
                         f"{r['params'][n]:.6g}".rjust(len(f'{n} ({units[n]})'))
                         for n in problem.free))
        if "repeats" in r:
            rp = r["repeats"]
            lines.append(f"{'':<12}loss {rp['loss_mean']:.4g} +/- {rp['loss_std']:.2g}, wall "
                         f"{rp['wall_s_mean']:.2f} +/- {rp['wall_s_std']:.2f} s "
                         f"over {rp['n']} repeats")
    return "\n".join(lines)


def run_fitting(d: FitDefaults, argv: Sequence[str] | None = None) -> dict:
    """Parse flags, fit, print the table, write config.json, metrics.json and figures."""
    args = build_parser(d).parse_args(argv)
    model = d.make_model(args)
    problem = make_problem(model, d, args)
    out_dir = make_out_dir(d.script, args.out_dir)
    write_config(out_dir, args)
    fits = fit_all(problem, args.methods, n_starts=args.n_starts, budget=args.budget,
                   popsize=args.popsize, maxiter=args.maxiter, seed=args.seed,
                   repeats=args.repeats, n_refine=args.n_refine)
    metrics = {"model": model.name, "target": problem.target, "dt_ms": problem.dt,
               "source": problem.source, "free_params": problem.free,
               "fixed_params": problem.fixed, "units": dict(model.units),
               "truth": problem.truth, "methods": fits.metrics}
    write_metrics(out_dir, metrics)
    plot_all(problem, fits.metrics, fits.histories, fits.traces, out_dir, show=args.show)
    print(format_table(problem, fits.metrics))
    print(f"results in {out_dir}")
    return metrics
