"""Fitting many recorded cells in one run (--data: NWB or ABF files): each selected cell's
problem is built from its sweeps, and cells of one kind are fitted together in batches (split
over the processes of a multi-process run); one row per cell in
cells.csv and metrics.json's `cells`, a grid of the fits and the fitted parameters'
distribution across cells. A cell that cannot be fitted is a row with its status and reason;
Ctrl-C keeps the finished cells' rows."""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from models.spec import NeuronModel
from utils.fitting.config import FitConfig, FitDefaults
from utils.fitting.objectives import cohort_key, rows_mesh
from utils.fitting.pipeline import fit_all, run_problem
from utils.fitting.plots import MAX_CELL_PANELS, plot_cells
from utils.fitting.problem import Problem, cell_problem, check_flags, traces_of
from utils.fitting.recorded import HeldOut
from utils.fitting.recordings import (Cell, find_files, left_out_lines, read_cells,
                                      select_cells)
from utils.fitting.rows import FIT_STATES, cell_row, or_dash, write_cells_csv
from utils.run import RunStatus, UserError, make_out_dir, write_config, write_metrics

__all__ = ["load_cells", "recorded_problem", "fit_cells", "format_cells_table", "run_cells"]



def load_cells(config: FitConfig) -> list[tuple[Cell, Cell | None]]:
    """The cells --data, --data_format and --cells select, each as its sweeps to fit
    (--sweeps) and its held-out sweeps (--test_sweeps; None: none)."""
    files = find_files(config.data, config.data_format)
    cells = select_cells(read_cells(files, config.data_format), config.cells)
    fit = select_cells(cells, "", config.sweeps) if config.sweeps else cells
    for line in left_out_lines(fit, config.sweeps):
        print(f"warning: {line}", file=sys.stderr)
    if isinstance(config.test_sweeps, tuple):
        test = select_cells(cells, "", config.test_sweeps)
    elif config.test_sweeps == "none":
        return [(c, None) for c in fit]
    else:
        test = [_auto_test(whole, chosen, bool(config.sweeps))
                for whole, chosen in zip(cells, fit)]
    pairs = []
    for chosen, held in zip(fit, test):
        if not config.sweeps and config.test_sweeps == "auto":
            kept = {s.number for s in held.sweeps}
            chosen = dataclasses.replace(chosen, sweeps=[s for s in chosen.sweeps
                                                         if s.number not in kept])
        pairs.append((chosen, held if held.sweeps else None))
    return pairs


def _auto_test(cell: Cell, chosen: Cell, selected: bool) -> Cell:
    """The held-out sweeps of --test_sweeps auto: the sweeps --sweeps left out or, without
    --sweeps, every third sweep (the third, sixth, ...) of a cell with at least 3."""
    fitted = {s.number for s in chosen.sweeps}
    if selected:
        return dataclasses.replace(cell, sweeps=[s for s in cell.sweeps
                                                 if s.number not in fitted])
    return dataclasses.replace(cell, sweeps=cell.sweeps[2::3] if len(cell.sweeps) >= 3 else [])


def _refuse_unusable(cells: Sequence[Cell]) -> None:
    """One line, before anything is written, when every selected cell holds a reason it
    cannot be used (its file unreadable, no usable sweep, sweeps not paired)."""
    if len(cells) == 1 and cells[0].reason:
        raise UserError(cells[0].reason)
    if cells and all(c.reason for c in cells):
        raise UserError(f"none of the {len(cells)} cells can be fitted: {cells[0].reason} "
                        f"(and {len(cells) - 1} more)")


EVAL_BYTES = 2 * 1024 ** 3  # memory one batched evaluation of a cohort's starts may take


