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
