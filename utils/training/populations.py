"""Networks from anatomy seen by population: the block matrices a modeller expects
(connection probability and mean signed weight, target x source, before and after training),
firing rates by population and how well each population's spikes during the cues tell the
trial's label (where the evidence is written), with their figures."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np
from matplotlib.figure import Figure

__all__ = ["signed_matrix", "population_blocks", "population_rates", "population_decoding",
           "plot_population_blocks", "plot_population_rates", "population_summary",
           "source_table"]


def signed_matrix(net: Any, synapses: Dict[str, np.ndarray]) -> np.ndarray:
    """The signed recurrent matrix (pre x post; I rows negative) of a network with masks,
    from its synapse values in row-major order (`Projection.synapse_values`)."""
    n = net.cfg.n_rec
    out = np.zeros((n, n))
    rows = {"w_e": slice(0, net.n_exc), "w_i": slice(net.n_exc, n)}
    for name, conn, sign in (("w_e", net.conn_e, 1.0), ("w_i", net.conn_i, -1.0)):
        block = np.zeros((conn.n_pre, conn.n_post))
        block[np.nonzero(conn.mask)] = sign * np.asarray(synapses[name], dtype=float)
        out[rows[name]] = block
    return out


def population_blocks(signed: np.ndarray, population: np.ndarray,
                      names: List[str]) -> Dict[str, Any]:
    """Per (target, source) population pair: the measured connection probability (existing
    synapses / pairs, autapses counted as pairs) and the mean signed weight of the existing
    synapses (None where there are none). Lists of lists, target rows x source columns."""
    members = [population == p for p in names]
    prob, mean = [], []
    for tgt in members:
        prob.append([])
        mean.append([])
        for src in members:
            block = signed[np.ix_(src, tgt)]
            exists = block != 0
            prob[-1].append(float(exists.mean()))
            mean[-1].append(float(block[exists].mean()) if exists.any() else None)
    return {"probability": prob, "mean_weight": mean}


def population_rates(counts: np.ndarray, population: np.ndarray, names: List[str],
                     trial_s: float) -> Dict[str, float]:
    """Mean firing rate (Hz) of each population from spike counts (trials, n_rec) per trial
    of `trial_s` seconds."""
    per_cell = np.asarray(counts, dtype=float).mean(axis=0) / trial_s
    return {p: float(per_cell[population == p].mean()) for p in names}


def population_decoding(counts: np.ndarray, labels: np.ndarray, population: np.ndarray,
                        names: List[str], folds: int = 4) -> Dict[str, Optional[float]]:
    """Per population: the cross-validated accuracy (`folds` stratified folds, in trial order)
    of a logistic regression predicting the trial's label from the population's spike counts
    (trials, n_rec), e.g. those of the cue period. A GIF cell keeps its cue-period spikes in
    its slow after-spike current, so this is the evidence a readout of that population can
    find later; 0.5 is chance. None when a label has fewer trials than folds."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if classes.size < 2 or min(np.sum(labels == k) for k in classes) < folds:
        return {p: None for p in names}
    from sklearn.linear_model import LogisticRegression  # scikit-learn: only when used
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    out: Dict[str, Optional[float]] = {}
    for p in names:
        x = np.asarray(counts, dtype=float)[:, population == p]
        x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
        out[p] = float(cross_val_score(LogisticRegression(max_iter=1000), x, labels,
                                       cv=StratifiedKFold(folds)).mean())
    return out


def _grid(ax: Any, values: np.ndarray, names: List[str], title: str, cmap: str,
          vmin: float, vmax: float, fmt: str) -> Any:
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("source population")
    ax.set_ylabel("target population")
    ax.set_title(title, fontsize=9)
    if len(names) <= 10:
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v) and v != 0:
                ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=5)
    return im


