"""Figures for the E/I network: activity, training curve, weight distributions, activity
statistics, connectivity.

Every function returns a `matplotlib.figure.Figure` that belongs to no window and selects no
backend (no pyplot state): save it with utils.run.save_figure; `show_pngs` displays saved
figures for --show.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from utils.training.analysis import ZERO_TOL, family_log_density

__all__ = ["show_pngs", "plot_activity", "plot_training_curve",
           "plot_weight_distributions", "plot_activity_stats", "plot_connectivity",
           "plot_learning_curves"]


def show_pngs(paths: Sequence[str | Path]) -> None:
    """Display saved PNG figures in windows of matplotlib's default backend (--show).

    pyplot is imported here, not at the top, so that it (and the GUI backend it picks at its
    first window) is only touched by a run asked to show figures; no other code uses it.
    """
    import matplotlib.pyplot as pyplot

    for path in paths:
        img = pyplot.imread(str(path))
        fig = pyplot.figure(figsize=(img.shape[1] / 110, img.shape[0] / 110))
        fig.figimage(img)
        fig.canvas.manager.set_window_title(Path(path).name)
    pyplot.show()


def plot_activity(X: np.ndarray, sim: Dict[str, np.ndarray], labels: np.ndarray, n_exc: int,
                  dt: float, trials: Sequence[int] = (0, 1, 2),
                  input_groups: Optional[Dict[str, slice]] = None):
    """Per trial (one column each): input raster, E and I rasters, V of the recorded cells
    (sim["V_cells"]), readout."""
    trials = [t for t in trials if t < X.shape[1]]
    T = X.shape[0]
    t = np.arange(T) * dt
    groups = ", ".join(input_groups or {}) or "channels"
    fig = Figure(figsize=(4.5 * len(trials), 11))
    axes = fig.subplots(5, len(trials), sharex=True, squeeze=False)
    for col, k in enumerate(trials):
        spikes = sim["spikes"][:, k] > 0.5
        ax = axes[0, col]
        ti, ni = np.nonzero(X[:, k] > 0.5)
        ax.plot(ti * dt, ni, "|", ms=2, color="k")
        ax.set_title(f"trial {k}: label {int(labels[k])}")
        ax.set_ylabel(f"input channel\n({groups})", fontsize=8)
        for row, (sl, name, color) in enumerate(
                [(slice(0, n_exc), "E", "tab:red"), (slice(n_exc, None), "I", "tab:blue")], 1):
            ti, ni = np.nonzero(spikes[:, sl])
            axes[row, col].plot(ti * dt, ni, "|", ms=2, color=color)
            rate = spikes[:, sl].mean() / dt * 1e3
            axes[row, col].set_ylabel(f"{name} neuron\n({rate:.1f} Hz)")
        ax = axes[3, col]
        for j, cell in enumerate(sim["V_cells"]):
            ax.plot(t, sim["V"][:, k, j], color="tab:red" if cell < n_exc else "tab:blue",
                    lw=0.6, alpha=0.8)
        ax.axhline(1.0, color="gray", ls=":", lw=0.8)
        ax.set_ylabel("V (red E, blue I)\n(threshold units)")
        ax = axes[4, col]
        for j in range(sim["readout"].shape[-1]):
            ax.plot(t, sim["readout"][:, k, j], label=f"output {j} (label {j})")
        ax.set_ylabel("readout")
        ax.set_xlabel("time (ms)")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_training_curve(history: List[dict]):
    """Loss and train / validation accuracy against training batch."""
    fig = Figure(figsize=(11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    ep = [h["epoch"] for h in history]
    ax1.plot(ep, [h["loss"] for h in history], lw=0.8)
    ax1.set_xlabel("training batch")
    ax1.set_ylabel("cross-entropy (recall period)")
    ax1.set_yscale("log")
    ax2.plot(ep, [h["acc"] for h in history], lw=0.6, alpha=0.6, label="train (batch)")
    ev = [h for h in history if h.get("val_acc") is not None]
    if ev:
        ax2.plot([h["epoch"] for h in ev], [h["val_acc"] for h in ev], "o-", ms=3,
                 label="held-out validation")
    tv = [h for h in history if h.get("test_acc") is not None]
    if tv:
        ax2.plot([h["epoch"] for h in tv], [h["test_acc"] for h in tv], "s", ms=6,
                 label="held-out test")
    ax2.set_xlabel("training batch")
    ax2.set_ylabel("accuracy")
    ax2.axhline(0.5, color="0.6", lw=0.6, ls=":")  # chance
    ax2.set_ylim(min([0.4] + [h["acc"] for h in history] + [h["val_acc"] for h in ev]) - 0.02,
                 1.01)  # below-chance stretches (a rule learning backwards) stay visible
    ax2.legend(loc="lower right")
    fig.tight_layout()
    return fig


PROJECTIONS = {"w_in": "input (excitatory)", "w_e": "excitatory recurrent",
               "w_i": "inhibitory recurrent"}
FAMILY_STYLE = {"lognormal": ("log-normal", "tab:red", "-"),
                "halfnormal": ("half-normal", "tab:blue", "--"),
                "gamma": ("gamma", "tab:purple", "-."),
                "exponential": ("exponential", "tab:orange", ":")}


def _weight_panel(ax, w: np.ndarray, test: Dict[str, Any], color: str, title: str) -> None:
    """Histogram of ln w of the positive weights and the density of ln w of every fitted
    family (analysis.weight_distribution_test's `test`), the best by AIC named."""
    w = np.asarray(w, dtype=float)
    logw = np.log(w[w >= ZERO_TOL])
    zero = 100 * test["fraction_below_tol"]
    ax.set_title(f"{title}\n{zero:.1f}% at 0 (not shown); best by AIC: "
                 f"{FAMILY_STYLE[test['best']][0] if test['best'] else 'none'}", fontsize=9)
    ax.set_xlabel("ln(weight)")
    ax.set_ylabel("density")
    if test["fits"] is None:
        return
    ax.hist(logw, bins=60, density=True, color=color, alpha=0.35)
    y = np.linspace(logw.min() - 0.5, logw.max() + 0.5, 400)
    for name in sorted(test["fits"], key=lambda n: test["delta_aic"][n]):
        fit, (label, c, ls) = test["fits"][name], FAMILY_STYLE[name]
        tag = "best" if name == test["best"] else f"dAIC {test['delta_aic'][name]:.0f}"
        ax.plot(y, family_log_density(name, fit["params"], y), color=c, ls=ls, lw=1.6,
                label=f"{label} ({tag}; KS D {fit['ks_d']:.3f})")
    ax.legend(fontsize=7, loc="upper left")


def plot_weight_distributions(weights: Dict[str, Dict[str, np.ndarray]],
                              tests: Dict[str, Dict[str, Dict[str, Any]]]):
    """Per projection (columns) and stage (rows, e.g. before / after training): histogram of
    ln w with the densities of the fitted log-normal, half-normal, gamma and exponential
    families (maximum likelihood), each labelled with its AIC difference to the best and its
    KS distance."""
    stages = list(weights)
    fig = Figure(figsize=(16, 4.2 * len(stages)))
    axes = fig.subplots(len(stages), len(PROJECTIONS), squeeze=False)
    for row, stage in enumerate(stages):
        for col, (key, title) in enumerate(PROJECTIONS.items()):
            _weight_panel(axes[row, col], weights[stage][key], tests[stage][key],
                          "gray" if row == 0 else "tab:green", f"{title} ({key}), {stage}")
    fig.suptitle("Synaptic weights: histogram of ln w (positive weights) and maximum-likelihood "
                 "fits; dAIC = AIC - best AIC (> 10: no support)")
    fig.tight_layout()
    return fig


def plot_activity_stats(stats: Dict[str, Any], n_exc: int, trace: Dict[str, np.ndarray],
                        dt: float):
    """Activity statistics (analysis.activity_statistics): per-cell rates, ISI CV and Fano
    factor of E and I cells, delay rates by label (selective cells marked), one cell's E and I
    currents, and the E/I current correlation per cell."""
    s, cells = stats["summary"], stats["cells"]
    pops = [("E", slice(0, n_exc), "tab:red"), ("I", slice(n_exc, None), "tab:blue")]
    fig = Figure(figsize=(16, 8.5))
    ax = fig.subplots(2, 3)

    def hist(a, key, xlabel, title, ref=None, log=False):
        ok = np.isfinite(cells[key]) & ((cells[key] > 0) if log else True)
        v_all = cells[key][ok]
        if not v_all.size:
            a.text(0.5, 0.5, "no cell qualifies", ha="center", transform=a.transAxes)
        elif v_all.min() < v_all.max():
            bins = np.geomspace(v_all.min(), v_all.max(), 31) if log else \
                np.linspace(v_all.min(), v_all.max(), 31)
        else:
            bins = 1
        for name, sl, color in pops:
            v = cells[key][sl][ok[sl]]
            if v.size:
                a.hist(v, bins=bins, alpha=0.5, color=color,
                       label=f"{name}: median {np.median(v):.2f} (n={v.size})")
        if ref is not None:
            a.axvline(ref, color="k", ls=":", lw=1, label=f"Poisson ({ref:g})")
        if log:
            a.set_xscale("log")
        a.set_xlabel(xlabel)
        a.set_ylabel("cells")
        a.set_title(title, fontsize=10)
        _legend(a)

    hist(ax[0, 0], "rate_hz", "rate over the trial (Hz)",
         f"firing rates: E {s['rate_exc_hz']:.1f} Hz, I {s['rate_inh_hz']:.1f} Hz (mean)", log=True)
    hist(ax[0, 1], "isi_cv_trial", "ISI coefficient of variation (whole trial)",
         f"ISI CV, {s['n_trials']} trials: whole trial (histogram); delay only: "
         f"median {_fmt(s['isi_cv_median'])},\n"
         f"{100 * s['isi_cv_fraction_with_enough']:.0f}% of cells with >= 3 delay spikes",
         ref=1.0)
    hist(ax[0, 2], "fano_trial", f"Fano factor ({s['window_ms']:g}-ms windows, whole trial)",
         f"Fano factor across trials (histogram: whole trial); delay: median "
         f"{_fmt(s['fano_median'])}\ncount corr. (mean over pairs): whole trial "
         f"{_fmt(s['count_corr_trial_mean'])}, delay {_fmt(s['count_corr_mean'])}", ref=1.0)
    a = ax[1, 0]
    by_label, sel = cells["delay_rate_by_label"], cells["delay_p"] < s["selective_alpha"]
    if by_label.shape[0] == 2:
        for name, sl, color in pops:
            a.scatter(by_label[0, sl], by_label[1, sl], s=10, color=color, alpha=0.5,
                      label=f"{name} cells")
        a.scatter(by_label[0, sel], by_label[1, sel], s=40, facecolors="none", edgecolors="k",
                  label=f"selective (p < {s['selective_alpha']:g}): {int(sel.sum())}")
        top = max(by_label.max(), 1e-3) * 1.05
        a.plot([0, top], [0, top], color="0.6", lw=0.8)
    a.set_xlabel("delay rate, label 0 trials (Hz)")
    a.set_ylabel("delay rate, label 1 trials (Hz)")
    a.set_title(f"delay selectivity: {100 * s['fraction_selective']:.1f}% selective, "
                f"{100 * s['fraction_delay_active']:.0f}% active (>= 1 Hz)", fontsize=10)
    _legend(a)
    a = ax[1, 1]
    t = np.arange(trace["I_e"].size) * dt
    a.plot(t, trace["I_e"], color="tab:red", lw=0.7, label="I_e = g_e (E_exc - V)")
    a.plot(t, -trace["I_i"], color="tab:blue", lw=0.7, label="-I_i = -g_i (E_inh - V)")
    a.set_xlabel("time (ms)")
    a.set_ylabel("synaptic current (threshold units)")
    a.set_title(f"E and I currents of {trace['name']}, trial 0", fontsize=10)
    _legend(a)
    hist(ax[1, 2], "ei_corr", "corr. over time of I_e and -I_i",
         f"E/I balance: median corr {_fmt(s['ei_corr_median'])}, "
         f"median |I_e|/|I_i| {_fmt(s['ei_ratio_median'])}")
    fig.suptitle(f"Activity statistics ({s['n_trials']} trials; delay {s['delay_ms']:.0f} ms)")
    fig.tight_layout()
    return fig


def _legend(ax) -> None:
    """A legend, when the axes hold labelled artists."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _fmt(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def plot_connectivity(signed: np.ndarray, n_exc: int):
    """Signed recurrent matrix (pre rows, post columns): red excitatory, blue inhibitory."""
    fig = Figure(figsize=(6, 5.5))
    ax = fig.subplots()
    vmax = np.percentile(np.abs(signed[signed != 0]), 99) if np.any(signed) else 1.0
    im = ax.imshow(signed, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest",
                   aspect="auto")
    ax.axhline(n_exc - 0.5, color="k", lw=0.8)
    ax.set_xlabel("postsynaptic neuron")
    ax.set_ylabel("presynaptic neuron (E above line, I below)")
    density = float(np.mean(signed != 0))
    ax.set_title(f"recurrent weights (density {density:.3f})")
    fig.colorbar(im, ax=ax, label="signed weight")
    fig.tight_layout()
    return fig


def plot_learning_curves(histories: Dict[str, List[dict]]):
    """Training loss (smoothed) and held-out validation accuracy of several learning rules,
    against training batch and against wall time."""
    fig = Figure(figsize=(14, 4))
    axes = fig.subplots(1, 3)
    for name, hist in histories.items():
        ep = np.array([h["epoch"] for h in hist])
        loss = np.array([h["loss"] for h in hist])
        k = max(1, len(loss) // 20)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        axes[0].plot(ep[k - 1:], smooth, label=name)
        ev = [h for h in hist if h.get("val_acc") is not None]
        axes[1].plot([h["epoch"] for h in ev], [h["val_acc"] for h in ev], "o-", ms=3,
                     label=name)
        axes[2].plot([h["wall_s"] for h in ev], [h["val_acc"] for h in ev], "o-", ms=3,
                     label=name)
    axes[0].set_ylabel("training cross-entropy (running mean)")
    axes[1].set_ylabel("held-out validation accuracy")
    axes[2].set_ylabel("held-out validation accuracy")
    axes[2].set_xscale("log")
    for ax, xl in zip(axes, ["training batch", "training batch", "wall time (s)"]):
        ax.set_xlabel(xl)
        ax.legend()
    fig.tight_layout()
    return fig
