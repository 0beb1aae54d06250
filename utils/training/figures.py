"""Figures for the E/I network: activity, training curve, weight distributions, connectivity.

Every function returns a `matplotlib.figure.Figure` that belongs to no window and selects no
backend (no pyplot state): save it with utils.run.save_figure; `show_pngs` displays saved
figures for --show.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["show_pngs", "plot_activity", "plot_training_curve",
           "plot_weight_distributions", "plot_connectivity", "lognormal_fit",
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
                  dt: float, trials: Sequence[int] = (0, 1, 2), n_cells: int = 3):
    """Per trial (one column each): input raster, E and I rasters, V of a few cells, readout."""
    trials = [t for t in trials if t < X.shape[1]]
    T = X.shape[0]
    t = np.arange(T) * dt
    fig = Figure(figsize=(4.5 * len(trials), 11))
    axes = fig.subplots(5, len(trials), sharex=True, squeeze=False)
    for col, k in enumerate(trials):
        spikes = sim["spikes"][:, k] > 0.5
        ax = axes[0, col]
        ti, ni = np.nonzero(X[:, k] > 0.5)
        ax.plot(ti * dt, ni, "|", ms=2, color="k")
        # brainpy-datasets: label 1 <=> more left cues (channels 0-24) than right ones
        ax.set_title(f"trial {k}: label {int(labels[k])} "
                     f"({'more left' if labels[k] else 'more right'} cues)")
        ax.set_ylabel("input channel\n(L, R, recall, noise)")
        for row, (sl, name, color) in enumerate(
                [(slice(0, n_exc), "E", "tab:red"), (slice(n_exc, None), "I", "tab:blue")], 1):
            ti, ni = np.nonzero(spikes[:, sl])
            axes[row, col].plot(ti * dt, ni, "|", ms=2, color=color)
            rate = spikes[:, sl].mean() / dt * 1e3
            axes[row, col].set_ylabel(f"{name} neuron\n({rate:.1f} Hz)")
        ax = axes[3, col]
        n_inh = sim["V"].shape[-1] - n_exc
        for i in list(range(min(n_cells, n_exc))):
            ax.plot(t, sim["V"][:, k, i], color="tab:red", lw=0.6, alpha=0.8)
        for i in list(range(n_exc, n_exc + min(n_cells, n_inh))):
            ax.plot(t, sim["V"][:, k, i], color="tab:blue", lw=0.6, alpha=0.8)
        ax.axhline(1.0, color="gray", ls=":", lw=0.8)
        ax.set_ylabel("V (red E, blue I)\n(threshold units)")
        ax = axes[4, col]
        ax.plot(t, sim["readout"][:, k, 0], label="output 0 (more right)")
        ax.plot(t, sim["readout"][:, k, 1], label="output 1 (more left)")
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


def lognormal_fit(w: np.ndarray) -> Optional[tuple]:
    """(mu, sigma) of ln(w) over positive weights (the MLE of a log-normal), or None."""
    w = np.asarray(w, dtype=float)
    w = w[w > 0]
    if w.size < 3:
        return None
    logw = np.log(w)
    return float(logw.mean()), float(logw.std())


def plot_weight_distributions(before: Dict[str, np.ndarray], after: Optional[Dict[str, np.ndarray]]):
    """Histograms of ln(weight) for E and I synapses, before/after training, log-normal fits."""
    groups = [("w_e", "excitatory recurrent"), ("w_i", "inhibitory recurrent"),
              ("w_in", "input (excitatory)")]
    fig = Figure(figsize=(15, 4))
    axes = fig.subplots(1, 3)
    for ax, (key, title) in zip(axes, groups):
        for name, weights, color in [("before", before, "gray"), ("after", after, "tab:green")]:
            if weights is None:
                continue
            w = np.asarray(weights[key], dtype=float)
            at_zero = float(np.mean(w <= 0))  # Dale's projection stops weights at zero
            w = w[w > 0]
            fit = lognormal_fit(w)
            if fit is None:
                continue
            mu, sigma = fit
            logw = np.log(w)
            ax.hist(logw, bins=60, density=True, alpha=0.45, color=color,
                    label=f"{name}: log-normal mu={mu:.2f}, sigma={sigma:.2f}; "
                          f"{100 * at_zero:.1f}% at 0 (not shown)")
            x = np.linspace(logw.min(), logw.max(), 200)
            ax.plot(x, np.exp(-(x - mu) ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi)),
                    color=color, lw=1.5)
        ax.set_title(title)
        ax.set_xlabel("ln(weight)")
        ax.set_ylabel("density")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("Synaptic weight distributions (histogram of ln w; curve: fitted log-normal)")
    fig.tight_layout()
    return fig


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
