"""Every setting of a fitting run, declared once (`FitConfig`), what a fitting script sets
(`FitDefaults`: its model, problem and default settings), and the scripts' command line built
from them.

Light on purpose: the command line (and --help) is built without importing JAX, SciPy or any
optimizer; `utils.fitting.entry.run_fitting` imports the fitting pipeline only once the flags
are parsed.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

from models import NEURON_MODELS
from utils.fitting.methods import default_methods, method_names, methods_help, parse_methods
from utils.distributed_env import DISTRIBUTED_ENV
from utils.fitting.recordings import parse_index_list
from utils.settings import (Settings, nonneg_float, nonneg_int, positive_float, positive_int,
                            setting)

if TYPE_CHECKING:
    import numpy as np

    from models.spec import NeuronModel

__all__ = ["FitConfig", "FitDefaults", "build_parser", "parse_flags",
           "LAYOUT_CHOICES", "CURRENT_UNITS"]

CURRENT_UNITS = {"nA": 1.0, "pA": 1e-3, "A": 1e9}  # --current_unit: factor to nA
LAYOUT_CHOICES = ("auto", "yes", "no")  # --csv_header, --csv_index


def parse_test_sweeps(text: str) -> str | tuple[int, ...]:
    """'auto', 'none', or sweep numbers like --sweeps (argparse type of --test_sweeps)."""
    word = text.strip().lower()
    return word if word in ("auto", "none") else parse_index_list(text)


@dataclass(frozen=True)
class FitConfig(Settings):
    """Every setting of a fitting run; field names are the scripts' flags. The defaults of
    n_starts, fit, presearch_dt, spike_tau and gamma_window are each script's
    (`FitDefaults.config`); a script may add settings of its own in a subclass."""

    # -- what is fitted, how
    target: str = setting("potential", "fit membrane potentials (voltage MSE) or spike trains "
                          "(van Rossum loss, scored by the gamma factor)",
                          choices=("potential", "spike"))
    methods: tuple[str, ...] = setting(default_methods(), methods_help, type=parse_methods,
                                       default_text=lambda: ",".join(default_methods()))
    n_starts: int = setting(20, lambda: "random starts of the gradient-based methods "
                            f"({', '.join(method_names('gradient-based'))})", type=positive_int)
    maxiter: int = setting(200, "iterations per start of the gradient-based methods",
                           type=positive_int)
    presearch: str = setting("on", "gradient-based methods in two stages where the model "
                             "supports it (GIF): fit with resets forced at the target's spike "
                             "times, then refine on the real loss from the best results; off: "
                             "the real loss only", choices=("on", "off"))
    presearch_dt: Optional[float] = setting(
        None, "time step (ms) of a first, cheaper presearch stage on a coarser grid (rounded "
        "to a whole number of --dt steps), whose best results the presearch on --dt then "
        "polishes (set it to --dt to skip that stage)", type=positive_float,
        default_text="--dt")
    confirm: int = setting(3, "stop the remaining starts of a gradient-based method once this "
                           "many have converged to the same best loss (within 1e-6 relative; "
                           "0: run every start to convergence)", type=nonneg_int)
    n_refine: int = setting(2, "points each later stage refines (with --presearch on): the "
                            "best point scored so far, the earlier stage's best end by its own "
                            "loss, then its other ends by the real loss (one per minimum)",
                            type=positive_int)
    budget: int = setting(100, "simulations allowed to each gradient-free method",
                          type=positive_int)
    devices: Optional[int] = setting(None, "devices to shard each batch of parameter sets "
                                     "(starts, candidates) over", type=positive_int,
                                     default_text="every local device")
    popsize: int = setting(20, "candidates per round (one batched simulation) of "
                           "gradient-free methods", type=positive_int)
    # -- the problem
    fit: str = setting("", "comma list of parameters to fit")
    fix: str = setting("", "NAME=VALUE[,NAME=VALUE...]: set fixed parameters (units as in "
                       "README)", default_text="none")
    bounds: str = setting("", "NAME=LO:HI[,...]: search bounds of fitted parameters",
                          default_text="the script's")
    data: Optional[str] = setting(None, "recordings of one or many cells: an NWB or ABF file, "
                                  "a folder of them, or a glob pattern (quoted); each cell is "
                                  "fitted in turn (cells.csv)", default_text="none")
    data_format: str = setting("auto", "format of the --data files (auto: by suffix, .nwb or "
                               ".abf)", choices=("auto", "nwb", "abf"))
    sweeps: tuple[int, ...] = setting((), "sweep numbers of each cell to fit, e.g. 0,2,5-7",
                                      type=parse_index_list, default_text="all")
    cells: str = setting("", "cells of --data to fit: identifiers (file:electrode for NWB, the "
                         "file for ABF; a file named by its path below the folder holding "
                         "every file read) or indices in the listed order, comma separated",
                         default_text="all")
    data_current: Optional[str] = setting(None, "CSV of input currents, one trace per row")
    data_voltage: Optional[str] = setting(None, "CSV of recorded membrane potentials (mV), "
                                          "same shape")
    data_spikes: Optional[str] = setting(None, "CSV of spike times (ms), one row per trace")
    current_unit: str = setting("nA", "unit of the values in --data_current",
                                choices=tuple(CURRENT_UNITS))
    csv_header: str = setting("auto", "line 1 of the trace files is a header (yes), data (no), "
                              "or auto: a header when it holds no number, or reads 0,1,...,T-1 "
                              "(pandas' column labels) where the other files' row counts "
                              "confirm it", choices=LAYOUT_CHOICES)
    csv_index: str = setting("auto", "the first column of the trace files is an index to drop "
                             "(yes), data (no), or auto: an index only when the header's first "
                             "cell is empty, 'index' or 'Unnamed: 0'", choices=LAYOUT_CHOICES)
    dt: Optional[float] = setting(None, "sampling interval in ms", type=positive_float,
                                  default_text="the script's, for the synthetic problem; "
                                               "required with --data_current")
    noise_mV: float = setting(0.0, "std of Gaussian noise added to the synthetic voltage "
                              "target (mV)", type=float)
    spike_tau: float = setting(10.0, "time constant (ms) of the van Rossum spike loss",
                               type=positive_float)
    gamma_window: Optional[float] = setting(
        None, "coincidence window (ms) of the gamma factor; the score is reported as null "
        "where a model rate nu makes 2 nu window >= 1", type=positive_float)
    spike_weight: Optional[float] = setting(
        None, "weight (mV^2) of the spike-train term added to the voltage error of a potential "
        "target: the squared van Rossum distance (--spike_tau) relative to a silent model's, so "
        "that a model without any spike pays this much; the voltage error then counts only "
        "samples away from the recorded spikes, capped at -20 mV (0: the voltage MSE over "
        "every sample)", type=nonneg_float,
        default_text="20000 for recordings with spikes, else 0")
    test_sweeps: str | tuple[int, ...] = setting(
        "auto", "sweeps held out of the fit and scored on (spike counts, latency, gamma, "
        "subthreshold RMSE): numbers like --sweeps, 'none', or auto: with --data the sweeps "
        "of each cell that --sweeps leaves out, or every third sweep when --sweeps is not "
        "given; with --data_current, none", type=parse_test_sweeps)
    # -- the run
    repeats: int = setting(1, "run each method N times with different seeds; report mean and "
                           "std", type=positive_int)
    seed: int = setting(0, "seed of every random choice", type=int)
    out_dir: Optional[str] = setting(None, "output folder",
                                     default_text="results/<script>/<timestamp>/")
    show: bool = setting(False, "open the figures as well as saving them")


def with_defaults(base: type[FitConfig], name: str, defaults: Mapping[str, Any],
                  texts: Mapping[str, str]) -> type[FitConfig]:
    """A subclass `name` of `base` whose settings in `defaults` have those defaults and those
    in `texts` that help's default text (the other fields as they are)."""
    fields = []
    for f in dataclasses.fields(base):
        if f.name in defaults or f.name in texts:
            meta = {**f.metadata, "default_text": texts.get(f.name, f.metadata["default_text"])}
            fields.append((f.name, f.type, dataclasses.field(
                default=defaults.get(f.name, f.default), metadata=meta)))
    return dataclasses.make_dataclass(name, fields, bases=(base,), frozen=True)


