"""The neuron-fitting run shared by the GIF and HH scripts, once their flags are parsed
(utils/fitting/entry.py: run_fitting): running every method, scoring the fits, the results
table, metrics.json and figures."""
from __future__ import annotations

import functools
import importlib
import math
import sys
from typing import Callable, NamedTuple, Sequence

import numpy as np
from tqdm import tqdm

from utils.fitting.config import FitConfig, FitDefaults, parse_flags
from utils.fitting.methods import METHODS
from utils.fitting.metrics import gamma_undefined_rate, gamma_warning, mean_gamma
from utils.fitting.multistart import run_method
from utils.fitting.objectives import make_objectives, rows_mesh
from utils.fitting.optim import BAD_LOSS, Objectives, OptimResult
from utils.fitting.efeatures import compare_features, format_features
from utils.fitting.plots import plot_all, plot_test_sweeps
from utils.fitting.problem import Problem, compile_simulations, make_problem, traces_of
from utils.fitting.rows import cell_row, format_test, or_dash, write_cells_csv
from utils.fitting.verdict import held_out_traces, judge, score_sweeps, test_scores
from utils.run import (RunStatus, UserError, in_background, make_out_dir, write_config,
                       write_metrics)

__all__ = ["problem_from_flags", "Fits", "score", "fit_all", "method_entry", "format_table",
           "run_problem"]


def problem_from_flags(d: FitDefaults, argv: Sequence[str]) -> Problem:
    """The fitting problem a script builds from these flags (nothing is run or written)."""
    config = parse_flags(d, argv)
    return make_problem(d.make_model(config), d, config)


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
    v, spikes = traces_of(problem, params)
    finite = _finite(res.loss)
    rmse = (float(np.sqrt(np.mean((v - problem.v_target) ** 2)))
            if problem.v_target is not None and finite else None)
    gamma = (mean_gamma(spikes, problem.spikes_target, problem.gamma_window, problem.duration)
             if finite else None)
    rel = ({n: abs(params[n] - t) / abs(t) if t != 0 else abs(params[n])
            for n, t in problem.truth.items()} if problem.truth else None)
    entry = {"params": params, "loss": res.loss if finite else None, "wall_s": res.wall_s,
             "n_evals": res.n_evals, "rmse_mV": rmse, "gamma": gamma, "rel_err": rel,
             **_judged(problem, res.z, params, v, spikes, finite), "history": _history(res)}
    return entry, (v, spikes)


def _judged(problem: Problem, z: np.ndarray, params: dict, v: np.ndarray, spikes: list,
            finite: bool) -> dict:
    """The verdict of a fit (utils/fitting/verdict.py): `status` fitted, poor or failed with
    its `reason`, and on recordings the scores of the fitted sweeps (`fitted_sweeps`) and of
    the held-out ones (`test`)."""
    if not finite:
        return {"status": "failed", "reason": "no finite loss"}
    out: dict = {}
    fitted = None
    if problem.v_target is not None:
        fitted = score_sweeps(problem.current, problem.v_target, v, problem.spikes_target,
                              spikes, problem.dt, problem.gamma_window, problem.sweep_numbers)
        out["fitted_sweeps"] = {k: x for k, x in fitted.items() if k != "sweeps"}
    test = test_scores(problem, params)
    if test is not None:
        out["test"] = test
    reasons = judge(problem, z, fitted, test) if fitted is not None else []
    return {"status": "poor" if reasons else "fitted", "reason": "; ".join(reasons) or None,
            **out}


def _repeats_summary(runs: Sequence[OptimResult]) -> dict:
    losses = np.array([res.loss if _finite(res.loss) else np.nan for res in runs])
    walls = np.array([res.wall_s for res in runs])
    return {"n": len(runs), "loss_mean": losses.mean(), "loss_std": losses.std(),
            "wall_s_mean": walls.mean(), "wall_s_std": walls.std(),
            "losses": losses, "wall_s": walls}


def _run_with_progress(objectives: Objectives, method: str, dim: int, desc: str,
                       show_progress: bool, first_batch: Callable[[], None] | None = None,
                       **settings) -> list[OptimResult]:
    gradient_free = METHODS[method].kind == "gradient-free"
    with tqdm(total=settings["budget"] if gradient_free else None, desc=desc, unit="sim",
              disable=not show_progress, leave=False, mininterval=0.5) as bar:
        lowest = [math.inf]  # over all stages (each stage reports its own best)

        def progress(n, best):
            if first_batch is not None and bar.n == 0:
                first_batch()
            lowest[0] = min(lowest[0], best)
            bar.update(n)
            bar.set_postfix(best=f"{lowest[0]:.4g}" if _finite(lowest[0]) else "not finite")
        return run_method(method, objectives, dim, progress=progress, **settings)


