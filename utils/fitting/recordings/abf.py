"""ABF files read with pyabf: one cell per file, its sweeps the traces, the response on
channel 0, the stimulus from the command waveform or a recorded current channel
(docs/NOTES.md)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from utils.fitting.recordings.cells import Cell, Sweep, usable_cell
from utils.fitting.recordings.units import unit_base, unit_factor
from utils.run import UserError


def _factor(path: Path, unit: str, base: str, what: str) -> float:
    """unit_factor, its refusal naming the file."""
    try:
        return unit_factor(unit, base, what)
    except UserError as err:
        raise UserError(f"{path}: {err}") from None


def _abf_stimulus_channel(abf) -> int | None:
    """The first recorded channel other than 0 in a current unit, or None."""
    return next((c for c in range(1, abf.channelCount)
                 if unit_base(abf.adcUnits[c]) == "A"), None)


def _abf_commands(path: Path, abf) -> list[np.ndarray] | None:
    """DAC 0's command waveform (`sweepC`) of every sweep in nA, or None where it is no
    current, is zero in every sweep, or is unknown (NaN: a stimulus file pyabf cannot find).
    Decided for the whole file: a sweep whose command is zero (the 0 pA step of an I-V
    family) is a zero stimulus, not a sweep without one."""
    if not abf.dacUnits or unit_base(abf.dacUnits[0]) != "A":
        return None
    commands = []
    for k in range(abf.sweepCount):
        abf.setSweep(k, channel=0)
        commands.append(np.asarray(abf.sweepC, dtype=float))
    if not all(np.all(np.isfinite(c)) for c in commands) or not any(np.any(c) for c in commands):
        return None
    factor = _factor(path, abf.dacUnits[0], "A", "command waveform")
    return [c * factor for c in commands]


def _open_abf(path: Path):
    import pyabf

    try:
        return pyabf.ABF(str(path))
    except Exception as err:  # pyabf raises bare Exceptions on a damaged or foreign file
        raise UserError(f"{path}: not a readable ABF file ({str(err).splitlines()[0]})") \
            from None


def read_abf(path: Path, name: str | None = None) -> list[Cell]:
    """The one cell of an ABF file (identified `name`, the file's name by default): its
    sweeps, response on channel 0, stimulus from the command waveform or else a recorded
    current channel (one source for all sweeps); a sweep whose stimulus and response differ
    in length is left out."""
    abf = _open_abf(path)
    unit = abf.adcUnits[0]
    if unit_base(unit) == "A":
        raise UserError(f"{path}: channel 0 records a current ({unit}): a voltage-clamp "
                        "recording, not current clamp: nothing to fit a neuron to")
    v_factor = _factor(path, unit, "V", "response (channel 0)")
    commands = _abf_commands(path, abf)
    stim_channel = _abf_stimulus_channel(abf)
    if commands is None and stim_channel is None:
        raise UserError(f"{path}: no stimulus: the command waveform is not a current or "
                        "is zero or unknown, and no other channel records a current")
    dt = 1000.0 / float(abf.dataRate)
    sweeps, left_out = [], {}
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
            left_out[k] = (f"the stimulus has {len(current)} samples, the response "
                           f"{len(voltage)}")
        else:
            sweeps.append(Sweep(k, current, voltage, dt))
    return [usable_cell(name or path.name, path, sweeps, left_out)]
