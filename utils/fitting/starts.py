"""Where the gradient-based methods start: starts drawn uniformly or around the values a
recording suggests, screened by their loss where the loss is rugged; and the batched calls
that evaluate many points of many cells at once."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from utils.fitting.optim import CellValueGrad, OptimResult, Progress, Tracker, clean

__all__ = ["MIN_ROWS", "MAX_ROWS", "LONG_MIN_ROWS", "batched_calls", "ANCHOR_SPREAD", "draw_starts", "screen",
           "after_screening", "screened_starts"]


MIN_ROWS = 8    # fewer points are padded to this many (or to the batch, if smaller) ...
MAX_ROWS = 128  # ... and more are evaluated in calls of this many: each compiled shape costs
# a compilation (seconds), while on a CPU a call costs about its rows from 32 rows on
LONG_MIN_ROWS = 32  # MIN_ROWS for long sweeps, where a call of 32 rows costs about one of 8


def _bucket(n: int, batch: int, min_rows: int = MIN_ROWS) -> int:
    """Rows of one call for n points of a batch of `batch` runs: the next power of two, at
    least `min_rows` and at most MAX_ROWS or the batch. As runs finish the rest cost less, at
    one compiled shape per power of two."""
    return min(batch, MAX_ROWS, max(min_rows, 1 << max(n - 1, 0).bit_length()))


def batched_calls(fn: CellValueGrad, z: np.ndarray, cells: np.ndarray, batch: int,
                  min_rows: int = MIN_ROWS) -> list:
    """fn's outputs for the points z [n, D] of `cells` [n], in calls of `_bucket` rows (the
    last one padded with copies of its first point), concatenated and cut to n."""
    parts = []
    for start in range(0, len(z), MAX_ROWS):
        zc, cc = z[start:start + MAX_ROWS], cells[start:start + MAX_ROWS]
        extra = _bucket(len(zc), batch, min_rows) - len(zc)
        parts.append(fn(np.concatenate([zc, np.repeat(zc[:1], extra, axis=0)]),
                        np.concatenate([cc, np.repeat(cc[:1], extra)])))
    return [np.concatenate([p[k] for p in parts])[:len(z)]
            for k in range(len(parts[0]))]


ANCHOR_SPREAD = 0.1  # starts lie within +-this (unit coordinates) of the data's values


def draw_starts(n_starts: int, dim: int, seed: int,
                anchor: np.ndarray | None = None) -> np.ndarray:
    """Starts [n_starts, D] in unit coordinates, uniform from `seed`; where `anchor` gives a
    value (not NaN), the first start sits on it and the others within +-ANCHOR_SPREAD of it,
    so that the starts lie in the basin the data's estimates point to."""
    starts = np.random.default_rng(seed).uniform(size=(n_starts, dim))
    if anchor is None:
        return starts
    known = ~np.isnan(anchor)
    near = anchor[known] + ANCHOR_SPREAD * (2.0 * starts[:, known] - 1.0)
    near[0] = anchor[known]
    starts[:, known] = np.clip(near, 0.0, 1.0)
    return starts


def screen(loss: Callable, candidates: Sequence[np.ndarray], keep: int,
           progress: Progress | None = None) -> tuple[list[np.ndarray], list[OptimResult]]:
    """The `keep` candidates [S_c, D] of lowest loss for each cell c (loss(Z, cells) -> [B],
    evaluated in batched calls), and each cell's screening as a result (its evaluations,
    time and history)."""
    cells = np.concatenate([np.full(len(c), k, np.int32) for k, c in enumerate(candidates)])
    z = np.concatenate(candidates)
    trackers = [Tracker("gradient", progress) for _ in candidates]
    losses = clean(batched_calls(lambda zc, cc: (loss(zc, cc),), z, cells, len(z))[0])
    kept = []
    for k, tracker in enumerate(trackers):
        mine = cells == k
        tracker.record(z[mine], losses[mine])
        kept.append(z[mine][np.argsort(losses[mine], kind="stable")[:keep]])
    return kept, [t.result() for t in trackers]


def after_screening(screened: OptimResult, res: OptimResult) -> OptimResult:
    """A run's result with the screening before it counted in: evaluations, time, history."""
    level = screened.loss
    history = screened.history + [(t + screened.wall_s, e + screened.n_evals, min(b, level))
                                  for t, e, b in res.history]
    better = res.loss <= screened.loss
    return OptimResult(res.method, res.z if better else screened.z, min(res.loss, level),
                       res.n_evals + screened.n_evals, res.wall_s + screened.wall_s, history,
                       res.finals)


def screened_starts(loss: Callable, n_starts: int, dim: int, seed: int,
                     anchors: Sequence[np.ndarray | None], factor: int,
                     progress: Progress | None = None
                     ) -> tuple[list[np.ndarray], list[OptimResult] | None]:
    """Each cell's starts: drawn from `seed` (draw_starts) or, with `factor` > 0, the best
    n_starts of factor x n_starts drawn and screened by their loss."""
    if not factor:
        return [draw_starts(n_starts, dim, seed, a) for a in anchors], None
    drawn = [draw_starts(factor * n_starts, dim, seed, a) for a in anchors]
    return screen(loss, drawn, n_starts, progress)
