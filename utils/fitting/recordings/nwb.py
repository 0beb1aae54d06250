"""NWB files read with h5py along the NWB 2 schema ("icephys"): one cell per electrode, its
current-clamp responses paired with their stimuli (docs/NOTES.md)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from utils.fitting.recordings.cells import Cell, Sweep, usable_cell
from utils.fitting.recordings.units import unit_factor
from utils.run import UserError

CURRENT_CLAMP = ("CurrentClampSeries", "IZeroClampSeries")  # and their stimuli:
STIMULUS = ("CurrentClampStimulusSeries",)
VOLTAGE_CLAMP = ("VoltageClampSeries",)
SERIES_GROUPS = ("acquisition", "stimulus/presentation")  # where NWB files keep icephys series


@dataclass
class _Series:
    """An NWB TimeSeries as stored in the file: its group's neurodata_type, electrode (link),
    sweep_number, starting time, and data with conversion, offset and unit; `rate` None
    where it has timestamps instead."""

    name: str
    kind: str
    electrode: str | None
    sweep_number: int | None
    starting_time: Any  # h5py dataset (s), read where sweep numbers cannot pair the series
    data: Any  # h5py dataset, read when the sweep is kept
    conversion: float
    offset: float
    unit: str
    rate: float | None

    def start(self) -> float | None:
        """The starting time in s (None where the series has timestamps instead)."""
        return None if self.starting_time is None else float(self.starting_time[()])


def _series(group, name: str) -> _Series:
    """The _Series `name` of an HDF5 group written as an NWB TimeSeries."""
    link = group.get("electrode", getlink=True)
    electrode = link.path.rsplit("/", 1)[-1] if hasattr(link, "path") else (
        _name(group["electrode"]) if "electrode" in group else None)
    data = group["data"]
    number = group.attrs.get("sweep_number")
    start = group.get("starting_time")
    return _Series(name, _text(group.attrs.get("neurodata_type", "")),
                   electrode, None if number is None else int(number), start, data,
                   float(data.attrs.get("conversion", 1.0)), float(data.attrs.get("offset", 0.0)),
                   _text(data.attrs.get("unit", "")),
                   float(start.attrs["rate"]) if start is not None else None)


def _name(obj) -> str:
    """The last part of an HDF5 object's path (slow for an object opened by reference: HDF5
    searches the file for it)."""
    return obj.name.rsplit("/", 1)[-1]


def _series_in(h5, where: str) -> dict[str, Any]:
    """The TimeSeries groups in `where`, by name."""
    group = h5.get(where)
    return {} if group is None else {n: g for n, g in group.items()
                                     if "neurodata_type" in g.attrs and "data" in g}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------- pairing

def _table_column(h5, table, category: str, column: str) -> list:
    """The series each row of the intracellular recordings table references in one column
    (None where a row references none: index -1). Referenced groups are named through their
    addresses in SERIES_GROUPS."""
    import h5py

    if category not in table or column not in table[category]:
        return []
    names = {h5py.h5o.get_info(g.id).addr: n for where in SERIES_GROUPS
             for n, g in _series_in(h5, where).items()}
    out = []
    for row in table[category][column][()]:
        if row["idx_start"] < 0 or not row["timeseries"]:
            out.append(None)
            continue
        group = h5[row["timeseries"]]
        name = names.get(h5py.h5o.get_info(group.id).addr) or _name(group)
        out.append(_series(group, name))
    return out


Pairs = list[tuple[int, _Series, "_Series | None"]]  # (sweep number, response, stimulus)


def _distinct(series: list[_Series], key: Callable) -> bool:
    """Every series has a value of `key`, none the same."""
    values = [key(s) for s in series]
    return None not in values and len(set(values)) == len(values)


def _numbered(responses: list[_Series], stimuli: list) -> Pairs:
    """(number, response, stimulus): the sweep numbers where the responses have distinct
    ones, else their order."""
    by_number = _distinct(responses, lambda s: s.sweep_number)
    return [(r.sweep_number if by_number else k, r, s)
            for k, (r, s) in enumerate(zip(responses, stimuli))]


def _match(responses: list[_Series], stimuli: list[_Series]) -> Pairs | str:
    """One electrode's responses each with the stimulus of its sweep: the one of the same
    sweep_number where every series has a distinct one, else the one of the same starting
    time where those are distinct, else a lone stimulus of a lone response; where none of
    these holds, why they cannot be paired."""
    for key in (lambda s: s.sweep_number, _Series.start):
        if _distinct(responses, key) and _distinct(stimuli, key):
            by_key = {key(s): s for s in stimuli}
            ordered = sorted(responses, key=key)
            return _numbered(ordered, [by_key.get(key(r)) for r in ordered])
    if len(responses) == 1 and len(stimuli) == 1:
        return _numbered(responses, stimuli)
    return (f"{len(responses)} responses and {len(stimuli)} stimuli without distinct sweep "
            "numbers or starting times: which stimulus each response got is unknown (an "
            "intracellular recordings table would say)")


def _by_electrode(pairs: list[tuple]) -> dict:
    """(response, stimulus) pairs grouped by the response's electrode, in order."""
    out: dict = {}
    for r, s in pairs:
        out.setdefault(r.electrode, ([], []))
        out[r.electrode][0].append(r)
        out[r.electrode][1].append(s)
    return out


