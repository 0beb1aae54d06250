"""A recorded cell's sweeps, what was left out of them and why, and the selection by --cells
and --sweeps."""
from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from utils.run import UserError


@dataclass
class Sweep:
    """One sweep of one cell: stimulus in nA, response in mV, sampled every `dt` ms."""

    number: int
    current: np.ndarray
    voltage: np.ndarray
    dt: float


@dataclass
class Cell:
    """A cell's usable sweeps, as read; `left_out`: sweep number -> why that sweep cannot be
    used (one line); `reason`: why the whole cell cannot be used (its file unreadable, its
    responses not paired with stimuli, no usable sweep), None for a cell to fit."""

    id: str
    path: Path
    sweeps: list[Sweep] = field(default_factory=list)
    left_out: dict[int, str] = field(default_factory=dict)
    reason: str | None = None

    def traces(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Current [N, T] nA, voltage [N, T] mV and dt (ms) of the sweeps; UserError (the
        reason reported for this cell) for a cell that cannot be used, no sweep, sweeps
        sampled at different rates or of different lengths."""
        if self.reason:
            raise UserError(self.reason)
        if not self.sweeps:
            raise UserError(f"{self.id}: no sweep selected")
        _check_rates(self.id, self.sweeps)
        lengths = {len(s.current) for s in self.sweeps}
        if len(lengths) > 1:
            raise UserError(f"{self.id}: the sweeps differ in length ({min(lengths)} to "
                            f"{max(lengths)} samples)")
        return (np.stack([s.current for s in self.sweeps]),
                np.stack([s.voltage for s in self.sweeps]), self.sweeps[0].dt)


def _check_rates(cell: str, sweeps: list[Sweep]) -> None:
    """Every sweep sampled at the same rate (nothing is resampled)."""
    first = sweeps[0]
    for s in sweeps:
        if not np.isclose(s.dt, first.dt, rtol=1e-9, atol=0):
            raise UserError(f"{cell}: sweep {s.number} is sampled every {s.dt:g} ms, sweep "
                            f"{first.number} every {first.dt:g} ms (mixed rates are not "
                            "resampled; leave one out with --sweeps)")


def usable_cell(cell_id: str, path: Path, sweeps: list[Sweep],
                left_out: dict[int, str]) -> Cell:
    """A cell of the sweeps read, sorted by number; a cell whose every sweep was left out
    holds why as its `reason`."""
    cell = Cell(cell_id, path, sorted(sweeps, key=lambda s: s.number), dict(left_out))
    if not sweeps:
        number, why = next(iter(left_out.items()))
        more = f"; {len(left_out) - 1} more left out" if len(left_out) > 1 else ""
        cell.reason = f"{cell_id}: no usable sweep (sweep {number}: {why}{more})"
    return cell


def left_out_lines(cells: Sequence[Cell], sweeps: Sequence[int] = ()) -> list[str]:
    """One line per sweep left out of `cells` (of those in `sweeps` where given): what a run
    prints about them."""
    return [f"{c.id}: sweep {n} left out: {why}" for c in cells if c.reason is None
            for n, why in c.left_out.items() if not sweeps or n in sweeps]


# --------------------------------------------------------------------------- selection

def parse_index_list(text: str) -> tuple[int, ...]:
    """'0,2,5-7' -> (0, 2, 5, 6, 7) (argparse type of --sweeps)."""
    out: list[int] = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not m or (m[2] is not None and int(m[2]) < int(m[1])):
            raise argparse.ArgumentTypeError(f"expected numbers or ranges like 0,2,5-7, got "
                                             f"{item!r}")
        out.extend(range(int(m[1]), int(m[2] or m[1]) + 1))
    return tuple(dict.fromkeys(out))


def _pick_cells(cells: list[Cell], wanted: str) -> list[Cell]:
    """The cells named in `wanted` (identifiers, or indices in the listed order)."""
    by_id = {c.id: c for c in cells}
    picked = []
    for item in filter(None, (s.strip() for s in wanted.split(","))):
        if item in by_id:
            picked.append(by_id[item])
        elif item.isdigit() and int(item) < len(cells):
            picked.append(cells[int(item)])
        else:
            known = ", ".join(c.id for c in cells[:5]) + (", ..." if len(cells) > 5 else "")
            raise UserError(f"--cells: no cell {item!r} (by identifier or index 0-"
                            f"{len(cells) - 1}; the cells: {known})")
    return list({c.id: c for c in picked}.values())


def _missing_sweeps(chosen: list[Cell], sweeps: Sequence[int]) -> str:
    """The refusal of sweep numbers no selected cell holds, with why where one was left out."""
    held = {s.number for c in chosen for s in c.sweeps}
    missing = [n for n in sweeps if n not in held]
    why = next((f"; {c.id} left sweep {n} out: {c.left_out[n]}" for n in missing
                for c in chosen if n in c.left_out), "")
    return (f"--sweeps: no selected cell holds sweep {', '.join(map(str, missing))} (they "
            f"hold {', '.join(map(str, sorted(held))) or 'none'}{why})") if missing else ""


def select_cells(cells: list[Cell], cells_flag: str = "",
                 sweeps: Sequence[int] = ()) -> list[Cell]:
    """The cells and sweeps selected by --cells and --sweeps (empty: all); a sweep number
    that no selected cell holds is refused."""
    chosen = _pick_cells(cells, cells_flag) if cells_flag.strip() else cells
    if sweeps:
        refusal = _missing_sweeps(chosen, sweeps)
        if refusal:
            raise UserError(refusal)
        chosen = [dataclasses.replace(c, sweeps=[s for s in c.sweeps if s.number in sweeps])
                  for c in chosen]
    return chosen
