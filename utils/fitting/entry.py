"""What the fitting scripts call: their flags parsed, then one fit (pipeline.run_problem) or
many recorded cells (population.run_cells). The command line is built without JAX, SciPy or
any optimizer; they are imported only once the flags are parsed."""
from __future__ import annotations

from typing import Sequence

from utils.fitting.config import FitConfig, FitDefaults, parse_flags

__all__ = ["run_fitting", "run"]


def run_fitting(d: FitDefaults, argv: Sequence[str] | None = None) -> dict:
    """Parse the script's flags, then run the fit (`run`); returns the metrics written. --help
    and a bad flag end before JAX is imported."""
    return run(d, parse_flags(d, argv))


def run(d: FitDefaults, config: FitConfig) -> dict:
    """Validate every input, then create a fresh run folder, write config.json, fit inside
    RunStatus (status.json), print the table, write metrics.json and figures; returns the
    metrics.

    Nothing is written before the settings and data are validated, and an existing non-empty
    --out_dir is refused. Ctrl-C keeps the methods finished so far: metrics.json gets them
    with "interrupted": true (no figures), then KeyboardInterrupt goes on to the caller (exit
    130 through utils.run.cli). A run in which no method reached a finite loss fails with a
    UserError after writing its metrics. --data runs every selected cell
    (utils/fitting/population.py)."""
    if config.data:
        from utils.fitting.population import run_cells  # JAX: only once the flags are read

        return run_cells(d, config)
    from utils.fitting.pipeline import run_problem
    from utils.fitting.problem import make_problem

    return run_problem(d, config, make_problem(d.make_model(config), d, config))