def fit_all(problems: Sequence[Problem], methods: Sequence[str], *, n_starts: int,
            budget: int, popsize: int, maxiter: int, seed: int, repeats: int = 1,
            n_refine: int = 2, confirm: int = 0, show_progress: bool = True,
            devices: int | None = 1,
            first_batch: Callable[[], None] | None = None) -> list[Fits]:
    """Run every method on the problems (one cell, or cells of one kind fitted together: see
    utils/fitting/objectives.py), `repeats` times (seeds seed, seed + 1000, ...); each cell's
    best run of each method is scored. The rows of each batch are sharded over `devices`
    (None: all); `confirm` as in run_method; `first_batch` is called when a run has evaluated
    its first batch. One Fits per problem. Ctrl-C ends the fit: the methods already finished are
    returned, the one running (and those after it) listed in `interrupted`."""
    fits = [Fits({}, {}, {}) for _ in problems]
    for k, method in enumerate(methods):
        try:
            # fresh: each method pays its own compilation
            objectives = make_objectives(problems, devices)
            runs = [_run_with_progress(objectives, method, len(problems[0].free),
                                       f"{method}" + (f" {r + 1}/{repeats}" if repeats > 1
                                                      else ""),
                                       show_progress, first_batch, n_starts=n_starts,
                                       budget=budget, popsize=popsize, maxiter=maxiter,
                                       seed=seed + 1000 * r, n_refine=n_refine,
                                       confirm=confirm)
                    for r in range(repeats)]
        except KeyboardInterrupt:
            return [f._replace(interrupted=tuple(methods[k:])) for f in fits]
        for c, (problem, cell_fits) in enumerate(zip(problems, fits)):
            entry, traces, history = method_entry(problem, [rep[c] for rep in runs])
            cell_fits.metrics[method], cell_fits.traces[method] = entry, traces
            cell_fits.histories[method] = history
    return fits


def method_entry(problem: Problem, runs: Sequence[OptimResult]) -> tuple[dict, tuple, list]:
    """A method's metrics.json entry from its repeated runs (the best one scored, the spread
    over the repeats added where there are several), the best run's traces and history."""
    best = min(runs, key=lambda res: res.loss)
    entry, traces = score(problem, best)
    if len(runs) > 1:
        entry["repeats"] = _repeats_summary(runs)
    return entry, traces, best.history


def _fmt(value, spec: str, width: int) -> str:
    """A table cell: `value` formatted, '-' for None, right-aligned in `width` and at least
    one space from its left neighbour (too long: 3 significant digits)."""
    text = or_dash(value, spec)
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


POOR_HINT = "what to try next: README, 'When a fit is poor'"


def best_method(fits: Fits) -> str | None:
    """The method of lowest finite loss (None: none reached one)."""
    finite = {m: r["loss"] for m, r in fits.metrics.items() if r["loss"] is not None}
    return min(finite, key=finite.get) if finite else None


def recording_report(problem: Problem, fits: Fits, method: str | None,
                     test: tuple[np.ndarray, list] | None) -> dict | None:
    """For a fit of recordings: `method`'s eFEL features beside the cell's on the fitted
    sweeps and, given its voltage and spike times on them (`test`), the held-out ones
    (utils/fitting/efeatures.py); None otherwise."""
    if problem.truth is not None or problem.v_target is None or method is None:
        return None
    resets = not problem.model.action_potentials  # eFEL finds the spikes marked in V

    def features(current, v_cell, traces, numbers):
        return compare_features(current, v_cell, traces[0], problem.dt, numbers,
                                traces[1] if resets else None)
    report = {"method": method, "fitted_sweeps": features(
        problem.current, problem.v_target, fits.traces[method], problem.sweep_numbers)}
    if test is not None:
        report["test_sweeps"] = features(problem.test.current, problem.test.voltage, test,
                                         problem.test.numbers)
    return report


def _report_text(report: dict) -> str:
    """The features table(s) printed after the results table."""
    parts = [format_features(report["fitted_sweeps"],
                             f"features, fitted sweeps ({report['method']})")]
    if "test_sweeps" in report:
        parts.append(format_features(report["test_sweeps"], "features, test sweeps"))
    return "\n".join(parts)


