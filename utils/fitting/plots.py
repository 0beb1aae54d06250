"""Figures of a fitting run: target vs fitted traces, best loss vs wall time, repeats. They draw
what the run computed (the traces simulated when scoring each fit); nothing is simulated here."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from utils.fitting.problem import Problem
from utils.fitting.rows import or_dash
from utils.run import save_figure

Traces = Mapping[str, tuple[np.ndarray, list]]  # method -> (V [N, T] mV, spike times per trace)

COLORS = {"gradient": "tab:red", "DE": "tab:blue", "PSO": "tab:green",
          "TwoPointsDE": "tab:purple", "bayesian": "tab:orange"}


def _pyplot():
    # here, not at the top: a slow import, paid by a run only; it picks a headless backend
    # by itself where no display exists
    import matplotlib.pyplot as plt

    return plt


def plot_traces(problem: Problem, traces: Traces, path: Path, show: bool = False) -> Path:
    """The paper's figure: input current on top, then target vs fit for each method."""
    plt = _pyplot()
    n_tr = problem.current.shape[0]
    rows = 1 + len(traces)
    fig, axes = plt.subplots(rows, n_tr, figsize=(3.2 * n_tr, 1.3 + 1.8 * len(traces)),
                             sharex="col", squeeze=False,
                             gridspec_kw={"height_ratios": [0.6] + [1] * len(traces)})
    t = np.arange(problem.current.shape[1]) * problem.dt
    for j in range(n_tr):
        axes[0, j].plot(t, problem.current[j], color="k", lw=0.8)
        axes[0, j].set_title(f"sweep {problem.numbers[j]}" if problem.numbers
                             else f"trace {j + 1}", fontsize=9)
    axes[0, 0].set_ylabel("I (nA)")
    for i, (method, (v, spikes)) in enumerate(traces.items(), start=1):
        for j in range(n_tr):
            ax = axes[i, j]
            if problem.v_target is not None:
                ax.plot(t, problem.v_target[j], color="0.55", lw=1.0, label="target")
            ax.plot(t, v[j], color=COLORS.get(method, "k"), lw=0.8, label=method)
            if problem.target == "spike":  # spike ticks above the traces: target, then fit
                top = max(v[j].max(), -np.inf if problem.v_target is None
                          else problem.v_target[j].max())
                ax.plot(problem.spikes_target[j], np.full(len(problem.spikes_target[j]),
                                                          top + 5), "|", color="k", ms=6)
                ax.plot(spikes[j], np.full(len(spikes[j]), top + 10), "|",
                        color=COLORS.get(method, "k"), ms=6)
        axes[i, 0].set_ylabel(f"{method}\nV (mV)")
        axes[i, 0].legend(fontsize=7, loc="upper right")
    for j in range(n_tr):
        axes[-1, j].set_xlabel("time (ms)")
    _fixed_margins(fig)
    fig.suptitle(f"{problem.model.name.upper()} fit to {problem.target} "
                 f"({problem.source}); gray: target", fontsize=10,
                 y=1 - 0.08 / fig.get_size_inches()[1], va="top")
    return save_figure(fig, path, show, tight=False)


def _fixed_margins(fig, left: float = 0.85, right: float = 0.15, bottom: float = 0.5,
                   top: float = 0.65, gap: float = 0.55) -> None:
    """Margins and gaps between panels in inches, room enough for the tick labels: measuring
    them instead (tight_layout) costs an extra drawing pass."""
    width, height = fig.get_size_inches()
    n_rows, n_cols = fig.axes[0].get_gridspec().get_geometry()
    panel_w = (width - left - right - gap * (n_cols - 1)) / n_cols
    panel_h = (height - top - bottom - 0.3 * (n_rows - 1)) / n_rows
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=gap / panel_w, hspace=0.3 / panel_h)


def plot_loss_vs_time(histories: Mapping[str, list], path: Path, show: bool = False) -> Path:
    """Best loss so far against wall time, one line per method."""
    plt = _pyplot()
    from matplotlib.ticker import LogFormatter

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for method, hist in histories.items():
        if hist:
            h = np.array(hist)
            ax.step(h[:, 0], np.maximum(h[:, 2], 1e-12), where="post",
                    color=COLORS.get(method, "k"), label=method)
    ax.set_yscale("log")
    # plain-text labels (1e-05): the default's typeset ones are slow to draw
    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=True))
    ax.set_xlabel("wall time (s, compilation included)")
    ax.set_ylabel("best loss")
    ax.legend()
    _fixed_margins(fig, top=0.2)
    return save_figure(fig, path, show, tight=False)


def plot_repeats(results: Mapping[str, dict], path: Path, show: bool = False) -> Path:
    """Loss and wall time as mean +/- std over repeats."""
    plt = _pyplot()
    methods = [m for m in results if "repeats" in results[m]]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    x = np.arange(len(methods))
    cols = [COLORS.get(m, "k") for m in methods]
    rp = [results[m]["repeats"] for m in methods]
    a1.bar(x, [r["loss_mean"] for r in rp], yerr=[r["loss_std"] for r in rp], color=cols)
    a1.set_yscale("log")
    a1.set_ylabel("final loss")
    a2.bar(x, [r["wall_s_mean"] for r in rp], yerr=[r["wall_s_std"] for r in rp], color=cols)
    a2.set_ylabel("wall time (s)")
    for a in (a1, a2):
        a.set_xticks(x, methods, rotation=30, ha="right")
    fig.suptitle(f"mean +/- std over {rp[0]['n'] if rp else 0} repeats", fontsize=10)
    return save_figure(fig, path, show)


