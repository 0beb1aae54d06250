"""Activity of the E/I network recorded as the trials run: every statistic that covers all
trials is accumulated step by step (spike counts per bin, inter-spike-interval sums, sums and
products of the synaptic currents), so memory does not grow with the number of trials and
grows with the trial length only by the few trials kept whole for the figures.

`Trainer.record` builds the jitted scan with `recorder` and runs it with `record`.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import brainstate
import jax.numpy as jnp
import numpy as np

from utils.training.analysis import trial_balance

__all__ = ["recorder", "record", "bin_counts", "isi_index", "CURRENT_SUMS"]

# per (trial, cell) sums over time of e = I_e and i = -I_i (analysis.trial_balance)
CURRENT_SUMS = ("e", "i", "ee", "ii", "ei", "abs_e", "abs_i")


def isi_index(mask: np.ndarray) -> np.ndarray:
    """(T,) int: the rank of each step among the steps of `mask` (-1 outside): inter-spike
    intervals counted on this index are those of the spike train restricted to `mask`."""
    mask = np.asarray(mask, dtype=bool)
    return np.where(mask, np.cumsum(mask) - 1, -1).astype(np.int32)


def _isi_update(acc: Dict[str, Any], zi: Any, k: Any) -> Dict[str, Any]:
    """Add the intervals ending at this step (spikes zi (B, n) at stretch index k, < 0: none)."""
    fire = (zi > 0) & (k >= 0)
    new = fire & (acc["last"] >= 0)
    isi = (k - acc["last"]).astype(jnp.float32)
    return {"last": jnp.where(fire, k, acc["last"]),
            "n": acc["n"] + new, "s": acc["s"] + jnp.where(new, isi, 0.0),
            "s2": acc["s2"] + jnp.where(new, isi * isi, 0.0)}


def _current_update(acc: Dict[str, Any], e: Any, i: Any) -> Dict[str, Any]:
    terms = {"e": e, "i": i, "ee": e * e, "ii": i * i, "ei": e * i, "abs_e": jnp.abs(e),
             "abs_i": jnp.abs(i)}
    return {k: acc[k] + terms[k] for k in CURRENT_SUMS}


def recorder(net: Any, keep: int, n_bins: Dict[str, int], isi_names: tuple,
             currents: bool, v_cells: np.ndarray) -> Callable:
    """`(xs, recall, bins, isi) -> (carry, per-step)`: one chunk of trials from reset.

    carry: "summed" readout over the recall steps (B, n_out); "counts" name -> spike counts per
    bin and trial (n_bins[name], B, n_rec), step t in bin bins[name][t] (< 0: none); "isi"
    name -> per (trial, cell) count, sum and sum of squares of the intervals on the index
    isi[name] (`isi_index`); with `currents`, "currents": the CURRENT_SUMS of I_e = g_e (E_exc
    - V) and -I_i = -g_i (E_inh - V). Per step, of the first `keep` trials only: readout, spikes
    (int8) and V of the cells `v_cells`; with `currents` also I_e and I_i of trial 0 (every
    cell)."""
    n_rec, n_out = net.cfg.n_rec, net.cfg.n_out
    v_cells = jnp.asarray(v_cells, dtype=jnp.int32)

    def init(B):
        z = jnp.zeros((B, n_rec), jnp.float32)
        carry = {"summed": jnp.zeros((B, n_out), jnp.float32),
                 "counts": {k: jnp.zeros((n, B, n_rec), jnp.int32) for k, n in n_bins.items()},
                 "isi": {k: {"last": jnp.full((B, n_rec), -1, jnp.int32), "n": z, "s": z,
                             "s2": z} for k in isi_names}}
        if currents:
            carry["currents"] = {k: z for k in CURRENT_SUMS}
        return carry

    def sim(xs, recall, bins, isi):
        brainstate.nn.reset_all_states(net)

        def step(carry, inp):
            x, r, b, k = inp
            out = net(x)
            zi = (net.get_spike() > 0.5).astype(jnp.int32)
            new = {"summed": carry["summed"] + out * r,
                   "counts": {n: c.at[jnp.maximum(b[n], 0)].add(zi * (b[n] >= 0))
                              for n, c in carry["counts"].items()},
                   "isi": {n: _isi_update(a, zi, k[n]) for n, a in carry["isi"].items()}}
            V = net.V.value
            kept = (out[:keep], zi[:keep].astype(jnp.int8), V[:keep][:, v_cells])
            if currents:
                I_e, I_i = net.g_e.value * (net.E_EXC - V), net.g_i.value * (net.E_INH - V)
                new["currents"] = _current_update(carry["currents"], I_e, -I_i)
                kept = kept + (I_e[0], I_i[0])
            return new, kept

        return brainstate.transform.scan(step, init(xs.shape[1]), (xs, recall, bins, isi))

    return brainstate.transform.jit(sim)


def _isi_totals(acc: Dict[str, Any], n_real: int) -> Dict[str, np.ndarray]:
    """Per-cell totals over the chunk's real trials (float64)."""
    return {k: np.asarray(acc[k], dtype=np.float64)[:n_real].sum(axis=0) for k in ("n", "s", "s2")}


