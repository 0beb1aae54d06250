"""Fitting point neurons to recordings by gradient and gradient-free optimizers.

    config.py      FitConfig (every setting of a run), FitDefaults (what a script sets), the
                   command line
    entry.py       run_fitting (what the scripts call): one fit or many recorded cells
    methods.py     METHODS, the registry of fitting methods by name (light: no optimizer)
    problem.py     Box, Problem, make_problem, synthetic target, traces_of / simulate_cell
    recorded.py    what recordings add: held-out sweeps, spike weight, gamma window, anchors
    features.py    a recording's spikes, noise, passive properties and spike threshold
    objectives.py  make_objectives: the real loss and the stages of gradient-based methods
    optim.py       what every optimizer shares: Objectives, Stage, OptimResult, Tracker
    starts.py      starts drawn, anchored and screened; batched calls of many points
    multistart.py  lock-step multi-start L-BFGS-B, staging, run_method
    searchers.py   Levenberg-Marquardt, nevergrad and scikit-optimize wrappers
    metrics.py     spike-train losses and scores (van Rossum, gamma factor)
    verdict.py     scores per sweep (held-out ones too) and why a fit is poor
    efeatures.py   eFEL features of cell and model side by side
    recordings/    reading recordings: cells from NWB and ABF files, traces from CSV files
    population.py  fitting many recorded cells in one run
    rows.py        a cell's row in cells.csv and metrics.json
    plots.py       figures of a run
    pipeline.py    fit_all, the results table, run_problem (one problem, end to end)

Imports flow scripts -> utils.fitting -> models; the names below are the public ones. Each is
imported on first use, so that a script's command line (config.py) does not import JAX.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "utils.fitting.config": ["FitConfig", "FitDefaults", "build_parser", "parse_flags"],
    "utils.fitting.entry": ["run_fitting"],
    "utils.fitting.methods": ["METHODS", "GradientBased", "GradientFree", "method_names",
                              "default_methods", "parse_methods"],
    "utils.fitting.problem": ["Box", "Problem", "make_problem", "parse_assignments",
                              "parse_bounds", "traces_of", "simulate_cell"],
    "utils.fitting.objectives": ["make_objectives"],
    "utils.fitting.optim": ["Objectives", "Stage", "OptimResult", "Tracker"],
    "utils.fitting.multistart": ["run_method"],
    "utils.fitting.pipeline": ["problem_from_flags", "Fits", "fit_all", "format_table"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = list(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """A public name, imported from its module when first asked for."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'utils.fitting' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