def plot_all(problem: Problem, results: Mapping[str, dict], histories: Mapping[str, list],
             traces: Traces, out_dir: Path, show: bool = False) -> list[Path]:
    """Every figure of a fitting run, saved as PNG in out_dir."""
    paths = [plot_traces(problem, traces, Path(out_dir) / "traces.png", show),
             plot_loss_vs_time(histories, Path(out_dir) / "loss_vs_time.png", show)]
    if any("repeats" in r for r in results.values()):
        paths.append(plot_repeats(results, Path(out_dir) / "repeats.png", show))
    return paths


MAX_CELL_PANELS = 12  # cells and held-out sweeps drawn in one figure (the first ones)


def plot_test_sweeps(problem: Problem, method: str, v_model: np.ndarray, test: dict,
                     path: Path, show: bool = False) -> Path:
    """The held-out sweeps (up to MAX_CELL_PANELS): recording in gray, the fitted model in
    the method's colour, each titled with its spike counts and gamma factor."""
    plt = _pyplot()
    held = problem.test
    n = min(len(held.numbers), MAX_CELL_PANELS)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.2 * rows), squeeze=False,
                             sharex=True)
    t = np.arange(held.voltage.shape[1]) * problem.dt
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        score = test["sweeps"][k]
        ax.plot(t, held.voltage[k], color="0.55", lw=0.6)
        ax.plot(t, v_model[k], color=COLORS.get(method, "k"), lw=0.6)
        ax.set_title(f"sweep {score['sweep']} ({score['stimulus']}): {score['spikes_cell']} vs "
                     f"{score['spikes_model']} spikes, gamma {or_dash(score['gamma'], '.2f')}",
                     fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("V (mV)")
    for ax in axes[-1]:
        ax.set_xlabel("time (ms)")
    fig.suptitle(f"held-out sweeps: cell (gray) and {method} fit; median gamma inside the "
                 f"depolarizing steps {or_dash(test['median_gamma_evoked'], '.2f')}, "
                 f"whole sweeps {or_dash(test['median_gamma'], '.2f')}", fontsize=10)
    return save_figure(fig, path, show)


def plot_cell_fits(panels: Mapping[str, tuple], path: Path, show: bool = False,
                   n_fitted: int | None = None) -> Path:
    """A grid of fitted cells, by cell: (problem, method, fitted V [N, T]), drawn as the first
    sweep's target and the fit; `n_fitted`: how many cells were fitted in all."""
    plt = _pyplot()
    items = list(panels.items())[:MAX_CELL_PANELS]
    cols = min(4, max(1, len(items)))
    rows = max(1, -(-len(items) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False,
                             layout="constrained")
    for ax, (cell, (problem, method, v)) in zip(axes.flat, items):
        t = np.arange(problem.current.shape[1]) * problem.dt
        ax.plot(t, problem.v_target[0], color="0.55", lw=1.0, label="target")
        ax.plot(t, v[0], color=COLORS.get(method, "k"), lw=0.8, label=method)
        ax.set_title(cell, fontsize=8)
        ax.set_xlabel("time (ms)", fontsize=8)
        ax.set_ylabel("V (mV)", fontsize=8)
    for ax in list(axes.flat)[len(items):]:
        ax.set_visible(False)
    if items:
        axes[0, 0].legend(fontsize=7, loc="upper right")
    total = len(panels) if n_fitted is None else n_fitted
    fig.suptitle(f"first sweep of {len(items)} of {total} fitted cells", fontsize=10)
    return save_figure(fig, path, show)


def plot_param_distributions(rows: Sequence[dict], free: Sequence[str], units: Mapping[str, str],
                             path: Path, show: bool = False) -> Path:
    """Each fitted parameter across the fitted cells: a histogram with the cells as ticks."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(free), figsize=(3.0 * len(free), 2.8), squeeze=False,
                             layout="constrained")
    done = [r for r in rows if r["status"] in ("fitted", "poor")]
    for ax, name in zip(axes[0], free):
        values = np.array([r["params"][name] for r in done], float)
        ax.hist(values, bins=max(1, min(20, len(values))), color="tab:red", alpha=0.6)
        ax.plot(values, np.zeros(len(values)), "|", color="k", ms=12)
        ax.set_xlabel(f"{name} ({units[name]})")
    axes[0, 0].set_ylabel("cells")
    fig.suptitle(f"fitted parameters of {len(done)} cells", fontsize=10)
    return save_figure(fig, path, show)


def plot_cells(panels: Mapping[str, tuple], rows: Sequence[dict], free: Sequence[str],
               units: Mapping[str, str], out_dir: Path, show: bool = False) -> list[Path]:
    """The figures of a run over many cells: cells_fits.png (`panels`: see plot_cell_fits)
    and cells_params.png."""
    n_fitted = sum(r["status"] in ("fitted", "poor") for r in rows)
    return [plot_cell_fits(panels, Path(out_dir) / "cells_fits.png", show, n_fitted),
            plot_param_distributions(rows, free, units, Path(out_dir) / "cells_params.png",
                                     show)]
