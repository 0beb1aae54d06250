"""Helpers shared by the fitting benchmarks."""
from __future__ import annotations


def time_to(history, level: float) -> float | None:
    """Wall time at which the best loss first reached `level` (None if never)."""
    return next((t for t, _, best in history if best <= level), None)
