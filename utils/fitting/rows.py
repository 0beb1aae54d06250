"""A recorded cell's row in cells.csv and metrics.json's `cells`: its best method's parameters
and scores, its status and reason; cells.csv written atomically."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Mapping, Sequence

from utils.run import atomic_write_bytes

__all__ = ["FIT_STATES", "COLUMNS", "cell_row", "write_cells_csv"]

FIT_STATES = ("fitted", "poor")  # a row with fitted parameters
COLUMNS = ("cell", "method", "loss", "rmse_mV", "gamma", "n_evals", "wall_s", "status",
           "reason")


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


def write_cells_csv(out_dir: Path, free: Sequence[str], rows: Sequence[dict]) -> Path:
    """cells.csv (atomically): one row per cell, the fitted parameters after its identifier
    and method."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([COLUMNS[0], COLUMNS[1], *free, *COLUMNS[2:]])
    for r in rows:
        writer.writerow([_csv_value(r["cell"]), _csv_value(r["method"]),
                         *(_csv_value(r["params"][n]) for n in free),
                         *(_csv_value(r[c]) for c in COLUMNS[2:])])
    path = Path(out_dir) / "cells.csv"
    atomic_write_bytes(path, buf.getvalue().encode())
    return path