def _add(total: Optional[Dict[str, np.ndarray]], part: Dict[str, np.ndarray]) -> Dict[str, Any]:
    return dict(part) if total is None else {k: total[k] + part[k] for k in total}


def bin_counts(bins: Dict[str, np.ndarray]) -> Dict[str, int]:
    """The number of bins of each of `bins`, with "trial" (the whole trial) added."""
    return {"trial": 1, **{k: max(int(np.max(v)) + 1, 1) for k, v in bins.items()}}


def record(sim: Callable, dt: float, chunks: Iterable[Tuple[int, Any]],
           bins: Dict[str, np.ndarray], isi: Dict[str, np.ndarray],
           currents: bool) -> Dict[str, Any]:
    """Run the trials of `chunks` ((real trials, TaskData padded to the batch size)) through
    `sim` (a `recorder` built with `bin_counts(bins)` and the names of `isi`) at time step
    `dt` and combine the chunks (Trainer.record documents the result)."""
    n_bins = bin_counts(bins)
    bins_j = None
    isi_j = {k: jnp.asarray(v, dtype=jnp.int32) for k, v in isi.items()}
    correct, binned, kept = [], {k: [] for k in n_bins}, None
    isi_tot: Dict[str, Any] = {k: None for k in isi}
    balance = None
    with brainstate.environ.context(dt=dt):
        for n_real, chunk in chunks:
            if bins_j is None:
                trial = {"trial": np.zeros(chunk.X.shape[0], dtype=np.int32)}
                bins_j = {k: jnp.asarray(v) for k, v in {**trial, **bins}.items()}
            recall = jnp.asarray(chunk.recall, dtype=jnp.float32)[:, None, None]
            carry, per_step = sim(jnp.asarray(chunk.X, dtype=bool), recall, bins_j, isi_j)
            summed = np.asarray(carry["summed"])[:n_real]
            correct.append(np.argmax(summed, axis=-1) == np.asarray(chunk.y[:n_real]))
            for k in n_bins:
                binned[k].append(np.asarray(carry["counts"][k])[:, :n_real])
            for k in isi:
                isi_tot[k] = _add(isi_tot[k], _isi_totals(carry["isi"][k], n_real))
            if currents:
                T = chunk.X.shape[0]
                sums = {k: np.asarray(v, dtype=np.float64)[:n_real]
                        for k, v in carry["currents"].items()}
                balance = _add(balance, trial_balance(sums, T))
            if kept is None:
                kept = [np.asarray(a)[:, :n_real] if a.ndim == 3 else np.asarray(a)
                        for a in per_step]
    counts = {k: np.concatenate(v, 1) for k, v in binned.items()}
    out = {"readout": kept[0], "spikes": kept[1], "V": kept[2], "correct": np.concatenate(correct), "counts": counts, "isi": isi_tot}
    if currents:
        out.update(balance=balance, I_e=kept[3], I_i=kept[4])
    return out