def _table_rows(h5) -> list[tuple]:
    """The (response, stimulus or None) current-clamp rows of the file's intracellular
    recordings table ([] where it has none)."""
    table = h5.get("general/intracellular_ephys/intracellular_recordings")
    if table is None:
        return []
    responses = _table_column(h5, table, "responses", "response")
    stimuli = _table_column(h5, table, "stimuli", "stimulus") or [None] * len(responses)
    return [(r, s) for r, s in zip(responses, stimuli)
            if r is not None and r.kind in CURRENT_CLAMP]


def _with_table(table: Pairs, matched: Pairs | str, extra: list[_Series]) -> Pairs:
    """An electrode's table rows and its responses outside the table (paired by _match, or
    without a stimulus where they cannot be), numbered together."""
    rest = [(r, s) for _, r, s in matched] if not isinstance(matched, str) else \
        [(r, None) for r in extra]
    rows = [(r, s) for _, r, s in table] + rest
    return _numbered([r for r, _ in rows], [s for _, s in rows])


def _nwb_pairs(h5) -> dict[str | None, Pairs | str]:
    """By electrode, its current-clamp sweeps (number, response, stimulus or None) or why they
    cannot be paired: the intracellular recordings table's rows, and the acquired responses
    outside it matched to the presented stimuli outside it (_match)."""
    rows = _table_rows(h5)
    listed = ({r.name for r, _ in rows}, {s.name for _, s in rows if s is not None})
    acquired, presented = ([_series(g, n) for n, g in _series_in(h5, where).items()
                            if n not in names] for where, names in zip(SERIES_GROUPS, listed))
    stimuli = [s for s in presented if s.kind in STIMULUS]
    pairs = {e: _numbered(*rs) for e, rs in _by_electrode(rows).items()}
    extra = _by_electrode([(r, None) for r in acquired if r.kind in CURRENT_CLAMP])
    for e, (rs, _) in extra.items():
        matched = _match(rs, [s for s in stimuli if s.electrode == e])
        pairs[e] = _with_table(pairs[e], matched, rs) if e in pairs else matched
    return pairs


