"""Reading a lab's recordings for fitting: NWB (h5py) and ABF (pyabf) files holding
current-clamp sweeps, one cell per electrode (NWB) or per file (ABF).

Conventions (docs/NOTES.md):
- NWB: each `CurrentClampSeries` response is paired with the `CurrentClampStimulusSeries`
  of the same sweep: through the file's intracellular recordings table where it has rows,
  else by electrode and `sweep_number`. Values are `data * conversion + offset` in the
  series' own unit (volts or amperes, with SI prefixes), converted to mV and nA; the
  sampling interval is `1 / rate`. A cell is file + electrode.
- ABF: sweeps are traces; the response is channel 0 in its own unit (V or mV); the stimulus is
  DAC 0's command waveform (`sweepC`, in the DAC's unit) when it is a current that is not zero
  in every sweep (a 0 pA sweep of a family keeps it), else the first other channel recorded in
  a current unit: one source for all of a file's sweeps. A cell is the file.
- Refused, in one line naming the file: no stimuli; voltage-clamp responses; a sweep sampled
  at another rate than the cell's others (nothing is resampled); a unit that is no voltage
  or current. h5py and pyabf are imported only when such a file is read.
"""
from __future__ import annotations

import argparse
import glob
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from utils.run import UserError

__all__ = ["Sweep", "Cell", "FORMATS", "parse_index_list", "find_files", "read_nwb",
           "read_abf", "read_cells", "select_cells"]

FORMATS = {".nwb": "nwb", ".abf": "abf"}
_PREFIX = {"": 1.0, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9, "p": 1e-12, "k": 1e3}
_BASE = {"volt": "V", "volts": "V", "ampere": "A", "amperes": "A", "amp": "A", "amps": "A"}
_TO = {"V": ("mV", 1e3), "A": ("nA", 1e9)}  # SI unit -> (our unit, factor)


@dataclass
class Sweep:
    """One sweep of one cell: stimulus in nA, response in mV, sampled every `dt` ms."""

    number: int
    current: np.ndarray
    voltage: np.ndarray
    dt: float


