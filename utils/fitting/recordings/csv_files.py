"""Loading users' recordings: current/voltage traces and spike times from CSV files.

Trace files hold one trace per row and one sample per column. The layout is decided from
evidence that cannot be data, and a row is never dropped silently:
- line 1 is a header when (after an optional index label: empty, "index", "Unnamed: 0", "#",
  "trace") its cells are all non-numeric, or exactly the column numbers 0, 1, ..., T-1 that
  pandas' `to_csv` writes. Column numbers could also be a trace (a ramp), so for them the other
  files decide: the reading under which currents, voltages and spike rows agree in count (a
  voltage trace that reads exactly 0, 1, 2, ... mV is not a recording, so there it is a
  header); when that does not settle it, the error asks for `--csv_header yes|no`. A line 1
  that mixes numbers with empty or non-numeric cells is an error naming the cell;
- the first column is an index only when the header's first cell says so (an index label
  above) or with `--csv_index yes`, never because it happens to read 0, 1, ..., N-1.
"""
from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.fitting.config import CURRENT_UNITS, LAYOUT_CHOICES
from utils.run import UserError

__all__ = ["CURRENT_UNITS", "LAYOUT_CHOICES", "MAX_CURRENT_NA", "load_traces", "load_spike_times",
           "load_recordings", "check_spike_times", "check_current", "check_voltage",
           "check_recorded_cell"]

INDEX_HEADERS = {"", "index", "unnamed: 0", "#", "trace"}
MAX_CURRENT_NA = 1e4    # larger currents are taken as a unit mistake
MAX_VOLTAGE_MV = 1000.0  # a membrane potential beyond this is not in mV
MIN_VOLTAGE_MV = 1.0     # ... nor one that never reaches this
MIN_STIMULUS_NA = 1e-3   # a recorded cell's stimulus that is not zero reaches 1 pA
MIN_RESPONSE_MV = 0.5    # a recorded cell's response spans at least this (docs/NOTES.md)


