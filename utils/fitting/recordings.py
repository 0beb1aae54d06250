"""Reading a lab's recordings for fitting: NWB (pynwb) and ABF (pyabf) files holding
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
  or current. pynwb and pyabf are imported only when such a file is read.
"""
from __future__ import annotations

import argparse
import glob
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

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

def _nwb_values(path: Path, series, base: str, what: str) -> np.ndarray:
    """A series' data as mV (base V) or nA (base A): data * conversion + offset, in its unit."""
    data = np.asarray(series.data[:], dtype=float)
    offset = float(getattr(series, "offset", 0.0) or 0.0)
    return (data * float(series.conversion) + offset) * _factor(path, series.unit, base,
                                                                f"{what} {series.name}")


def _nwb_dt(path: Path, series) -> float:
    if series.rate is None:
        raise UserError(f"{path}: {series.name} has timestamps instead of a sampling rate "
                        "(only regularly sampled series are read)")
    return 1000.0 / float(series.rate)


def _referenced(ref):
    """The series a table row references, or None for a missing one (index -1 or None)."""
    return ref.timeseries if ref.idx_start is not None and ref.idx_start >= 0 else None


def _nwb_pairs(nwbfile) -> list[tuple]:
    """(response, stimulus or None) pairs: the intracellular recordings table's rows, else
    the acquired current-clamp series matched to stimuli by electrode and sweep number."""
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries

    table = nwbfile.intracellular_recordings
    if table is not None and len(table) > 0:
        pairs = []
        for k in range(len(table)):
            resp = table.get_category("responses")["response"].get(k)
            stim = table.get_category("stimuli")["stimulus"].get(k)
            pairs.append((_referenced(resp), _referenced(stim)))
        return [p for p in pairs if p[0] is not None]
    stimuli = {(s.electrode.name, s.sweep_number): s for s in nwbfile.stimulus.values()
               if isinstance(s, CurrentClampStimulusSeries)}
    return [(r, stimuli.get((r.electrode.name, r.sweep_number)))
            for r in nwbfile.acquisition.values() if isinstance(r, CurrentClampSeries)]


def _nwb_refuse(path: Path, nwbfile, pairs: list[tuple]) -> None:
    """One line for a file with no current-clamp responses, or none with a stimulus."""
    from pynwb.icephys import CurrentClampSeries, VoltageClampSeries

    if not any(isinstance(r, CurrentClampSeries) for r, _ in pairs):
        vc = [s.name for s in nwbfile.acquisition.values() if isinstance(s, VoltageClampSeries)]
        if vc:
            raise UserError(f"{path}: the responses are voltage clamp (VoltageClampSeries "
                            f"{vc[0]}), not current clamp: nothing to fit a neuron to")
        raise UserError(f"{path}: holds no current-clamp responses (CurrentClampSeries)")
    if not any(s is not None for r, s in pairs if isinstance(r, CurrentClampSeries)):
        raise UserError(f"{path}: the current-clamp responses have no stimuli "
                        "(CurrentClampStimulusSeries of the same sweep): no input to fit with")


def read_nwb(path: Path) -> list[Cell]:
    """The cells (one per electrode) of an NWB file, each with its current-clamp sweeps."""
    from pynwb import NWBHDF5IO
    from pynwb.icephys import CurrentClampSeries

    try:
        io = NWBHDF5IO(str(path), mode="r")
        nwbfile = io.read()
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path}: not a readable NWB file ({str(err).splitlines()[0]})") \
            from None
    with io:
        pairs = _nwb_pairs(nwbfile)
        _nwb_refuse(path, nwbfile, pairs)
        cells: dict[str, Cell] = {}
        for response, stimulus in pairs:
            if not isinstance(response, CurrentClampSeries) or stimulus is None:
                continue
            name = response.electrode.name
            cell = cells.setdefault(name, Cell(f"{path.name}:{name}", path))
            number = response.sweep_number
            dt = _nwb_dt(path, response)
            if not np.isclose(_nwb_dt(path, stimulus), dt, rtol=1e-9, atol=0):
                raise UserError(f"{path}: {stimulus.name} is sampled at {stimulus.rate:g} Hz, "
                                f"its response {response.name} at {response.rate:g} Hz")
            cell.sweeps.append(Sweep(
                len(cell.sweeps) if number is None else int(number),
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
