"""A recorded cell's row in cells.csv and metrics.json's `cells`: its best method's parameters
and scores (on its held-out sweeps both the evoked and the all-sweep scores of
utils/fitting/verdict.py), its status and reason; cells.csv written atomically; the printed
summary of the held-out scores."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Mapping, Sequence

from utils.run import atomic_write_bytes

__all__ = ["FIT_STATES", "COLUMNS", "TEST_COLUMNS", "cell_row", "write_cells_csv",
           "or_dash", "format_test"]

FIT_STATES = ("fitted", "poor")  # a row with fitted parameters
COLUMNS = ("cell", "method", "loss", "rmse_mV", "gamma", "n_evals", "wall_s", "status",
           "reason")
# cells.csv column -> the key of the held-out scores (`test`, verdict.score_sweeps) it shows
TEST_COLUMNS = {"test_sweeps": None, "test_evoked_sweeps": "evoked_sweeps",
                "test_spikes_cell_evoked": "spikes_cell_evoked",
                "test_spikes_model_evoked": "spikes_model_evoked",
                "test_median_gamma_evoked": "median_gamma_evoked",
                "test_spikes_cell_all": "spikes_cell", "test_spikes_model_all": "spikes_model",
                "test_median_gamma_all": "median_gamma",
                "test_subthreshold_r2": "subthreshold_r2"}


def cell_row(cell: str, free: Sequence[str], methods: Mapping[str, dict] | None,
             wall_s: float | None, reason: str | None = None) -> dict:
    """A cell's row from its methods' metrics.json entries (None: not fitted): its best
    method's parameters and scores; status fitted or poor (that method's), failed (no finite
    loss) or skipped (`reason`: why it could not be fitted)."""
    row = {"cell": cell, "method": None, "params": {n: None for n in free}, "loss": None,
           "rmse_mV": None, "gamma": None, "n_evals": None, "wall_s": wall_s,
           "status": "skipped", "reason": reason}
    if not methods:
        return row
    method, best = min(methods.items(),
                       key=lambda kv: math.inf if kv[1]["loss"] is None else kv[1]["loss"])
    row.update(method=method, params=best["params"], loss=best["loss"],
               rmse_mV=best["rmse_mV"], gamma=best["gamma"],
               n_evals=sum(m["n_evals"] for m in methods.values()))
    if wall_s is None:
        row["wall_s"] = sum(m["wall_s"] for m in methods.values())
    if best["loss"] is None:
        row.update(status="failed", reason="no method reached a finite loss")
    else:
        row.update(status=best.get("status", "fitted"), reason=best.get("reason"))
        for key in ("fitted_sweeps", "test"):
            if key in best:
                row[key] = best[key]
    return row


def _csv_value(value) -> str:
    return "" if value is None else format(value, ".10g") if isinstance(value, float) \
        else str(value)


def _test_values(row: dict) -> list:
    """A row's TEST_COLUMNS values (None without held-out sweeps)."""
    test = row.get("test")
    if test is None:
        return [None] * len(TEST_COLUMNS)
    return [len(test["sweeps"]) if key is None else test[key] for key in TEST_COLUMNS.values()]


def write_cells_csv(out_dir: Path, free: Sequence[str], rows: Sequence[dict]) -> Path:
    """cells.csv (atomically): one row per cell, the fitted parameters after its identifier
    and method, the held-out scores (TEST_COLUMNS) last."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([COLUMNS[0], COLUMNS[1], *free, *COLUMNS[2:], *TEST_COLUMNS])
    for r in rows:
        writer.writerow([_csv_value(r["cell"]), _csv_value(r["method"]),
                         *(_csv_value(r["params"][n]) for n in free),
                         *(_csv_value(r[c]) for c in COLUMNS[2:]),
                         *(_csv_value(v) for v in _test_values(r))])
    path = Path(out_dir) / "cells.csv"
    atomic_write_bytes(path, buf.getvalue().encode())
    return path


def or_dash(value, spec: str) -> str:
    """`value` formatted by `spec`, '-' for None (a score that does not exist)."""
    return "-" if value is None else format(value, spec)


def format_test(test: dict) -> str:
    """The printed summary of the held-out sweeps' scores: spikes of cell and model and the
    median gamma inside the depolarizing steps (evoked) and over every sweep (all)."""
    n, evoked = len(test["sweeps"]), test["evoked_sweeps"]
    lines = [f"{f'held-out sweeps: {n}, {evoked} with a depolarizing step':<52}"
             f"{'cell':>7}{'model':>7}{'median gamma':>14}"]
    for label, cell, model, gamma in (
            ("evoked: inside the depolarizing steps", test["spikes_cell_evoked"],
             test["spikes_model_evoked"], test["median_gamma_evoked"]),
            ("all: every spike, every sweep", test["spikes_cell"], test["spikes_model"],
             test["median_gamma"])):
        lines.append(f"{label:<52}{or_dash(cell, 'd'):>7}{or_dash(model, 'd'):>7}"
                     f"{or_dash(gamma, '.3g'):>14}")
    if evoked < n:
        lines.append(f"median whole-sweep gamma of the {n - evoked} sweeps without a "
                     f"depolarizing step: {or_dash(test['median_gamma_other'], '.3g')}")
    return "\n".join(lines)