def _cells_per_batch(problem: Problem, n_starts: int) -> int:
    """How many cells' starts one evaluation may hold: a row simulates D + 1 copies (value and
    forward-mode tangents) of every sample of its traces, and the scan keeps about 8 arrays
    of that size (states, tangents, outputs)."""
    row = (len(problem.free) + 1) * problem.current.size * 8 * 8
    return max(1, EVAL_BYTES // (row * n_starts))


def _split(items: Sequence, parts: int) -> list[list]:
    """`items` in `parts` consecutive pieces, as even as possible."""
    bounds = np.linspace(0, len(items), parts + 1).round().astype(int)
    return [list(items[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _batches(items: Sequence, size: int) -> list[list]:
    """`items` in consecutive batches of at most `size`, as even as possible (every batch of a
    cohort compiles to the same shapes)."""
    return _split(items, -(-len(items) // size)) if items else []


def _cohort_batches(problems: Sequence[tuple[Cell, Problem]],
                    n_starts: int) -> list[list[tuple[Cell, Problem]]]:
    """The cells grouped into cohorts (problems that share compiled objectives: same kind,
    same trace shapes), each cut into batches that fit EVAL_BYTES."""
    cohorts: dict[tuple, list] = {}
    for item in problems:
        cohorts.setdefault(cohort_key(item[1]), []).append(item)
    return [batch for group in cohorts.values()
            for batch in _batches(group, _cells_per_batch(group[0][1], n_starts))]


def _fit_batch(config: FitConfig, batch: Sequence[tuple[Cell, Problem]]) -> list[tuple]:
    """Fit the cells of one cohort batch together (pipeline.fit_all); each cell's (row,
    problem, fits). KeyboardInterrupt if Ctrl-C stopped the fit."""
    problems = [p for _, p in batch]
    every = fit_all(problems, config.methods, n_starts=config.n_starts, budget=config.budget,
                    popsize=config.popsize, maxiter=config.maxiter, seed=config.seed,
                    repeats=config.repeats, n_refine=config.n_refine, confirm=config.confirm,
                    show_progress=False, devices=config.devices)
    if every[0].was_interrupted:
        raise KeyboardInterrupt
    out = []
    for (cell, problem), fits in zip(batch, every):
        row = cell_row(cell.id, problem.free, fits.metrics, None)
        row.update(dt_ms=problem.dt, sweeps=[s.number for s in cell.sweeps],
                   estimates=problem.estimates.as_dict() if problem.estimates else None,
                   methods={m: {k: v for k, v in e.items() if k != "history"}
                            for m, e in fits.metrics.items()})
        out.append((row, problem, fits))
    return out


def _problems(d: FitDefaults, config: FitConfig, model: NeuronModel, free: list[str],
              cells: Sequence[tuple[Cell, Cell | None]]) -> tuple[dict, dict]:
    """Each cell's problem, or its skipped row (why it cannot be fitted), by cell id."""
    problems, skipped = {}, {}
    for cell, held in cells:
        start = time.perf_counter()
        try:
            problems[cell.id] = cell, recorded_problem(model, d, config, cell, held)
        except UserError as err:
            skipped[cell.id] = cell_row(cell.id, free, None, time.perf_counter() - start,
                                        str(err))
    return problems, skipped


def recorded_problem(model: NeuronModel, d: FitDefaults, config: FitConfig, cell: Cell,
                     held: Cell | None) -> Problem:
    """The problem of one recorded cell, with its held-out sweeps (UserError: why it cannot
    be fitted)."""
    current, voltage, dt = cell.traces()
    test = None
    if held is not None:
        t_current, t_voltage, t_dt = held.traces()
        if t_dt != dt:
            raise UserError(f"{cell.id}: the test sweeps are sampled every {t_dt:g} ms, the "
                            f"fitted ones every {dt:g} ms")
        test = HeldOut(t_current, t_voltage, tuple(s.number for s in held.sweeps))
    return cell_problem(model, d, config, current, voltage, dt, cell.id, test,
                        tuple(s.number for s in cell.sweeps))


def fit_cells(d: FitDefaults, config: FitConfig, model: NeuronModel,
              pairs: Sequence[tuple[Cell, Cell | None]], out_dir: Path | None,
              base: dict) -> tuple[list[dict], dict]:
    """Fit every cell: the cells of one kind in batches whose starts are evaluated together
    (`_cohort_batches`), this process's consecutive share of them in a multi-process run.
    cells.csv and metrics.json are rewritten after each batch (by process 0: `out_dir`, None
    elsewhere). Returns the rows of every cell, in the order of `cells`, and this process's
    fitted cells' problems and fits (for the figures). Ctrl-C: the finished cells' rows stay
    written, KeyboardInterrupt goes on."""
    import jax

    free = base["free_params"]
    cells = [cell for cell, _ in pairs]
    problems, rows = _problems(d, config, model, free, pairs)
    mine = _split(list(problems.values()), jax.process_count())[jax.process_index()]
    fitted: dict = {}

    def ordered() -> list[dict]:
        return [rows[c.id] for c in cells if c.id in rows]

    def save(extra: dict | None = None) -> None:
        if out_dir is not None:
            write_cells_csv(out_dir, free, ordered())
            write_metrics(out_dir, {**base, "cells": ordered(), **(extra or {})})

    with tqdm(total=len(rows) + len(mine), desc="cells", unit="cell", mininterval=0.5) as bar:
        bar.update(len(rows))
        for batch in _cohort_batches(mine, config.n_starts):
            try:
                results = _fit_batch(config, batch)
            except KeyboardInterrupt:
                save({"interrupted": True})
                print(f"interrupted: rows of {len(rows)} finished cells in {out_dir}",
                      file=sys.stderr)
                raise
            for row, problem, fits in results:
                rows[row["cell"]] = row
                fitted[row["cell"]] = problem, fits
            save()
            bar.update(len(batch))
    rows = gather_rows(rows)
    return [rows[c.id] for c in cells], _panels(rows, problems, fitted, cells)


def _panels(rows: dict, problems: dict, fitted: dict, cells: Sequence[Cell]) -> dict:
    """cells_fits.png's panels, the first MAX_CELL_PANELS fitted cells: (problem, method,
    fitted V [N, T]); a cell fitted by another process simulated here from its row."""
    panels = {}
    for cell in cells:
        row = rows[cell.id]
        if row["status"] not in FIT_STATES or len(panels) == MAX_CELL_PANELS:
            continue
        problem = problems[cell.id][1]
        if cell.id in fitted:
            v = fitted[cell.id][1].traces[row["method"]][0]
        else:
            v = traces_of(problem, row["params"])[0]
        panels[cell.id] = problem, row["method"], v
    return panels


def gather_rows(rows: dict) -> dict:
    """Every process's rows, by cell id, in every process (a one-process run: `rows`)."""
    import jax

    if jax.process_count() == 1:
        return rows
    from utils.training.parallel import gather_json

    return {k: v for part in gather_json(rows) for k, v in part.items()}


def _held_out_gammas(row: dict) -> str:
    """A row's held-out median gammas, evoked / all ('-' where there is none)."""
    test = row.get("test")
    if test is None:
        return "-"
    return " / ".join(or_dash(g, ".3g")
                      for g in (test["median_gamma_evoked"], test["median_gamma"]))


def format_cells_table(free: Sequence[str], rows: Sequence[dict], units: dict) -> str:
    """The printed table: one line per cell, its identifier in full (two cells of files of
    the same name in two folders differ only in their path's start), the median gamma of
    its held-out sweeps inside their depolarizing steps and over every sweep last."""
    labels = [f"{n} ({units[n]})" for n in free]
    width = max([24] + [len(r["cell"]) + 1 for r in rows])
    head = (f"{'cell':<{width}}{'status':<9}{'loss':>11}{'RMSE mV':>9}{'gamma':>8}"
            f"{'wall s':>10}" + "".join(f"{label:>14}" for label in labels)
            + f"{'held-out gamma evoked / all':>29}")
    lines = [head, "-" * len(head)]
    for r in rows:
        nums = [(r["loss"], ".4g", 11), (r["rmse_mV"], ".3g", 9), (r["gamma"], ".3g", 8),
                (r["wall_s"], ".3g", 10)] + [(r["params"][n], ".5g", 14) for n in free]
        lines.append(f"{r['cell']:<{width}}{r['status']:<9}" + "".join(
            or_dash(v, spec).rjust(w) for v, spec, w in nums)
            + _held_out_gammas(r).rjust(29))
        if r["reason"]:
            lines.append(f"{'':<{width}}{r['reason']}")
    return "\n".join(lines)


def _base_metrics(config: FitConfig, model: NeuronModel, free: list[str], fixed: dict,
                  cells: Sequence[Cell]) -> dict:
    """metrics.json's description of the run, before its cells' rows."""
    return {"model": model.name, "target": config.target, "source": "recordings",
            "files": sorted({str(c.path) for c in cells}), "free_params": free,
            "fixed_params": fixed, "units": dict(model.units),
            "gamma_window_ms": config.gamma_window, "test_sweeps": (
                list(config.test_sweeps) if isinstance(config.test_sweeps, tuple)
                else config.test_sweeps)}


def run_cells(d: FitDefaults, config: FitConfig) -> dict:
    """The run of --data: every input checked before anything is written; one cell runs as
    a single-cell run (pipeline.run_problem) plus its cells.csv row; several cells are fitted
    in cohort batches, split over the processes of a multi-process run (JAX_COORDINATOR_ADDRESS
    ...; process 0 writes the run folder). Returns the metrics written."""
    from utils.training.parallel import init_distributed, is_main_process

    model = d.make_model(config)
    free, fixed = check_flags(model, d, config)
    pairs = load_cells(config)
    cells = [cell for cell, _ in pairs]
    _refuse_unusable(cells)
    distributed = init_distributed()
    if len(cells) == 1 and not distributed:
        problem = recorded_problem(model, d, config, *pairs[0])
        return run_problem(d, config, problem, cell=cells[0].id)
    rows_mesh(config.devices)
    main = is_main_process()
    out_dir = make_out_dir(d.script, config.out_dir, reuse=False) if main else None
    base = _base_metrics(config, model, free, fixed, cells)
    if not main:
        return {**base, "cells": fit_cells(d, config, model, pairs, None, base)[0]}
    write_config(out_dir, config.to_flat())
    with RunStatus(out_dir):
        rows, panels = fit_cells(d, config, model, pairs, out_dir, base)
        write_cells_csv(out_dir, free, rows)
        write_metrics(out_dir, {**base, "cells": rows})
        print(format_cells_table(base["free_params"], rows, model.units))
        plot_cells(panels, rows, base["free_params"], model.units, out_dir, show=config.show)
        print(f"results in {out_dir}")
        if not any(r["status"] in FIT_STATES for r in rows):
            raise UserError(f"no cell could be fitted (reasons in {out_dir / 'cells.csv'})")
    return {**base, "cells": rows}
