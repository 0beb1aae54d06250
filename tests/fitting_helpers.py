"""Helpers shared by the fitting tests (import as `from tests.fitting_helpers import ...`)."""
from __future__ import annotations

import contextlib
import signal
from typing import Iterator

import numpy as np


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
