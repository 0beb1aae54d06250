"""Helpers shared by the fitting benchmarks."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.fitting import FitDefaults, Problem, build_parser, make_problem  # noqa: E402


def problem_for(defaults: FitDefaults, argv: list[str]) -> Problem:
    """The fitting problem a script would build from these flags."""
    args = build_parser(defaults).parse_args(argv)
    return make_problem(defaults.make_model(args), defaults, args)


def time_to(history, level: float) -> float | None:
    """Wall time at which the best loss first reached `level` (None if never)."""
    return next((t for t, _, best in history if best <= level), None)