def _warnings(problem: Problem, fits: Fits) -> list[str]:
    """One line per method whose loss is not finite or whose fit is poor (with the reason),
    and one line for the run if the gamma factor was undefined for any method."""
    lines = [f"warning: method {m}: loss is not finite (NaN or inf at every point it tried); "
             "reported as null" for m, r in fits.metrics.items() if r["loss"] is None]
    lines += [f"poor fit ({m}): {r['reason']}; {POOR_HINT}" for m, r in fits.metrics.items()
              if r.get("status") == "poor"]
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


def _metrics(problem: Problem, fits: Fits) -> dict:
    """metrics.json: the problem, then every finished method's entry."""
    metrics = {"model": problem.model.name, "target": problem.target, "dt_ms": problem.dt,
               "source": problem.source, "free_params": problem.free,
               "fixed_params": problem.fixed, "units": dict(problem.model.units),
               "truth": problem.truth, "gamma_window_ms": problem.gamma_window,
               "spike_weight": problem.spike_weight, "estimates": (
                   problem.estimates.as_dict() if problem.estimates is not None else None),
               "methods": fits.metrics}
    if fits.was_interrupted:
        metrics["interrupted"] = True
        metrics["not_finished"] = fits.interrupted
    return metrics


def _prepare_after_fit(problem: Problem, config: FitConfig) -> Callable[[], None] | None:
    """What readies the scoring, the features report and the figures while the fit's
    simulations run, once its first batch is back (after the compilation): pyplot and eFEL
    imported, the one-cell simulations compiled; None with --show (a display backend is set
    up in the main thread)."""
    if config.show:
        return None
    steps = [functools.partial(importlib.import_module, "matplotlib.pyplot"),
             functools.partial(compile_simulations, problem)]
    if problem.v_target is not None and problem.truth is None:  # the features report
        steps.insert(1, functools.partial(importlib.import_module, "efel"))
    return functools.cache(functools.partial(in_background, *steps))  # one thread


def run_problem(d: FitDefaults, config: FitConfig, problem: Problem,
                cell: str | None = None) -> dict:
    """`run` on a problem built already; `cell`: the identifier of the one recorded cell it
    fits (--data), whose row goes into cells.csv and metrics.json's `cells` as well."""
    rows_mesh(config.devices)  # refuse more devices than present before writing
    out_dir = make_out_dir(d.script, config.out_dir, reuse=False)
    write_config(out_dir, config.to_flat())
    with RunStatus(out_dir):
        fits, = fit_all([problem], config.methods, n_starts=config.n_starts,
                        budget=config.budget, popsize=config.popsize, maxiter=config.maxiter,
                        seed=config.seed, repeats=config.repeats, n_refine=config.n_refine,
                        confirm=config.confirm, devices=config.devices,
                        first_batch=_prepare_after_fit(problem, config))
        metrics = _metrics(problem, fits)
        method = best_method(fits)
        test = (held_out_traces(problem, fits.metrics[method]["params"])
                if problem.test is not None and method is not None else None)
        report = recording_report(problem, fits, method, test)
        if report is not None:
            metrics["features"] = report
        if cell is not None:
            metrics["cells"] = [cell_row(cell, problem.free, fits.metrics, wall_s=None)]
            write_cells_csv(out_dir, problem.free, metrics["cells"])
        write_metrics(out_dir, metrics)
        if fits.metrics:
            print(format_table(problem, fits.metrics))
        if report is not None:
            print(_report_text(report))
        if test is not None:
            print(format_test(fits.metrics[method]["test"]))
        for line in _warnings(problem, fits):
            print(line, file=sys.stderr)
        if fits.was_interrupted:
            print(f"interrupted during {fits.interrupted[0]}: results of "
                  f"{', '.join(fits.metrics) or 'no method'} in {out_dir}", file=sys.stderr)
            raise KeyboardInterrupt
        plot_all(problem, fits.metrics, fits.histories, fits.traces, out_dir, show=config.show)
        if report is not None and test is not None:
            plot_test_sweeps(problem, method, test[0], fits.metrics[method]["test"],
                             out_dir / "test_sweeps.png", show=config.show)
        print(f"results in {out_dir}")
        if not any(r["loss"] is not None for r in fits.metrics.values()):
            raise UserError(f"no method reached a finite loss (results in {out_dir})")
    return metrics
