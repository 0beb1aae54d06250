"""Fitting many recorded cells in one run (--data: NWB or ABF files): each selected cell's
problem is built from its sweeps and fitted in turn in this process; one row per cell in
cells.csv and metrics.json's `cells`, a grid of the fits and the fitted parameters'
distribution across cells. A cell that cannot be fitted is a row with its status and reason;
Ctrl-C keeps the finished cells' rows."""
from __future__ import annotations

import csv
import io
import math
import sys
import time
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from models.spec import NeuronModel
from utils.fitting.config import FitConfig, FitDefaults
from utils.fitting.pipeline import Fits, fit_all, run_problem
from utils.fitting.plots import plot_cells
from utils.fitting.problem import Problem, cell_problem, check_flags
from utils.fitting.recordings import Cell, find_files, read_cells, select_cells
from utils.fitting.objectives import population_mesh
from utils.run import (RunStatus, UserError, atomic_write_bytes, make_out_dir, write_config,
                       write_metrics)

__all__ = ["load_cells", "cell_row", "write_cells_csv", "fit_cells", "format_cells_table",
           "run_cells"]

COLUMNS = ("cell", "method", "loss", "rmse_mV", "gamma", "n_evals", "wall_s", "status",
           "reason")


def load_cells(config: FitConfig) -> list[Cell]:
    """The cells and sweeps --data, --data_format, --cells and --sweeps select."""
    files = find_files(config.data, config.data_format)
    return select_cells(read_cells(files, config.data_format), config.cells, config.sweeps)


def cell_row(cell: str, free: Sequence[str], fits: Fits | None, wall_s: float | None,
             reason: str | None = None) -> dict:
    """A cell's row: its best method's parameters and scores; status fitted, failed (no
    finite loss) or skipped (`reason`: why it could not be fitted)."""
    row = {"cell": cell, "method": None, "params": {n: None for n in free}, "loss": None,
           "rmse_mV": None, "gamma": None, "n_evals": None, "wall_s": wall_s,
           "status": "skipped", "reason": reason}
    if fits is None or not fits.metrics:
        return row
    method, best = min(fits.metrics.items(),
                       key=lambda kv: math.inf if kv[1]["loss"] is None else kv[1]["loss"])
    row.update(method=method, params=best["params"], loss=best["loss"],
               rmse_mV=best["rmse_mV"], gamma=best["gamma"],
               n_evals=sum(m["n_evals"] for m in fits.metrics.values()))
    if wall_s is None:
        row["wall_s"] = sum(m["wall_s"] for m in fits.metrics.values())
    if best["loss"] is None:
        row.update(status="failed", reason="no method reached a finite loss")
    else:
        row.update(status="fitted")
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


def _fit_one(d: FitDefaults, config: FitConfig, model: NeuronModel, free: list[str],
             cell: Cell) -> tuple[dict, tuple[Problem, Fits] | None]:
    """One cell's row and, when fitted, its problem and fits; KeyboardInterrupt goes on."""
    start = time.perf_counter()
    try:
        current, voltage, dt = cell.traces()
        problem = cell_problem(model, d, config, current, voltage, dt, cell.id)
    except UserError as err:
        return cell_row(cell.id, free, None, time.perf_counter() - start, str(err)), None
    fits = fit_all(problem, config.methods, n_starts=config.n_starts, budget=config.budget,
                   popsize=config.popsize, maxiter=config.maxiter, seed=config.seed,
                   repeats=config.repeats, n_refine=config.n_refine, confirm=config.confirm, show_progress=False,
                   devices=config.devices)
    if fits.was_interrupted:
        raise KeyboardInterrupt
    row = cell_row(cell.id, problem.free, fits, time.perf_counter() - start)
    row.update(dt_ms=dt, sweeps=[s.number for s in cell.sweeps],
               methods={m: {k: v for k, v in e.items() if k != "history"}
                        for m, e in fits.metrics.items()})
    return row, (problem, fits)


