"""Statistics of a trained E/I network, each with a stated definition: which family fits the
synaptic weights (tested by likelihood, not drawn), and the activity statistics compared with
cortex (rates, ISI irregularity, Fano factor, spike-count correlations, delay selectivity,
E/I input balance). numpy and scipy only: the inputs are arrays recorded by
`Trainer.record` (utils/training/trainer.py).

Array conventions: spike trains are (T, n_trials, n_cells) 0/1 arrays at time step dt (ms);
binned counts are (n_bins, n_trials, n_cells); per-trial period counts (n_trials, n_cells).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence

import numpy as np
from scipy import stats

__all__ = ["ZERO_TOL", "FAMILIES", "fit_family", "weight_distribution_test", "family_log_density",
           "cell_rates_hz", "isi_moments", "isi_cv", "fano_factor", "count_correlation",
           "delay_selectivity", "current_sums", "trial_balance", "ei_balance",
           "synaptic_currents", "delay_mask", "window_bins", "activity_statistics"]

ZERO_TOL = 1e-12  # a weight below this counts as "at zero" (Dale's reflection, masks)

# name -> (scipy distribution, free parameters with loc fixed at 0)
FAMILIES: Dict[str, tuple] = {
    "lognormal": (stats.lognorm, 2),      # shape s = sigma of ln w, scale = exp(mu)
    "halfnormal": (stats.halfnorm, 1),    # the truncated normal at 0 with mean 0: scale only
    "gamma": (stats.gamma, 2),            # shape a, scale
    "exponential": (stats.expon, 1),      # scale = mean
}


# ----------------------------------------------------------------------------- weights
def fit_family(name: str, w: np.ndarray) -> Dict[str, Any]:
    """Maximum-likelihood fit of family `name` (loc fixed at 0) to positive weights `w`:
    parameters, log-likelihood, AIC = 2k - 2 lnL, BIC = k ln n - 2 lnL (Akaike 1974; Schwarz
    1978), and the Kolmogorov-Smirnov D and p-value against the fitted distribution.

    The KS p-value assumes the parameters were known in advance; with fitted parameters it is
    approximate (too large: Lilliefors 1967), so read D and the AIC ranking, not p."""
    dist, k = FAMILIES[name]
    params = dist.fit(w, floc=0.0)
    loglik = float(np.sum(dist.logpdf(w, *params)))
    ks = stats.kstest(w, dist.cdf, args=params)
    names = [*(dist.shapes.split(", ") if dist.shapes else []), "loc", "scale"]
    return {"params": {n: float(p) for n, p in zip(names, params) if n != "loc"},
            "loglik": loglik, "aic": 2 * k - 2 * loglik, "bic": k * math.log(w.size) - 2 * loglik,
            "ks_d": float(ks.statistic), "ks_p": float(ks.pvalue)}


def weight_distribution_test(w: np.ndarray, families: Sequence[str] = tuple(FAMILIES),
                             min_n: int = 10) -> Dict[str, Any]:
    """Which family describes the synaptic weights `w` (1-D) best.

    Weights at zero are reported apart (fraction exactly 0 and fraction below ZERO_TOL) and
    left out of the fits; each family in `families` is fitted to the positive weights by
    maximum likelihood (`fit_family`); "best" is the family of lowest AIC and "delta_aic" of
    each family its AIC minus the best's (> 10: essentially no support, Burnham & Anderson
    2002, sec. 2.6). "skew_log_w" is the sample skewness of ln w (0 for a log-normal, < 0 for
    a left-skewed ln w such as a half-normal's). Fits are None with fewer than `min_n`
    positive weights or fewer than 3 distinct ones (e.g. a connectome's initial weights, one
    value per synapse count: no continuous family fits them)."""
    w = np.asarray(w, dtype=float).ravel()
    pos = w[w >= ZERO_TOL]
    out: Dict[str, Any] = {"n": int(w.size), "n_positive": int(pos.size),
                           "fraction_exact_zero": float(np.mean(w == 0)) if w.size else 0.0,
                           "fraction_below_tol": float(np.mean(w < ZERO_TOL)) if w.size else 0.0,
                           "fits": None, "best": None, "delta_aic": None, "skew_log_w": None}
    if pos.size < min_n or np.unique(pos).size < 3:
        return out
    fits = {name: fit_family(name, pos) for name in families}
    best = min(fits, key=lambda n: fits[n]["aic"])
    out.update(fits=fits, best=best,
               delta_aic={n: f["aic"] - fits[best]["aic"] for n, f in fits.items()},
               skew_log_w=float(stats.skew(np.log(pos))))
    return out


def family_log_density(name: str, params: Dict[str, float], log_w: np.ndarray) -> np.ndarray:
    """Density of y = ln w under the fitted family: f_Y(y) = f_W(e^y) e^y (change of
    variables), to draw over a histogram of ln w."""
    dist, _ = FAMILIES[name]
    w = np.exp(log_w)
    return dist.pdf(w, loc=0.0, **params) * w


# ----------------------------------------------------------------------------- activity
def cell_rates_hz(counts: np.ndarray, duration_ms: float) -> np.ndarray:
    """Mean rate (Hz) of each cell from per-trial counts (n_trials, n_cells) over periods of
    `duration_ms`."""
    return np.asarray(counts, dtype=float).mean(axis=0) / duration_ms * 1e3


def isi_moments(spikes: np.ndarray) -> Dict[str, np.ndarray]:
    """Per cell, the count "n", sum "s" and sum of squares "s2" of the inter-spike intervals
    (in steps) of `spikes` (T, n_trials, n_cells), taken within each trial and pooled over
    trials (what utils/training/recording.py accumulates as the trials run)."""
    spikes = np.asarray(spikes) > 0.5
    out = {k: np.zeros(spikes.shape[2]) for k in ("n", "s", "s2")}
    for i in range(spikes.shape[2]):
        isis = np.concatenate([np.diff(np.flatnonzero(spikes[:, k, i]))
                               for k in range(spikes.shape[1])]).astype(float)
        out["n"][i], out["s"][i], out["s2"][i] = isis.size, isis.sum(), (isis ** 2).sum()
    return out


def isi_cv(moments: Dict[str, np.ndarray], min_isis: int = 2) -> Dict[str, Any]:
    """Coefficient of variation std/mean of the inter-spike intervals of each cell (Softky &
    Koch 1993; 1 for a Poisson train, 0 for a regular one), from their per-cell count, sum and
    sum of squares (`isi_moments`: ISIs within each trial, pooled over trials).

    Cells with fewer than `min_isis` ISIs (fewer than 3 spikes) get NaN. Returns the per-cell
    "cv", their "median" and "fraction_with_enough" spikes. Rate changes within the window
    raise the CV: give a stationary stretch (e.g. the delay period)."""
    n, s, s2 = (np.asarray(moments[k], dtype=float) for k in ("n", "s", "s2"))
    ok = (n >= min_isis) & (s > 0)
    mean = np.where(ok, s / np.maximum(n, 1), 1.0)
    var = np.maximum(s2 / np.maximum(n, 1) - mean ** 2, 0.0)
    cv = np.where(ok, np.sqrt(var) / mean, np.nan)
    return {"cv": cv, "median": float(np.median(cv[ok])) if ok.any() else None,
            "fraction_with_enough": float(ok.mean()) if n.size else 0.0}


def _condition_groups(labels: Optional[np.ndarray], n_trials: int) -> list:
    """Trial indices of each condition (one group of all trials when `labels` is None)."""
    if labels is None:
        return [np.arange(n_trials)]
    labels = np.asarray(labels)
    return [np.flatnonzero(labels == v) for v in np.unique(labels)]


def fano_factor(counts: np.ndarray, labels: Optional[np.ndarray] = None,
                min_trials: int = 5) -> Dict[str, Any]:
    """Fano factor var/mean of spike counts across trials (Churchland et al. 2010, Nat
    Neurosci 13:369): for each window (counts (n_windows, n_trials, n_cells)) and each
    condition (trials of one label), the across-trial variance (ddof 1) over the mean;
    a cell's value is the mean over the (window, condition) groups where it spiked (groups
    of >= `min_trials` trials). 1 for Poisson counts. Returns per-cell "fano" (NaN: never
    spiked) and their "median"."""
    counts = np.asarray(counts)
    total, used = np.zeros(counts.shape[2]), np.zeros(counts.shape[2])
    for idx in _condition_groups(labels, counts.shape[1]):
        if idx.size < min_trials:
            continue
        for window in counts:  # one window at a time: memory of one (trials, cells) block
            c = window[idx].astype(float)
            mean, var = c.mean(axis=0), c.var(axis=0, ddof=1)
            ok = mean > 0
            total += np.where(ok, var / np.where(ok, mean, 1.0), 0.0)
            used += ok
    fano = np.where(used > 0, total / np.maximum(used, 1), np.nan)
    ok = np.isfinite(fano)
    return {"fano": fano, "median": float(np.median(fano[ok])) if ok.any() else None}


def count_correlation(counts: np.ndarray, labels: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """Mean pairwise spike-count ("noise") correlation (Cohen & Kohn 2011, Nat Neurosci
    14:811): counts (n_windows, n_trials, n_cells) are z-scored across the trials of each
    (window, condition) group, which removes the signal carried by the mean, pooled, and the
    Pearson correlation of every pair of cells with variable counts is averaged. 0 for
    independent cells. Returns "mean", "median", "n_pairs"."""
    counts = np.asarray(counts)
    n_cells = counts.shape[2]
    gram, n_rows = np.zeros((n_cells, n_cells)), 0
    for idx in _condition_groups(labels, counts.shape[1]):
        if idx.size < 3:
            continue
        for window in counts:  # z-scores summed window by window: no (rows, cells) array
            c = window[idx].astype(float)
            sd = c.std(axis=0)
            z = (c - c.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
            gram += z.T @ z
            n_rows += idx.size
    # z has mean 0 in every group, so the pooled correlation of cells a, b is
    # sum(z_a z_b) / sqrt(sum(z_a^2) sum(z_b^2)), over the cells whose counts vary
    live = np.flatnonzero(np.diag(gram) > 0) if n_rows else np.array([], dtype=int)
    if live.size < 2:
        return {"mean": None, "median": None, "n_pairs": 0}
    g = gram[np.ix_(live, live)]
    d = np.sqrt(np.diag(g))
    r = (g / np.outer(d, d))[np.triu_indices(live.size, 1)]
    return {"mean": float(np.mean(r)), "median": float(np.median(r)), "n_pairs": int(r.size)}


def delay_selectivity(delay_counts: np.ndarray, labels: np.ndarray, delay_ms: float,
                      alpha: float = 0.01, active_hz: float = 1.0) -> Dict[str, Any]:
    """Cells whose delay-period spike count depends on what the trial holds (`labels`: the
    label, or the stimulus to remember): per cell a two-sided Mann-Whitney U test between the
    trials of two values, or a Kruskal-Wallis test across more values (counts (n_trials,
    n_cells)), selective when p < `alpha` (by chance about `alpha` of the cells are).
    "fraction_active": cells whose mean delay rate is >= `active_hz`. Returns per-cell "p"
    (NaN: never spiked in the delay, or trials of one value only) and the fractions over all
    cells."""
    counts = np.asarray(delay_counts, dtype=float)
    labels = np.asarray(labels)
    values = np.unique(labels)
    p = np.full(counts.shape[1], np.nan)
    spiked = counts.sum(axis=0) > 0
    groups = [counts[labels == v][:, spiked] for v in values]
    if values.size == 2 and spiked.any():
        p[spiked] = stats.mannwhitneyu(*groups, alternative="two-sided", axis=0).pvalue
    elif values.size > 2 and spiked.any():  # (one value only: no test)
        p[spiked] = stats.kruskal(*groups, axis=0).pvalue
    rate = cell_rates_hz(counts, delay_ms)
    n = max(counts.shape[1], 1)
    return {"p": p, "rate_hz": rate, "fraction_selective": float(np.sum(p < alpha) / n),
            "fraction_active": float(np.mean(rate >= active_hz)) if counts.shape[1] else 0.0,
            "alpha": alpha}


def synaptic_currents(g_e: np.ndarray, g_i: np.ndarray, V: np.ndarray, e_exc: float,
                      e_inh: float) -> tuple[np.ndarray, np.ndarray]:
    """Excitatory and inhibitory synaptic currents of a conductance-based cell:
    I_e = g_e (E_exc - V) (>= 0 below E_exc), I_i = g_i (E_inh - V) (<= 0 above E_inh)."""
    return g_e * (e_exc - V), g_i * (e_inh - V)


def current_sums(I_e: np.ndarray, I_i: np.ndarray) -> Dict[str, np.ndarray]:
    """Per (trial, cell) sums over time of e = I_e and i = -I_i, their squares, product and
    magnitudes, from currents (T, n_trials, n_cells) (what utils/training/recording.py
    accumulates as the trials run)."""
    e, i = np.asarray(I_e, dtype=float), -np.asarray(I_i, dtype=float)
    return {"e": e.sum(0), "i": i.sum(0), "ee": (e * e).sum(0), "ii": (i * i).sum(0),
            "ei": (e * i).sum(0), "abs_e": np.abs(e).sum(0), "abs_i": np.abs(i).sum(0)}


def trial_balance(sums: Dict[str, np.ndarray], T: int, rel_tol: float = 1e-6) -> Dict[str, Any]:
    """Per cell, over the trials of `sums` (`current_sums` of trials of T steps): "r_sum", the
    sum of each trial's Pearson correlation over time of I_e and -I_i, "r_n" the trials where
    both currents vary (variance above `rel_tol` x mean square, rounding of float32 sums
    aside), and the summed magnitudes "abs_e", "abs_i". Chunks of trials add up."""
    m = {k: np.asarray(v, dtype=float) / T for k, v in sums.items()}
    var_e, var_i = m["ee"] - m["e"] ** 2, m["ii"] - m["i"] ** 2
    valid = (var_e > rel_tol * m["ee"]) & (var_i > rel_tol * m["ii"])
    r = (m["ei"] - m["e"] * m["i"]) / np.sqrt(np.where(valid, var_e * var_i, 1.0))
    return {"r_sum": np.where(valid, r, 0.0).sum(0), "r_n": valid.sum(0).astype(float),
            "abs_e": m["abs_e"].sum(0), "abs_i": m["abs_i"].sum(0)}


def ei_balance(totals: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """Balance of excitation and inhibition per cell, from `trial_balance` totals: "corr", the
    Pearson correlation over time of I_e and -I_i (inhibition tracking excitation: > 0; Okun &
    Lampl 2008, Nat Neurosci 11:535), per trial then averaged over trials; and "ratio", mean
    |I_e| / mean |I_i| (1: equal magnitudes). Medians over cells are "corr_median" and
    "ratio_median"; cells whose current never varies get a NaN correlation."""
    n = totals["r_n"]
    corr = np.where(n > 0, totals["r_sum"] / np.maximum(n, 1), np.nan)
    mag_i = totals["abs_i"]
    ratio = np.where(mag_i > 0, totals["abs_e"] / np.where(mag_i > 0, mag_i, 1.0), np.nan)
    return {"corr": corr, "ratio": ratio, "corr_median": _nanmedian(corr),
            "ratio_median": _nanmedian(ratio)}


def _nanmedian(x: np.ndarray) -> Optional[float]:
    x = np.asarray(x, dtype=float)
    return float(np.median(x[np.isfinite(x)])) if np.isfinite(x).any() else None


# ----------------------------------------------------------------------------- a network's
def delay_mask(X: np.ndarray, recall: np.ndarray, cue_channels: slice) -> np.ndarray:
    """The delay period (T,) bool: the steps after the last spike of any cue channel in any
    trial of X (T, n_trials, n_in) and before the recall period. With trials of one timing and
    enough of them (the evidence-accumulation task) this is the task's delay period to within a
    step or two (the last cue's channels fire at every step with probability ~0.6 per trial)."""
    recall = np.asarray(recall, dtype=bool)
    cue_steps = np.flatnonzero(np.asarray(X)[:, :, cue_channels].any(axis=(1, 2)))
    after = np.arange(recall.size) > (cue_steps[-1] if cue_steps.size else -1)
    first_recall = np.flatnonzero(recall)[0] if recall.any() else recall.size
    return after & (np.arange(recall.size) < first_recall)


def window_bins(mask: np.ndarray, steps: int) -> np.ndarray:
    """(T,) int: the index of the window of `steps` consecutive steps of `mask` (counted from its
    first True step) that each step falls in; -1 outside `mask` and in a last partial window."""
    idx = np.full(mask.size, -1)
    on = np.flatnonzero(mask)
    full = on[: on.size // steps * steps]
    idx[full] = np.arange(full.size) // steps
    return idx


def activity_statistics(sim: Dict[str, Any], labels: np.ndarray, delay: np.ndarray,
                        n_exc: int, dt: float, window_ms: float,
                        stimulus: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """Every activity statistic of a recording (`Trainer.record` with bins "trial" (the whole
    trial), "delay" (the delay period), "window" (`window_ms` windows of the delay) and
    "window_trial" (`window_ms` windows of the whole trial), ISI moments "delay" and "trial",
    and the currents): per-cell arrays under "cells" and scalar summaries under "summary", E
    and I apart where it matters. `labels` are the trials' labels (n_trials,); `delay` the (T,)
    mask of the delay period; `stimulus` (n_trials,) what the delay holds (default: the labels),
    against which delay selectivity is tested. Every statistic covers every trial: ISI CVs (delay period;
    "_trial": whole trial, raised by the rate changes between task periods), Fano factors and
    correlations in windows (delay; "_trial": whole trial), E/I balance over the whole trial."""
    T = delay.size
    pops = {"exc": slice(0, n_exc), "inh": slice(n_exc, None)}
    counts = sim["counts"]
    rate = cell_rates_hz(counts["trial"][0], T * dt)
    cv, cv_trial = isi_cv(sim["isi"]["delay"]), isi_cv(sim["isi"]["trial"])
    fano, fano_trial = (fano_factor(counts[k], labels) for k in ("window", "window_trial"))
    corr, corr_trial = (count_correlation(counts[k], labels) for k in ("window", "window_trial"))
    sel = delay_selectivity(counts["delay"][0], labels if stimulus is None else stimulus,
                            delay.sum() * dt)
    bal = ei_balance(sim["balance"])
    summary: Dict[str, Any] = {
        "rate_exc_hz": sim["rate_exc_hz"], "rate_inh_hz": sim["rate_inh_hz"],
        "n_trials": int(labels.size),
        "delay_ms": float(delay.sum() * dt), "window_ms": window_ms,
        "isi_cv_median": cv["median"], "isi_cv_fraction_with_enough": cv["fraction_with_enough"],
        "isi_cv_trial_median": cv_trial["median"],
        "isi_cv_trial_fraction_with_enough": cv_trial["fraction_with_enough"],
        "fano_median": fano["median"], "fano_trial_median": fano_trial["median"],
        "count_corr_mean": corr["mean"], "count_corr_n_pairs": corr["n_pairs"],
        "count_corr_trial_mean": corr_trial["mean"],
        "fraction_selective": sel["fraction_selective"], "selective_alpha": sel["alpha"],
        "fraction_delay_active": sel["fraction_active"],
        "ei_corr_median": bal["corr_median"], "ei_ratio_median": bal["ratio_median"]}
    for pop, sl in pops.items():
        summary.update({f"rate_{pop}_median_hz": _nanmedian(rate[sl]),
                        f"delay_rate_{pop}_hz": float(np.mean(sel["rate_hz"][sl])),
                        f"isi_cv_{pop}_median": _nanmedian(cv["cv"][sl]),
                        f"isi_cv_trial_{pop}_median": _nanmedian(cv_trial["cv"][sl]),
                        f"fano_{pop}_median": _nanmedian(fano["fano"][sl]),
                        f"fraction_selective_{pop}": float(np.mean(sel["p"][sl] < sel["alpha"]))})
    cells = {"rate_hz": rate, "isi_cv": cv["cv"], "isi_cv_trial": cv_trial["cv"],
             "fano": fano["fano"], "fano_trial": fano_trial["fano"], "delay_p": sel["p"],
             "delay_rate_by_label": np.stack([cell_rates_hz(counts["delay"][0][labels == v],
                                                            delay.sum() * dt)
                                              for v in np.unique(labels)[:2]]),
             "ei_corr": bal["corr"], "ei_ratio": bal["ratio"]}
    return {"summary": summary, "cells": cells}
