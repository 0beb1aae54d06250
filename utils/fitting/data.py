"""Loading users' recordings: current/voltage traces and spike times from CSV files."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from utils.run import UserError

__all__ = ["CURRENT_UNITS", "load_traces", "load_spike_times", "load_recordings"]

CURRENT_UNITS = {"nA": 1.0, "pA": 1e-3, "A": 1e9}  # factor to nA
INDEX_HEADERS = {"", "index", "unnamed: 0", "#", "trace"}


def _read_rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        with open(path, newline="") as fh:
            rows = [[c.strip() for c in row] for row in csv.reader(fh)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{path}: not a readable CSV file ({err})") from None
    return [r for r in rows if any(r)]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _to_float(path: Path, rows: list[list[str]], first_line: int) -> list[list[float]]:
    out = []
    for r, row in enumerate(rows):
        values = []
        for c, cell in enumerate(row):
            if not _is_number(cell):
                raise UserError(f"{path}: line {first_line + r}, column {c + 1}: "
                                f"{cell!r} is not a number")
            values.append(float(cell))
        out.append(values)
    return out


def load_traces(path: str | Path, scale: float = 1.0) -> np.ndarray:
    """Traces [N, T] from a CSV with one trace per row, one sample per column.

    Accepts an optional header row and an optional leading index column (the layout
    brian2modelfitting's example files use). Multiplies the values by `scale`.
    """
    path = Path(path)
    rows = _read_rows(path)
    if not rows:
        raise UserError(f"{path}: the file holds no data")
    header = None
    numeric = [_is_number(c) for c in rows[0]]
    if not all(numeric) and (len(rows) > 1 or not any(numeric) or rows[0][0] == ""):
        header, rows = rows[0], rows[1:]
        if not rows:
            raise UserError(f"{path}: the file holds a header row but no data")
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        bad = next(i for i, r in enumerate(rows) if len(r) != len(rows[0]))
        raise UserError(f"{path}: ragged rows: line {bad + 1 + (header is not None)} has "
                        f"{len(rows[bad])} values, the first data line {len(rows[0])}")
    data = np.array(_to_float(path, rows, 1 + (header is not None)))
    if _has_index_column(header, data):
        data = data[:, 1:]
    if data.shape[1] < 2:
        raise UserError(f"{path}: each trace needs at least 2 samples")
    if not np.all(np.isfinite(data)):
        r, c = np.argwhere(~np.isfinite(data))[0]
        raise UserError(f"{path}: trace {r + 1}, sample {c + 1} is {data[r, c]} (NaN or infinite)")
    return data * scale


def _has_index_column(header: list[str] | None, data: np.ndarray) -> bool:
    if header is not None and header[0].lower() in INDEX_HEADERS:
        return True
    # without a header: a first column reading 0, 1, ..., N-1 over two or more traces
    return data.shape[0] >= 2 and np.array_equal(data[:, 0], np.arange(data.shape[0]))


def load_spike_times(path: str | Path) -> list[np.ndarray]:
    """Spike times in ms, one row per trace; rows may differ in length, and an empty line is a
    trace without spikes."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    with open(path, newline="") as fh:
        rows = [[c.strip() for c in row] for row in csv.reader(fh)]
    if not rows:
        raise UserError(f"{path}: the file holds no rows")
    trains = []
    for r, row in enumerate(rows):
        values = _to_float(path, [[c for c in row if c]], r + 1)[0]
        times = np.array(values, dtype=float)
        if not np.all(np.isfinite(times)) or np.any(times < 0):
            raise UserError(f"{path}: line {r + 1} holds a negative, NaN or infinite spike time")
        trains.append(np.sort(times))
    return trains


def load_recordings(current: str, voltage: str | None, spikes: str | None,
                    current_unit: str = "nA") -> tuple[np.ndarray, np.ndarray | None,
                                                       list[np.ndarray] | None]:
    """Currents [N, T] in nA, voltages [N, T] in mV (or None) and spike trains (or None)."""
    i = load_traces(current, CURRENT_UNITS[current_unit])
    v = load_traces(voltage) if voltage else None
    if v is not None and v.shape != i.shape:
        raise UserError(f"current ({i.shape[0]} traces x {i.shape[1]} samples) and voltage "
                        f"({v.shape[0]} x {v.shape[1]}) files differ in shape")
    s = load_spike_times(spikes) if spikes else None
    if s is not None and len(s) != i.shape[0]:
        raise UserError(f"{spikes}: {len(s)} spike rows for {i.shape[0]} current traces")
    return i, v, s