def fit_cells(d: FitDefaults, config: FitConfig, model: NeuronModel, cells: Sequence[Cell],
              out_dir: Path, base: dict) -> tuple[list[dict], dict]:
    """Fit every cell in turn, rewriting cells.csv and metrics.json after each; returns the
    rows and the fitted cells' problems and fits (for the figures). Ctrl-C: the finished
    cells' rows stay written, KeyboardInterrupt goes on."""
    free = base["free_params"]
    rows: list[dict] = []
    fitted: dict = {}
    with tqdm(total=len(cells), desc="cells", unit="cell", mininterval=0.5) as bar:
        for cell in cells:
            try:
                row, fit = _fit_one(d, config, model, free, cell)
            except KeyboardInterrupt:
                write_metrics(out_dir, {**base, "cells": rows, "interrupted": True})
                print(f"interrupted during cell {cell.id}: rows of {len(rows)} finished "
                      f"cells in {out_dir}", file=sys.stderr)
                raise
            rows.append(row)
            if fit is not None:
                fitted[cell.id] = fit
            write_cells_csv(out_dir, free, rows)
            write_metrics(out_dir, {**base, "cells": rows})
            bar.update(1)
    return rows, fitted


def format_cells_table(free: Sequence[str], rows: Sequence[dict], units: dict) -> str:
    """The printed table: one line per cell."""
    labels = [f"{n} ({units[n]})" for n in free]
    head = (f"{'cell':<24}{'status':<9}{'loss':>11}{'RMSE mV':>9}{'gamma':>8}{'wall s':>10}"
            + "".join(f"{label:>14}" for label in labels))
    lines = [head, "-" * len(head)]
    for r in rows:
        nums = [(r["loss"], ".4g", 11), (r["rmse_mV"], ".3g", 9), (r["gamma"], ".3g", 8),
                (r["wall_s"], ".3g", 10)] + [(r["params"][n], ".5g", 14) for n in free]
        lines.append(f"{r['cell'][:23]:<24}{r['status']:<9}" + "".join(
            ("-" if v is None else format(v, spec)).rjust(w) for v, spec, w in nums))
        if r["reason"]:
            lines.append(f"{'':<24}{r['reason']}")
    return "\n".join(lines)


def _base_metrics(config: FitConfig, model: NeuronModel, free: list[str], fixed: dict,
                  cells: Sequence[Cell]) -> dict:
    """metrics.json's description of the run, before its cells' rows."""
    return {"model": model.name, "target": config.target, "source": "recordings",
            "files": sorted({str(c.path) for c in cells}), "free_params": free,
            "fixed_params": fixed, "units": dict(model.units),
            "gamma_window_ms": config.gamma_window}


def run_cells(d: FitDefaults, config: FitConfig) -> dict:
    """The run of --data: every input checked before anything is written; one cell runs as
    a single-cell run (pipeline.run_problem) plus its cells.csv row; several cells are fitted
    in turn. Returns the metrics written."""
    model = d.make_model(config)
    free, fixed = check_flags(model, d, config)
    cells = load_cells(config)
    if len(cells) == 1:
        current, voltage, dt = cells[0].traces()
        problem = cell_problem(model, d, config, current, voltage, dt, cells[0].id)
        return run_problem(d, config, problem, cell=cells[0].id)
    population_mesh(config.devices)
    out_dir = make_out_dir(d.script, config.out_dir, reuse=False)
    write_config(out_dir, config.to_flat())
    base = _base_metrics(config, model, free, fixed, cells)
    with RunStatus(out_dir):
        rows, fitted = fit_cells(d, config, model, cells, out_dir, base)
        print(format_cells_table(base["free_params"], rows, model.units))
        plot_cells(fitted, rows, base["free_params"], model.units, out_dir, show=config.show)
        print(f"results in {out_dir}")
        if not any(r["status"] == "fitted" for r in rows):
            raise UserError(f"no cell could be fitted (reasons in {out_dir / 'cells.csv'})")
    return {**base, "cells": rows}