@dataclass(frozen=True)
class FitDefaults:
    """What a fitting script sets: its model, default problem and budgets."""

    script: str
    title: str                                      # e.g. "Hodgkin-Huxley neuron"
    model: str                                      # a key of models.NEURON_MODELS
    fit: tuple[str, ...]
    bounds: Mapping[str, tuple[float, float]]      # default bounds of every parameter
    dt: float
    protocol: Callable[[float], np.ndarray]         # dt -> current [N, T] in nA
    n_starts: int
    # full parameter set of the synthetic target; None: the model's defaults
    truth: Mapping[str, float] | None = None
    # the script's settings: FitConfig, or a subclass adding the script's own
    settings: type[FitConfig] = FitConfig
    # the model factory's keyword options from the settings (e.g. hh's steady_state)
    model_options: Callable[[FitConfig], Mapping[str, Any]] = lambda config: {}
    spike_tau: float = 10.0
    presearch_dt: float | None = None  # grid (ms) of the first presearch stage; None: dt
    # coincidence window (ms) of the gamma factor: below 1 / (2 x the target's highest rate
    # per trace), with margin, so that the score is defined (utils/fitting/metrics.py)
    gamma_window: float = 2.0
    # bounds that replace `bounds` for recordings (real cells vary more than the synthetic
    # target's neighbourhood)
    recorded_bounds: Mapping[str, tuple[float, float]] = dataclasses.field(default_factory=dict)

    @functools.cached_property
    def config(self) -> type[FitConfig]:
        """The script's settings class: `settings` with this script's defaults."""
        defaults = {"n_starts": self.n_starts, "fit": ",".join(self.fit),
                    "presearch_dt": self.presearch_dt, "spike_tau": self.spike_tau}
        texts = {"dt": f"{self.dt:g} for the synthetic problem; required with --data_current",
                 "gamma_window": f"{self.gamma_window:g} for the synthetic problem; for "
                                 "recordings 4 (Jolivet et al. 2008), or a quarter of the "
                                 "busiest sweep's mean interspike interval if shorter",
                 "bounds": "the script's (wider ones for recordings)",
                 "out_dir": f"results/{self.script}/<timestamp>/",
                 "presearch_dt": "--dt" if self.presearch_dt is None else None}
        return with_defaults(self.settings, f"{self.settings.__name__}_{self.model}", defaults,
                             texts)

    def make_model(self, config: FitConfig) -> NeuronModel:
        """The script's model, with its options from the settings."""
        return NEURON_MODELS[self.model](**self.model_options(config))

    def target_params(self, model: NeuronModel) -> dict[str, float]:
        """Every parameter of the synthetic target."""
        return dict(model.defaults if self.truth is None else self.truth)


def build_parser(d: FitDefaults) -> argparse.ArgumentParser:
    """Every flag of a fitting script: a flag per setting of `d.config`."""
    parser = argparse.ArgumentParser(
        prog=f"{d.script}.py",
        description=f"Fit a {d.title} to membrane potentials or spike trains, by gradient and "
                    "gradient-free methods.",
        epilog="several processes or hosts share the cells of a --data run (process 0 writes "
               "the run folder) when these are set in every process: " + "; ".join(
                   f"{k}: {v}" for k, v in DISTRIBUTED_ENV.items()))
    d.config.add_flags(parser)
    return parser


def parse_flags(d: FitDefaults, argv: Sequence[str] | None = None) -> FitConfig:
    """The settings a script's command line gives (argparse exits on a bad flag)."""
    return d.config.from_flat(vars(build_parser(d).parse_args(argv)))