@dataclass
class Cell:
    """A cell's sweeps, as read (selection and checks: select_cells, Cell.traces)."""

    id: str
    path: Path
    sweeps: list[Sweep] = field(default_factory=list)

    def traces(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Current [N, T] nA, voltage [N, T] mV and dt (ms) of the sweeps; UserError when
        the sweeps differ in length (the reason reported for this cell)."""
        if not self.sweeps:
            raise UserError(f"{self.id}: no sweep selected")
        lengths = {len(s.current) for s in self.sweeps}
        if len(lengths) > 1:
            raise UserError(f"{self.id}: the sweeps differ in length ({min(lengths)} to "
                            f"{max(lengths)} samples)")
        return (np.stack([s.current for s in self.sweeps]),
                np.stack([s.voltage for s in self.sweeps]), self.sweeps[0].dt)


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


def select_cells(cells: list[Cell], cells_flag: str = "",
                 sweeps: Sequence[int] = ()) -> list[Cell]:
    """The cells and sweeps selected by --cells and --sweeps (empty: all); a sweep number
    that no selected cell holds is refused."""
    chosen = _pick_cells(cells, cells_flag) if cells_flag.strip() else cells
    if sweeps:
        held = {s.number for c in chosen for s in c.sweeps}
        missing = [n for n in sweeps if n not in held]
        if missing:
            raise UserError(f"--sweeps: no selected cell holds sweep "
                            f"{', '.join(map(str, missing))} (they hold "
                            f"{', '.join(map(str, sorted(held)))})")
        chosen = [Cell(c.id, c.path, [s for s in c.sweeps if s.number in sweeps])
                  for c in chosen]
    return chosen


# --------------------------------------------------------------------------- files

def find_files(spec: str, data_format: str = "auto") -> list[Path]:
    """The recording files named by --data: a file, a folder (its .nwb and .abf files) or a
    glob pattern; each file's format must be known (by suffix, or --data_format)."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FORMATS)
        if data_format != "auto":
            files = [p for p in files if FORMATS[p.suffix.lower()] == data_format]
        where = f"{spec}: the folder holds no"
    elif any(ch in spec for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
        where = f"{spec}: the pattern matches no"
    elif path.is_file():
        files = [path]
        where = ""
    else:
        raise UserError(f"{spec}: no such file or folder")
    if not files:
        raise UserError(f"{where} {'.nwb or .abf' if data_format == 'auto' else data_format} "
                        "files")
    for p in files:
        file_format(p, data_format)
    return files


def file_format(path: Path, data_format: str = "auto") -> str:
    """'nwb' or 'abf': --data_format, else the file's suffix."""
    if data_format != "auto":
        return data_format
    if path.suffix.lower() not in FORMATS:
        raise UserError(f"{path}: unknown recording format (suffix {path.suffix or 'none'}); "
                        "name it .nwb or .abf, or give --data_format")
    return FORMATS[path.suffix.lower()]


def read_cells(files: Sequence[Path], data_format: str = "auto") -> list[Cell]:
    """Every cell of every file, in file order."""
    readers = {"nwb": read_nwb, "abf": read_abf}
    return [c for p in files for c in readers[file_format(p, data_format)](p)]


def _si_scale(unit: str) -> tuple[float, str] | None:
    """('mV' -> (1e-3, 'V')), ('amperes' -> (1, 'A')): the unit's factor to its SI base, or
    None for a unit that is no voltage or current."""
    text = unit.strip()
    if text.lower() in _BASE:
        return 1.0, _BASE[text.lower()]
    base, prefix = text[-1:], text[:-1]
    if base in ("V", "A") and prefix in _PREFIX:
        return _PREFIX[prefix], base
    return None


def _factor(path: Path, unit: str, base: str, what: str) -> float:
    """Factor from `unit` (e.g. 'volts', 'mV', 'pA') to mV (base V) or nA (base A)."""
    scale = _si_scale(unit)
    if scale is None or scale[1] != base:
        kind = "voltage (volts, V, mV)" if base == "V" else "current (amperes, A, nA, pA)"
        raise UserError(f"{path}: the {what} is in {unit!r}, not a {kind} unit")
    return scale[0] * _TO[base][1]


def _check_rates(path: Path, cell: str, sweeps: list[Sweep]) -> None:
    """Every sweep of a cell sampled at the same rate (nothing is resampled)."""
    dts = [s.dt for s in sweeps]
    for s in sweeps:
        if not np.isclose(s.dt, dts[0], rtol=1e-9, atol=0):
            raise UserError(f"{path}: {cell}: sweep {s.number} is sampled every {s.dt:g} ms, "
                            f"sweep {sweeps[0].number} every {dts[0]:g} ms (mixed rates are "
                            "not resampled; leave it out with --sweeps)")


# --------------------------------------------------------------------------- NWB

CURRENT_CLAMP = ("CurrentClampSeries", "IZeroClampSeries")  # and their stimuli:
STIMULUS = ("CurrentClampStimulusSeries",)
VOLTAGE_CLAMP = ("VoltageClampSeries",)


@dataclass
class _Series:
    """An NWB TimeSeries as stored in the file (NWB 2 schema, "icephys"): its group's
    neurodata_type, electrode (link), sweep_number, and data with conversion, offset and
    unit; `rate` None where it has timestamps instead."""

    name: str
    kind: str
    electrode: str | None
    sweep_number: int | None
    data: Any  # h5py dataset, read when the sweep is kept
    conversion: float
    offset: float
    unit: str
    rate: float | None


def _series(group, name: str) -> _Series:
    """The _Series `name` of an HDF5 group written as an NWB TimeSeries."""
    link = group.get("electrode", getlink=True)
    electrode = link.path.rsplit("/", 1)[-1] if hasattr(link, "path") else (
        _name(group["electrode"]) if "electrode" in group else None)
    data = group["data"]
    number = group.attrs.get("sweep_number")
    start = group.get("starting_time")
    return _Series(name, _text(group.attrs.get("neurodata_type", "")),
                   electrode, None if number is None else int(number), data,
                   float(data.attrs.get("conversion", 1.0)), float(data.attrs.get("offset", 0.0)),
                   _text(data.attrs.get("unit", "")),
                   float(start.attrs["rate"]) if start is not None else None)


def _name(obj) -> str:
    """The last part of an HDF5 object's path (slow for an object opened by reference: HDF5
    searches the file for it)."""
    return obj.name.rsplit("/", 1)[-1]


SERIES_GROUPS = ("acquisition", "stimulus/presentation")  # where NWB files keep icephys series


def _series_in(h5, where: str) -> dict[str, Any]:
    """The TimeSeries groups in `where`, by name."""
    group = h5.get(where)
    return {} if group is None else {n: g for n, g in group.items()
                                     if "neurodata_type" in g.attrs and "data" in g}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nwb_values(path: Path, series: _Series, base: str, what: str) -> np.ndarray:
    """A series' data as mV (base V) or nA (base A): data * conversion + offset, in its unit."""
    data = np.asarray(series.data[()], dtype=float)
    return (data * series.conversion + series.offset) * _factor(path, series.unit, base,
                                                                f"{what} {series.name}")


def _nwb_dt(path: Path, series: _Series) -> float:
    if series.rate is None:
        raise UserError(f"{path}: {series.name} has timestamps instead of a sampling rate "
                        "(only regularly sampled series are read)")
    return 1000.0 / series.rate


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


def _nwb_pairs(h5) -> list[tuple]:
    """(response, stimulus or None) pairs: the intracellular recordings table's rows, else
    the acquired current-clamp series matched to stimuli by electrode and sweep number."""
    table = h5.get("general/intracellular_ephys/intracellular_recordings")
    if table is not None:
        responses = _table_column(h5, table, "responses", "response")
        stimuli = _table_column(h5, table, "stimuli", "stimulus") or [None] * len(responses)
        pairs = [(r, s) for r, s in zip(responses, stimuli) if r is not None]
        if pairs:
            return pairs
    acquired, presented = ([_series(g, n) for n, g in _series_in(h5, where).items()]
                           for where in SERIES_GROUPS)
    stimuli = {(s.electrode, s.sweep_number): s for s in presented if s.kind in STIMULUS}
    return [(r, stimuli.get((r.electrode, r.sweep_number))) for r in acquired
            if r.kind in CURRENT_CLAMP + VOLTAGE_CLAMP]


def _nwb_refuse(path: Path, pairs: list[tuple]) -> None:
    """One line for a file with no current-clamp responses, or none with a stimulus."""
    clamp = [(r, s) for r, s in pairs if r.kind in CURRENT_CLAMP]
    if not clamp:
        vc = [r.name for r, _ in pairs if r.kind in VOLTAGE_CLAMP]
        if vc:
            raise UserError(f"{path}: the responses are voltage clamp (VoltageClampSeries "
                            f"{vc[0]}), not current clamp: nothing to fit a neuron to")
        raise UserError(f"{path}: holds no current-clamp responses (CurrentClampSeries)")
    if not any(s is not None for _, s in clamp):
        raise UserError(f"{path}: the current-clamp responses have no stimuli "
                        "(CurrentClampStimulusSeries of the same sweep): no input to fit with")


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


def read_nwb(path: Path) -> list[Cell]:
    """The cells (one per electrode) of an NWB file, each with its current-clamp sweeps.
    Read with h5py along the NWB 2 schema: pynwb builds an object for every group of the
    file first, 10-17 s for 100 cells of 5 sweeps against 0.3 s (docs/NOTES.md)."""
    with _open_nwb(path) as h5:
        pairs = _nwb_pairs(h5)
        _nwb_refuse(path, pairs)
        cells: dict[str, Cell] = {}
        for response, stimulus in pairs:
            if response.kind not in CURRENT_CLAMP or stimulus is None:
                continue
            cell = cells.setdefault(response.electrode,
                                    Cell(f"{path.name}:{response.electrode}", path))
            dt = _nwb_dt(path, response)
            if not np.isclose(_nwb_dt(path, stimulus), dt, rtol=1e-9, atol=0):
                raise UserError(f"{path}: {stimulus.name} is sampled at {stimulus.rate:g} Hz, "
                                f"its response {response.name} at {response.rate:g} Hz")
            number = response.sweep_number
            cell.sweeps.append(Sweep(
                len(cell.sweeps) if number is None else number,
                _nwb_values(path, stimulus, "A", "stimulus"),
                _nwb_values(path, response, "V", "response"), dt))
    for cell in cells.values():
        cell.sweeps.sort(key=lambda s: s.number)
        _check_rates(path, cell.id, cell.sweeps)
    return list(cells.values())


# --------------------------------------------------------------------------- ABF

def _abf_unit_base(unit: str) -> str | None:
    """'V' for a voltage unit, 'A' for a current unit, None otherwise."""
    scale = _si_scale(unit)
    return scale[1] if scale else None


def _abf_stimulus_channel(abf) -> int | None:
    """The first recorded channel other than 0 in a current unit, or None."""
    return next((c for c in range(1, abf.channelCount)
                 if _abf_unit_base(abf.adcUnits[c]) == "A"), None)


def _abf_commands(path: Path, abf) -> list[np.ndarray] | None:
    """DAC 0's command waveform (`sweepC`) of every sweep in nA, or None where it is no
    current, is zero in every sweep, or is unknown (NaN: a stimulus file pyabf cannot find).
    Decided for the whole file: a sweep whose command is zero (the 0 pA step of an I-V
    family) is a zero stimulus, not a sweep without one."""
    if not abf.dacUnits or _abf_unit_base(abf.dacUnits[0]) != "A":
        return None
    commands = []
    for k in range(abf.sweepCount):
        abf.setSweep(k, channel=0)
        commands.append(np.asarray(abf.sweepC, dtype=float))
    if not all(np.all(np.isfinite(c)) for c in commands) or not any(np.any(c) for c in commands):
        return None
    factor = _factor(path, abf.dacUnits[0], "A", "command waveform")
    return [c * factor for c in commands]


def read_abf(path: Path) -> list[Cell]:
    """The one cell of an ABF file: its sweeps, response on channel 0, stimulus from the
    command waveform or else a recorded current channel (one source for all sweeps)."""
    import pyabf

    try:
        abf = pyabf.ABF(str(path))
    except Exception as err:  # pyabf raises bare Exceptions on a damaged or foreign file
        raise UserError(f"{path}: not a readable ABF file ({str(err).splitlines()[0]})") \
            from None
    unit = abf.adcUnits[0]
    if _abf_unit_base(unit) == "A":
        raise UserError(f"{path}: channel 0 records a current ({unit}): a voltage-clamp "
                        "recording, not current clamp: nothing to fit a neuron to")
    v_factor = _factor(path, unit, "V", "response (channel 0)")
    commands = _abf_commands(path, abf)
    stim_channel = _abf_stimulus_channel(abf)
    if commands is None and stim_channel is None:
        raise UserError(f"{path}: no stimulus: the command waveform is not a current or "
                        "is zero or unknown, and no other channel records a current")
    cell = Cell(path.name, path)
    dt = 1000.0 / float(abf.dataRate)
    for k in range(abf.sweepCount):
        abf.setSweep(k, channel=0)
        voltage = np.asarray(abf.sweepY, dtype=float) * v_factor
        if commands is not None:
            current = commands[k]
        else:
            abf.setSweep(k, channel=stim_channel)
            current = np.asarray(abf.sweepY, dtype=float) * _factor(
                path, abf.adcUnits[stim_channel], "A", f"channel {stim_channel}")
        if len(current) != len(voltage):
            raise UserError(f"{path}: sweep {k}: the stimulus has {len(current)} samples, "
                            f"the response {len(voltage)}")
        cell.sweeps.append(Sweep(k, current, voltage, dt))
    return [cell]