def _nwb_refuse(path: Path, h5, pairs: dict) -> None:
    """One line for a file with no current-clamp responses, or none with a stimulus."""
    if not pairs:
        vc = [n for n, g in _series_in(h5, "acquisition").items()
              if _text(g.attrs["neurodata_type"]) in VOLTAGE_CLAMP]
        if vc:
            raise UserError(f"{path}: the responses are voltage clamp (VoltageClampSeries "
                            f"{vc[0]}), not current clamp: nothing to fit a neuron to")
        raise UserError(f"{path}: holds no current-clamp responses (CurrentClampSeries)")
    if all(not isinstance(ps, str) and all(s is None for _, _, s in ps)
           for ps in pairs.values()):
        raise UserError(f"{path}: the current-clamp responses have no stimuli "
                        "(CurrentClampStimulusSeries of the same sweep): no input to fit with")


# --------------------------------------------------------------------------- values

def _nwb_values(series: _Series, base: str, what: str) -> np.ndarray:
    """A series' data as mV (base V) or nA (base A): data * conversion + offset, in its unit."""
    data = np.asarray(series.data[()], dtype=float)
    return (data * series.conversion + series.offset) * unit_factor(
        series.unit, base, f"{what} {series.name}")


def _nwb_dt(series: _Series) -> float:
    if series.rate is None:
        raise UserError(f"{series.name} has timestamps instead of a sampling rate (only "
                        "regularly sampled series are read)")
    return 1000.0 / series.rate


def _nwb_sweep(number: int, response: _Series, stimulus: _Series | None) -> Sweep:
    """One sweep in nA and mV; UserError saying why a sweep cannot be used: no stimulus,
    stimulus and response sampled at different rates or of different lengths, a unit that
    is no voltage or current, timestamps."""
    if stimulus is None:
        raise UserError(f"the response {response.name} has no stimulus (no "
                        "CurrentClampStimulusSeries of its sweep)")
    dt = _nwb_dt(response)
    if not np.isclose(_nwb_dt(stimulus), dt, rtol=1e-9, atol=0):
        raise UserError(f"the stimulus {stimulus.name} is sampled at {stimulus.rate:g} Hz, "
                        f"the response {response.name} at {response.rate:g} Hz")
    current = _nwb_values(stimulus, "A", "stimulus")
    voltage = _nwb_values(response, "V", "response")
    if current.shape != voltage.shape:
        raise UserError(f"the stimulus {stimulus.name} has {len(current)} samples, the "
                        f"response {response.name} {len(voltage)}")
    return Sweep(number, current, voltage, dt)


def _nwb_cell(path: Path, cell_id: str, pairs: Pairs | str) -> Cell:
    """The cell of one electrode: its usable sweeps, those left out and why."""
    if isinstance(pairs, str):
        return Cell(cell_id, path, reason=f"{cell_id}: {pairs}")
    sweeps, left_out = [], {}
    for number, response, stimulus in pairs:
        try:
            sweeps.append(_nwb_sweep(number, response, stimulus))
        except UserError as err:
            left_out[number] = str(err)
    return usable_cell(cell_id, path, sweeps, left_out)


def _open_nwb(path: Path):
    """The file opened with h5py; UserError for a file that is no NWB file."""
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise UserError(f"{path}: not a readable NWB file ({str(err).splitlines()[0]})") \
            from None
    if "nwb_version" not in h5.attrs:
        h5.close()
        raise UserError(f"{path}: not a readable NWB file (an HDF5 file without the "
                        "nwb_version attribute)")
    return h5


def read_nwb(path: Path, name: str | None = None) -> list[Cell]:
    """The cells (one per electrode, identified `name:electrode`, name the file's by default)
    of an NWB file, each with its current-clamp sweeps. Read with h5py along the NWB 2
    schema: pynwb builds an object for every group of the file first, 10-17 s for 100 cells
    of 5 sweeps against 1.3-1.5 s (docs/NOTES.md)."""
    with _open_nwb(path) as h5:
        pairs = _nwb_pairs(h5)
        _nwb_refuse(path, h5, pairs)
        return [_nwb_cell(path, f"{name or path.name}:{e}", ps) for e, ps in pairs.items()]
