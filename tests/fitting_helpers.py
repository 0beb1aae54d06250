"""Helpers shared by the fitting tests (import as `from tests.fitting_helpers import ...`)."""
from __future__ import annotations

import numpy as np


def write_csv(path, rows) -> str:
    """`rows` as a CSV file at `path`; returns the path as a string (for a flag)."""
    np.savetxt(path, rows, delimiter=",")
    return str(path)