def _check_file(path: Path, what: str = "file") -> None:
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a {what}")
    if not path.is_file():
        raise UserError(f"{path}: no such file")


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every non-empty line."""
    _check_file(path)
    try:
        with open(path, newline="") as fh:
            rows = [(k + 1, [c.strip() for c in row]) for k, row in enumerate(csv.reader(fh))]
    except (UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{path}: not a readable CSV file ({err})") from None
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror})") from None
    return [(n, r) for n, r in rows if any(r)]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _to_float(path: Path, rows: list[tuple[int, list[str]]], col0: int = 0) -> np.ndarray:
    out = []
    for line, row in rows:
        values = []
        for c, cell in enumerate(row):
            if not _is_number(cell):
                what = "is empty" if cell == "" else f"{cell!r} is not a number"
                raise UserError(f"{path}: line {line}, column {c + 1 + col0}: {what}")
            values.append(float(cell))
        out.append(values)
    return np.array(out, dtype=float)


def _is_column_numbers(cells: list[str]) -> bool:
    """Cells reading exactly 0, 1, ..., K-1 (pandas' column labels of a headerless frame)."""
    try:
        values = [float(c) for c in cells]
    except ValueError:
        return False
    return len(values) >= 2 and values == list(range(len(values)))


@dataclass
class _Table:
    """A trace file parsed up to the one question the file alone may not answer: whether a
    line 1 of column numbers is a header (`ambiguous`)."""

    path: Path
    rows: list[tuple[int, list[str]]]   # data rows, index column still in
    header: list[str] | None
    index: bool                         # drop the first column
    ambiguous: bool                     # line 1 reads 0..T-1: a header or a trace?

    def data(self, line1_is_header: bool | None = None) -> np.ndarray:
        rows = self.rows
        if self.ambiguous and line1_is_header:
            rows = rows[1:]
        if not rows:
            raise UserError(f"{self.path}: the file holds a header row but no data")
        lengths = {len(r) for _, r in rows}
        if len(lengths) > 1:
            line, bad = next((n, r) for n, r in rows if len(r) != len(rows[0][1]))
            raise UserError(f"{self.path}: ragged rows: line {line} has {len(bad)} values, the "
                            f"first data line (line {rows[0][0]}) {len(rows[0][1])}")
        if self.index:
            rows = [(n, r[1:]) for n, r in rows]
        data = _to_float(self.path, rows, col0=int(self.index))
        if data.shape[1] < 2:
            raise UserError(f"{self.path}: each trace needs at least 2 samples")
        if not np.all(np.isfinite(data)):
            r, c = np.argwhere(~np.isfinite(data))[0]
            raise UserError(f"{self.path}: trace {r + 1}, sample {c + 1} is {data[r, c]} "
                            "(NaN or infinite)")
        return data

    def n_rows(self, line1_is_header: bool) -> int:
        return len(self.rows) - int(self.ambiguous and line1_is_header)


def _parse(path: str | Path, header: str = "auto", index: str = "auto") -> _Table:
    path = Path(path)
    rows = _read_rows(path)
    if not rows:
        raise UserError(f"{path}: the file holds no data")
    first = rows[0][1]
    labelled = len(first) > 1 and first[0].lower() in INDEX_HEADERS
    rest = first[1:] if labelled else first
    head, ambiguous = None, False
    if header == "yes":
        head = first
    elif header == "auto":
        if not any(_is_number(c) for c in rest) and all(rest):
            head = first  # words: cannot be data
        elif labelled and _is_column_numbers(rest):
            head = first  # pandas to_csv with its index: ",0,1,...,T-1"
        elif _is_column_numbers(first):
            ambiguous = True  # pandas to_csv(index=False), or a ramp 0, 1, 2, ...
        elif not all(_is_number(c) for c in first):
            c = next(k for k, cell in enumerate(first) if not _is_number(cell))
            what = "is empty" if first[c] == "" else f"{first[c]!r} is not a number"
            raise UserError(
                f"{path}: line {rows[0][0]}, column {c + 1}: {what} (line 1 is read as a "
                "header only when none of its cells is a number, or it reads 0, 1, ..., "
                "T-1; give --csv_header yes if it is one)")
    if head is not None:
        rows = rows[1:]
    if index == "yes":
        use_index = True
    elif index == "no":
        use_index = False
    else:
        use_index = head is not None and head[0].lower() in INDEX_HEADERS and len(head) > 1
    return _Table(path, rows, head, use_index, ambiguous)


def _voltage_header(table: _Table) -> None:
    """A voltage 'trace' reading exactly 0, 1, 2, ... mV is no recording: a header."""
    if table.ambiguous and len(table.rows[0][1]) >= 3 and len(table.rows) > 1:
        table.header, table.rows, table.ambiguous = table.rows[0][1], table.rows[1:], False


def load_traces(path: str | Path, scale: float = 1.0, header: str = "auto",
                index: str = "auto") -> np.ndarray:
    """Traces [N, T] from a CSV with one trace per row, one sample per column, times `scale`.

    Layout rules in the module docstring; `header` and `index` ("auto", "yes", "no") are
    --csv_header and --csv_index. A file alone whose line 1 reads 0, 1, ..., T-1 is refused
    in "auto" mode (load_recordings decides it from the other files)."""
    table = _parse(path, header, index)
    if table.ambiguous:
        raise UserError(_ambiguous_message([table]))
    return table.data() * scale


def _ambiguous_message(tables: list[_Table]) -> str:
    names = " and ".join(str(t.path) for t in tables)
    return (f"{names}: line 1 reads 0, 1, ..., T-1, which may be pandas' column labels or a "
            "trace, and the other files do not settle it; give --csv_header yes (a header) or "
            "--csv_header no (data)")


def load_spike_times(path: str | Path) -> list[np.ndarray]:
    """Spike times in ms, one row per trace; rows may differ in length, and an empty line is a
    trace without spikes. Each row must increase strictly and hold no negative time."""
    path = Path(path)
    _check_file(path)
    try:
        with open(path, newline="") as fh:
            rows = [[c.strip() for c in row] for row in csv.reader(fh)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{path}: not a readable CSV file ({err})") from None
    if not rows:
        raise UserError(f"{path}: the file holds no rows")
    trains = []
    for r, row in enumerate(rows):
        times = _to_float(path, [(r + 1, [c for c in row if c])])[0] if any(row) \
            else np.zeros(0)
        if not np.all(np.isfinite(times)) or np.any(times < 0):
            raise UserError(f"{path}: line {r + 1} holds a negative, NaN or infinite spike time")
        if np.any(np.diff(times) <= 0):
            k = int(np.flatnonzero(np.diff(times) <= 0)[0])
            raise UserError(f"{path}: line {r + 1}: spike times must increase, but "
                            f"{times[k]:g} is followed by {times[k + 1]:g}")
        trains.append(times)
    return trains


def check_spike_times(path: str | Path, trains: list[np.ndarray], n_samples: int,
                      dt: float) -> None:
    """Refuse spike times that do not fit traces of `n_samples` samples every `dt` ms, with a
    hint at the unit: all whole numbers beyond the trace's duration in ms but below its
    sample count look like sample indices; all below duration/1000 while the trace lasts
    longer look like seconds."""
    duration = n_samples * dt
    every = np.concatenate([np.asarray(t, dtype=float) for t in trains]) if trains else []
    rule = (f"(spike times are in ms, from 0 to the trace's end at {duration:g} ms = "
            f"{n_samples} samples x --dt {dt:g} ms)")
    if len(every):
        top = float(np.max(every))
        if (np.all(every == np.round(every)) and top > duration and top < n_samples):
            raise UserError(f"{path}: the spike times look like sample indices (whole numbers "
                            f"up to {top:g}, beyond the trace's {duration:g} ms but below its "
                            f"{n_samples} samples): multiply them by --dt {rule}")
        if top < duration / 1000.0:
            raise UserError(f"{path}: the spike times look like seconds (all below "
                            f"{duration / 1000:g}, the trace's duration / 1000): multiply them "
                            f"by 1000 {rule}")
    for r, times in enumerate(trains):
        if len(times) and times[-1] > duration:
            raise UserError(f"{path}: line {r + 1}: spike time {times[-1]:g} ms is after the "
                            f"end of the trace {rule}")


def check_current(path: str, current: np.ndarray, unit: str | None) -> None:
    """Refuse currents (nA) beyond MAX_CURRENT_NA; `unit`: the --current_unit they were read
    in, None where the file's own units gave them."""
    top = float(np.max(np.abs(current)))
    if top > MAX_CURRENT_NA:
        hint = ("another unit" if unit == "pA" else "pA (--current_unit pA)" if unit
                else "another unit than the file's metadata says (its unit or conversion)")
        read = f" (read as {unit})" if unit else ""
        raise UserError(f"{path}: currents up to {top:.4g} nA{read} are implausible for a "
                        f"neuron (above {MAX_CURRENT_NA:g} nA): are they in {hint}?")


def check_voltage(path: str, voltage: np.ndarray) -> None:
    top = float(np.max(np.abs(voltage)))
    if top > MAX_VOLTAGE_MV:
        raise UserError(f"{path}: |V| up to {top:.4g} is implausible for a membrane potential "
                        f"in mV (above {MAX_VOLTAGE_MV:g}): a wrong file, or another unit?")
    if top < MIN_VOLTAGE_MV:
        raise UserError(f"{path}: every |V| is below {MIN_VOLTAGE_MV:g} (at most {top:.3g}): "
                        "voltages must be in mV; is the file in volts (multiply by 1000) or "
                        "the wrong file?")


def _resolve(tables: dict[str, _Table], n_spike_rows: int | None) -> dict[str, bool]:
    """Whether line 1 of each ambiguous table is a header: the one reading under which every
    file has the same number of traces (and spike rows); UserError if none or several."""
    open_ = [k for k, t in tables.items() if t.ambiguous]
    if not open_:
        return {}
    fits = []
    for choice in itertools.product((True, False), repeat=len(open_)):
        pick = dict(zip(open_, choice))
        if any(tables[k].n_rows(h) == 0 for k, h in pick.items()):
            continue  # a header needs data below it
        counts = {t.n_rows(pick.get(k, False)) for k, t in tables.items()}
        if n_spike_rows is not None:
            counts.add(n_spike_rows)
        if len(counts) == 1:
            fits.append(pick)
    if len(fits) != 1:
        raise UserError(_ambiguous_message([tables[k] for k in open_]))
    return fits[0]


def load_recordings(current: str, voltage: str | None, spikes: str | None,
                    current_unit: str = "nA", dt: float | None = None, header: str = "auto",
                    index: str = "auto") -> tuple[np.ndarray, np.ndarray | None,
                                                  list[np.ndarray] | None]:
    """Currents [N, T] in nA, voltages [N, T] in mV (or None) and spike trains (or None),
    checked against each other (same traces and samples; spike times inside the traces when
    `dt` is given) and for plausible units."""
    tables = {"current": _parse(current, header, index)}
    if voltage:
        tables["voltage"] = _parse(voltage, header, index)
        _voltage_header(tables["voltage"])
    s = load_spike_times(spikes) if spikes else None
    decided = _resolve(tables, len(s) if s is not None else None)
    i = tables["current"].data(decided.get("current")) * CURRENT_UNITS[current_unit]
    check_current(current, i, current_unit)
    v = tables["voltage"].data(decided.get("voltage")) if voltage else None
    if v is not None:
        if v.shape != i.shape:
            raise UserError(f"the files differ in shape: {current} holds {i.shape[0]} traces x "
                            f"{i.shape[1]} samples, {voltage} {v.shape[0]} x {v.shape[1]}")
        check_voltage(voltage, v)
    if s is not None:
        if len(s) != i.shape[0]:
            raise UserError(f"{spikes}: {len(s)} spike rows for {i.shape[0]} current traces "
                            f"in {current}")
        if dt is not None:
            check_spike_times(spikes, s, i.shape[1], dt)
    return i, v, s


def check_recorded_cell(source: str, current: np.ndarray, voltage: np.ndarray) -> None:
    """Refuse a recorded cell (current nA, voltage mV, every selected sweep) whose stimulus is
    not zero but never reaches MIN_STIMULUS_NA (a unit or conversion applied twice), or whose
    response spans less than MIN_RESPONSE_MV (flat: nothing to fit)."""
    top = float(np.max(np.abs(current)))
    if 0 < top < MIN_STIMULUS_NA:
        raise UserError(f"{source}: the stimulus never exceeds {top:.3g} nA, implausibly small "
                        f"(below {MIN_STIMULUS_NA * 1e3:g} pA): is its unit or conversion "
                        "applied twice?")
    span = float(np.max(voltage) - np.min(voltage))
    if span < MIN_RESPONSE_MV:
        raise UserError(f"{source}: the response is flat (it spans {span:.3g} mV over the "
                        f"selected sweeps, below {MIN_RESPONSE_MV:g} mV): nothing to fit; a "
                        "disconnected or wrong channel?")
