"""`METHODS`, the registry of fitting methods by name: the scripts' --methods and the keys of
metrics.json. Light on purpose: listing and checking names (a command line, its --help) imports
no optimizer; an entry names its function as 'module:function', imported when it first runs.

Adding a method is one function and one registry entry, e.g. a gradient-free one:

    def random_search(loss, dim, *, budget, popsize, seed, progress=None) -> OptimResult:
        ...  # ask loss(z [B, D]) for points, record them with a Tracker (utils/fitting/optim.py)
    METHODS["random"] = GradientFree(random_search, "uniform random search")

A gradient-based entry (`GradientBased`) gives instead how to run one stage of the objectives
over the starts of every cell fitted (see utils/fitting/multistart.py: lbfgsb_stage); the
starts and the staging are shared.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from models.registry import load

if TYPE_CHECKING:
    import numpy as np

    from utils.fitting.optim import OptimResult, Progress, Stage

    # stage(stage, index, maxiter, progress, confirm) -> run from each cell's starts [S, D]
    StageRunner = Callable[[Stage, int, int, Progress | None, int],
                           Callable[[list[np.ndarray]], list[OptimResult]]]
    # minimize(loss, dim, *, budget, popsize, seed, progress) -> OptimResult
    Minimizer = Callable[..., OptimResult]

__all__ = ["GradientBased", "GradientFree", "METHODS", "ALIASES", "method_names",
           "default_methods", "parse_methods", "methods_help"]


def _resolve(entry: Any) -> Any:
    """A function given as itself or as a 'module:function' reference."""
    return load(entry) if isinstance(entry, str) else entry


@dataclass(frozen=True)
class GradientBased:
    """A local method on the objectives' stages, run from `n_starts` starts per cell: the
    first stage from every start, each later one from `n_refine` points of the one before
    (utils/fitting/multistart.py: staged). `stage` builds the run of one stage over the
    starts of every cell (together or in turn); `maxiter` is per start and stage."""

    stage: StageRunner | str
    help: str
    default: bool = True  # in the scripts' default --methods
    kind: ClassVar[str] = "gradient-based"

    def stage_runner(self) -> StageRunner:
        """`stage`, imported if given by reference."""
        return _resolve(self.stage)


@dataclass(frozen=True)
class GradientFree:
    """A global method on the real loss alone, allowed `budget` simulations, `popsize` per
    batched evaluation."""

    minimize: Minimizer | str
    help: str
    default: bool = True
    kind: ClassVar[str] = "gradient-free"

    def minimizer(self) -> Minimizer:
        """`minimize`, imported if given by reference."""
        return _resolve(self.minimize)


_SEARCHERS = "utils.fitting.searchers"

# The fitting methods by name, the one list of them. "gradient" is multi-start L-BFGS-B; its
# name stays the key of metrics.json (earlier results, figures), `lbfgsb` says what it is.
METHODS: dict[str, GradientBased | GradientFree] = {
    "gradient": GradientBased("utils.fitting.multistart:lbfgsb_stage",
                              "multi-start L-BFGS-B on JAX gradients"),
    "lm": GradientBased(f"{_SEARCHERS}:lm_stage",
                        "multi-start Levenberg-Marquardt on JAX Jacobians",
                        default=False),  # the authors' comparison has no lm
    "DE": GradientFree(f"{_SEARCHERS}:differential_evolution",
                       "nevergrad differential evolution"),
    "PSO": GradientFree(f"{_SEARCHERS}:particle_swarm", "nevergrad particle swarm optimization"),
    "TwoPointsDE": GradientFree(f"{_SEARCHERS}:two_points_de",
                                "nevergrad differential evolution, two-points crossover"),
    "bayesian": GradientFree(f"{_SEARCHERS}:bayesian_minimize",
                             "scikit-optimize Gaussian-process Bayesian optimization"),
}
# other names --methods accepts: alias -> registered name (what metrics.json reports)
ALIASES: dict[str, str] = {"lbfgsb": "gradient"}


def method_names(kind: str | None = None) -> tuple[str, ...]:
    """Registered methods in registry order; only "gradient-based" or "gradient-free" ones if
    `kind` is given."""
    return tuple(n for n, o in METHODS.items() if kind is None or o.kind == kind)


def default_methods() -> tuple[str, ...]:
    """The scripts' default --methods."""
    return tuple(n for n, o in METHODS.items() if o.default)


def parse_methods(text: str) -> tuple[str, ...]:
    """argparse type: comma list of registered methods or their aliases, as registered names
    (each once, in the order given)."""
    given = [m.strip() for m in text.split(",") if m.strip()]
    names = [ALIASES.get(m, m) for m in given]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown method {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(method_names())}")
    return tuple(dict.fromkeys(names))


def methods_help() -> str:
    """--methods' help: every method with its description and aliases."""
    aliases = {name: [a for a, n in ALIASES.items() if n == name] for name in METHODS}
    described = "; ".join(
        f"{name}{' (or ' + ', '.join(aliases[name]) + ')' if aliases[name] else ''}: {opt.help}"
        for name, opt in METHODS.items())
    return f"comma list of methods among {','.join(method_names())} ({described})"