def plot_population_blocks(names: List[str], blocks: Dict[str, Dict[str, Any]],
                           table: Optional[np.ndarray] = None) -> Figure:
    """Measured connection probability by population pair (and the source table's, if
    given) and the mean signed weight at each stage of `blocks` (e.g. before / after)."""
    panels = 1 + (table is not None) + len(blocks)
    fig = Figure(figsize=(4.2 * panels, 4.2))
    axes = fig.subplots(1, panels)
    first = next(iter(blocks.values()))
    prob = np.array(first["probability"], dtype=float)
    pmax = max(prob.max(), 0.0 if table is None else float(np.max(table)), 1e-6)
    im = _grid(axes[0], prob, names, "connection probability (measured)", "viridis", 0, pmax,
               ".2f")
    fig.colorbar(im, ax=axes[0], fraction=0.046)
    k = 1
    if table is not None:
        im = _grid(axes[1], np.asarray(table), names, "connection probability (source table)",
                   "viridis", 0, pmax, ".2f")
        fig.colorbar(im, ax=axes[1], fraction=0.046)
        k = 2
    means = {s: np.array([[np.nan if v is None else v for v in row] for row in b["mean_weight"]])
             for s, b in blocks.items()}
    vmax = max(float(np.nanmax(np.abs(m))) if np.isfinite(m).any() else 0.0
               for m in means.values()) or 1.0
    for ax, (stage, m) in zip(axes[k:], means.items()):
        im = _grid(ax, m, names, f"mean signed weight ({stage})", "RdBu_r", -vmax, vmax, ".2g")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def plot_population_rates(rates: Dict[str, float], inhibitory: Dict[str, bool],
                          decoding: Optional[Dict[str, Optional[float]]] = None) -> Figure:
    """Mean firing rate of each population (red: excitatory, blue: inhibitory) and, if given,
    the accuracy of decoding the label from its cue-period spikes (population_decoding)."""
    names = list(rates)
    fig = Figure(figsize=(max(4.0, 0.6 * len(rates) + 2) * (1 + (decoding is not None)), 3.5))
    axes = np.atleast_1d(fig.subplots(1, 1 + (decoding is not None)))
    colors = ["tab:blue" if inhibitory[p] else "tab:red" for p in names]
    axes[0].bar(range(len(names)), [rates[p] for p in names], color=colors)
    axes[0].set_ylabel("mean rate (Hz)")
    axes[0].set_title("firing rate by population (held-out trials)")
    if decoding is not None:
        axes[1].bar(range(len(names)), [np.nan if decoding[p] is None else decoding[p]
                                        for p in names], color=colors)
        axes[1].axhline(0.5, color="k", lw=0.8, ls="--")
        axes[1].set_ylim(0.0, 1.0)
        axes[1].set_ylabel("label decoded (cross-validated)")
        axes[1].set_title("evidence in the cue-period spikes", fontsize=9)
    for ax in axes:
        ax.set_xticks(range(len(names)), names, rotation=45, fontsize=8)
    fig.tight_layout()
    return fig


def source_table(conn_method: str, names: List[str]) -> Optional[np.ndarray]:
    """The connection probabilities the network was drawn from (pd14: Potjans & Diesmann's
    table, in the order of `names`), else None."""
    if conn_method != "pd14":
        return None
    from models.networks.anatomy import PD14_POPULATIONS, PD14_PROBABILITY

    idx = [PD14_POPULATIONS.index(p) for p in names]
    return PD14_PROBABILITY[np.ix_(idx, idx)]


def population_summary(net: Any, weights: Dict[str, Dict[str, np.ndarray]],
                       counts: np.ndarray, trial_s: float, cue_counts: Optional[np.ndarray] = None,
                       labels: Optional[np.ndarray] = None) -> tuple[Dict[str, Any], list]:
    """(metrics, figures) of a network from anatomy: block matrices at every stage of
    `weights` (stage -> synapse values by projection), rates by population from spike
    counts (trials, n_rec) and, given the cue-period counts and the trials' labels, the label
    decoded from each population's cue-period spikes. A population mixing E and I cells is
    split into its E and I parts (named POP:E, POP:I)."""
    conn = net.connectome
    population = np.array([f"{p}:{'I' if i else 'E'}" for p, i in
                           zip(conn.population, conn.inhibitory)])
    mixed = {p for p in conn.populations()
             if len(set(conn.inhibitory[conn.population == p].tolist())) > 1}
    population = np.where(np.isin(conn.population, list(mixed)), population, conn.population)
    names = list(dict.fromkeys(population.tolist()))
    blocks = {stage: population_blocks(signed_matrix(net, w), population, names)
              for stage, w in weights.items()}
    rates = population_rates(counts, population, names, trial_s)
    inhibitory = {p: bool(conn.inhibitory[population == p].all()) for p in names}
    metrics = {"names": names, "blocks": blocks, "rates_hz": rates,
               "sizes": {p: int((population == p).sum()) for p in names}}
    decoding = None
    if cue_counts is not None and labels is not None:
        decoding = metrics["cue_decoding"] = population_decoding(cue_counts, labels,
                                                                 population, names)
    figures = [plot_population_blocks(names, blocks, source_table(net.cfg.conn_method, names)),
               plot_population_rates(rates, inhibitory, decoding)]
    return metrics, figures
