"""Helpers shared by the fitting tests (import as `from tests.fitting_helpers import ...`)."""
from __future__ import annotations

import contextlib
import signal
from typing import Iterator

import h5py
import numpy as np
import pytest

from benchmarks.kit.nwb import write_nwb
from utils.run import UserError


@contextlib.contextmanager
def python_sigint() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt inside the block (Python's own handler), also where the
    test runner inherited it ignored (a background job of a non-interactive shell, nohup, CI
    runners); a process started inside the block gets SIGINT's default action, as exec resets
    a handled signal (an ignored one would stay ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def write_csv(path, rows) -> str:
    """`rows` as a CSV file at `path`; returns the path as a string (for a flag)."""
    np.savetxt(path, rows, delimiter=",")
    return str(path)


def write_abf1(path, current_nA=None, voltage_mV=None, dt_ms: float = 0.01,
               units: str = "mV") -> str:
    """An ABF1 file by pyabf's writer: channel 0 `voltage_mV` [N, T] in `units`; with
    `current_nA`, a second channel in nA (the writer makes one channel: its samples are
    interleaved and the header set to two channels, as ABF1 stores them)."""
    import struct

    from pyabf.abfWriter import writeABF1

    if current_nA is None:
        writeABF1(np.asarray(voltage_mV, float), str(path), 1000.0 / dt_ms, units=units)
        return str(path)
    both = np.stack([voltage_mV, current_nA], axis=-1).reshape(len(voltage_mV), -1)
    writeABF1(both, str(path), 2 * 1000.0 / dt_ms, units=units)
    with open(path, "r+b") as fh:
        header = bytearray(fh.read(2048))
        struct.pack_into("h", header, 120, 2)              # nADCNumChannels
        struct.pack_into("2h", header, 410, 0, 1)          # nADCSamplingSeq
        struct.pack_into("8s", header, 602 + 8, b"nA      ")  # sADCUnits of ADC 1
        fh.seek(0)
        fh.write(header)
    return str(path)


# a tiny lab file: two cells of three 50-sample sweeps (tests/test_recordings*.py)
T = 50
CUR = np.linspace(0.0, 2.5, 3 * T).reshape(3, T)            # nA
VOLT = -70.0 + np.linspace(0.0, 40.0, 3 * T).reshape(3, T)  # mV


def two_cells(path, **kw):
    return write_nwb(path, {"e0": (CUR, VOLT), "e1": (2 * CUR, VOLT + 5.0)}, **kw)


def refusal(cell) -> str:
    """The one line a cell is refused with (Cell.traces: its reason, or its sweeps')."""
    with pytest.raises(UserError) as err:
        cell.traces()
    assert "\n" not in str(err.value)
    return str(err.value)


# damaging an NWB file in place
def shorten(path, series: str, n: int) -> None:
    """Keep the first `n` samples of an NWB series (its data's attributes kept)."""
    with h5py.File(path, "r+") as h5:
        group = h5[series]
        attrs, data = dict(group["data"].attrs), group["data"][:n]
        del group["data"]
        group["data"] = data
        group["data"].attrs.update(attrs)


def delete(path, *names: str) -> None:
    with h5py.File(path, "r+") as h5:
        for name in names:
            del h5[name]


def strip_attr(path, attr: str) -> None:
    """Remove `attr` from every series of the file."""
    with h5py.File(path, "r+") as h5:
        for where in ("acquisition", "stimulus/presentation"):
            for group in h5[where].values():
                del group.attrs[attr]


def unpair(path) -> None:
    """No sweep numbers, every series starting at 0 s: nothing says which stimulus goes with
    which response (a file without an intracellular recordings table)."""
    strip_attr(path, "sweep_number")
    with h5py.File(path, "r+") as h5:
        for where in ("acquisition", "stimulus/presentation"):
            for group in h5[where].values():
                group["starting_time"][()] = 0.0
