"""A fitting problem built from a script's defaults and settings (utils/fitting/config.py): the
search box, inputs, target (synthetic or recorded), free and fixed parameters; and the
simulation of one parameter set."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Mapping

import jax
import numpy as np

from models.spec import NeuronModel
from utils.fitting.config import FitConfig, FitDefaults
from utils.fitting.recordings.csv_files import (check_current, check_recorded_cell, check_voltage,
                                load_recordings)
from utils.fitting.features import AP_LEVEL_MV, CellEstimates, estimate_cell
from utils.fitting.recorded import (HeldOut, anchor, gamma_window, held_out_rows,
                                    recording_spikes, spike_weight)
from utils.run import UserError

__all__ = ["Box", "Problem", "parse_assignments", "parse_bounds", "make_problem",
           "check_flags", "cell_problem", "synthetic_target", "traces_of", "simulate_cell",
           "compile_simulations"]


@dataclass(frozen=True)
class Box:
    """Maps unit coordinates z in [0, 1] to parameter values; log-scaled where bounds span
    more than a factor 50 and are positive."""

    lo: np.ndarray
    hi: np.ndarray

    @property
    def log(self) -> np.ndarray:
        return (self.lo > 0) & (self.hi / np.where(self.lo > 0, self.lo, 1.0) > 50.0)

    def to_params(self, z, xp=np):
        """Parameter values for unit coordinates (works for NumPy and jax.numpy)."""
        lo, hi, log = xp.asarray(self.lo), xp.asarray(self.hi), xp.asarray(self.log)
        safe_lo = xp.where(log, lo, 1.0)
        safe_hi = xp.where(log, hi, 1.0)
        log_x = xp.exp(xp.log(safe_lo) + z * (xp.log(safe_hi) - xp.log(safe_lo)))
        return xp.where(log, log_x, lo + z * (hi - lo))

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        """Unit coordinates of parameter values inside the box (the inverse of to_params)."""
        x = np.clip(np.asarray(x, dtype=float), self.lo, self.hi)
        safe = np.where(self.log, x, 1.0)
        lo, hi = np.where(self.log, self.lo, 1.0), np.where(self.log, self.hi, 2.0)
        log_z = (np.log(safe) - np.log(lo)) / (np.log(hi) - np.log(lo))
        return np.where(self.log, log_z, (x - self.lo) / (self.hi - self.lo))

    def anchor_of(self, free: list[str], values: Mapping[str, float] | None) -> np.ndarray | None:
        """Unit coordinates [D] of start values given for some free parameters (NaN for the
        others); None when none is given."""
        if not values:
            return None
        x = np.array([values.get(n, np.nan) for n in free], dtype=float)
        return np.where(np.isnan(x), np.nan, self.to_unit(np.where(np.isnan(x), self.lo, x)))


@dataclass
class Problem:
    """A fitting problem: inputs, target, free and fixed parameters and their bounds."""

    model: NeuronModel
    current: np.ndarray                     # [N, T] nA
    dt: float
    target: str                             # "potential" | "spike"
    v_target: np.ndarray | None             # [N, T] mV
    spikes_target: list[np.ndarray] | None  # spike times in ms, one array per trace
    free: list[str]
    fixed: dict[str, float]
    box: Box
    truth: dict[str, float] | None
    spike_tau: float = 10.0
    gamma_window: float = 2.0
    source: str = "synthetic"
    presearch: bool = True
    presearch_dt: float | None = None  # grid of the first presearch stage; None: dt
    # recordings: mV^2 per unit of squared van Rossum distance added to the subthreshold MSE
    # (0: the voltage MSE over every sample), the cap of that MSE (the cell's spike
    # threshold), start values of the free parameters read from the data, the data's
    # estimates (utils/fitting/features.py) and the sweeps held out for testing
    spike_weight: float = 0.0
    v_cap: float | None = None
    anchor: dict[str, float] | None = None
    estimates: CellEstimates | None = None
    test: HeldOut | None = None
    numbers: tuple[int, ...] | None = None  # the fitted sweeps' numbers (None: 0, 1, ...)

    @property
    def sweep_numbers(self) -> tuple[int, ...]:
        return self.numbers or tuple(range(len(self.current)))

    @property
    def duration(self) -> float:
        return self.current.shape[1] * self.dt


# --------------------------------------------------------------------------- flag values

def parse_assignments(text: str, flag: str = "--fix") -> dict[str, float]:
    """'a=1,b=2' -> {'a': 1.0, 'b': 2.0}, refusing a name given twice."""
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            sep = ""
        if not sep or not name or not math.isfinite(number):
            raise UserError(f"{flag}: expected NAME=VALUE with a finite number, got {item!r}")
        if name in out:
            raise UserError(f"{flag}: {name} is given twice ({out[name]:g} and {number:g})")
        out[name] = number
    return out


def parse_bounds(text: str) -> dict[str, tuple[float, float]]:
    """'a=0:1,b=-2:3' -> {'a': (0, 1), 'b': (-2, 3)}, refusing LO >= HI and a name given
    twice."""
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, rng = item.partition("=")
        name = name.strip()
        lo, colon, hi = rng.rpartition(":") if rng.count(":") == 1 else ("", "", "")
        try:
            lo_v, hi_v = float(lo), float(hi)
        except ValueError:
            raise UserError(f"--bounds: expected NAME=LO:HI, got {item!r}") from None
        if not colon or not (math.isfinite(lo_v) and math.isfinite(hi_v)):
            raise UserError(f"--bounds: expected NAME=LO:HI with finite numbers, got {item!r}")
        if lo_v >= hi_v:
            raise UserError(f"--bounds: {name}: LO ({lo_v:g}) must be below HI ({hi_v:g})")
        if name in out:
            raise UserError(f"--bounds: {name} is given twice")
        out[name] = (lo_v, hi_v)
    return out


# --------------------------------------------------------------------------- problem

def _free_and_fixed(model: NeuronModel, d: FitDefaults,
                    config: FitConfig) -> tuple[list[str], dict]:
    names = model.param_names
    free = [s.strip() for s in config.fit.split(",") if s.strip()]
    twice = sorted({n for n in free if free.count(n) > 1})
    if twice:
        raise UserError(f"--fit: {', '.join(twice)} is named twice")
    fix = parse_assignments(config.fix)
    for flag, given in (("--fit", free), ("--fix", list(fix))):
        unknown = [n for n in given if n not in names]
        if unknown:
            raise UserError(f"{flag}: unknown parameter {', '.join(unknown)}; "
                            f"known: {', '.join(names)}")
    if not free:
        raise UserError("--fit: name at least one parameter to fit")
    both = [n for n in free if n in fix]
    if both:
        raise UserError(f"{', '.join(both)} cannot be both fitted (--fit) and fixed (--fix)")
    recorded = config.data_current or config.data
    base = dict(model.defaults) if recorded else d.target_params(model)
    fixed = {n: float(fix.get(n, base[n])) for n in names if n not in free}
    for n, value in fixed.items():
        bad = ("> 0" if n in model.positive and value <= 0
               else ">= 0" if n in model.nonnegative and value < 0 else None)
        if bad:
            source = "--fix" if n in fix else "the fixed value"
            raise UserError(f"{source}: {n} must be {bad} ({model.units[n]}), got {value:g}")
    return free, fixed


def _make_box(model: NeuronModel, free: list[str], d: FitDefaults, config: FitConfig) -> Box:
    bounds = dict(d.bounds)
    if config.data_current or config.data:
        bounds.update(d.recorded_bounds)
    given = parse_bounds(config.bounds)
    stray = [n for n in given if n not in free]
    if stray:
        raise UserError(f"--bounds: {', '.join(stray)} is not fitted (add it to --fit)")
    bounds.update(given)
    for n in free:
        lo = bounds[n][0]
        if (n in model.positive and lo <= 0) or (n in model.nonnegative and lo < 0):
            need = "> 0" if n in model.positive else ">= 0"
            raise UserError(f"--bounds: {n} must be {need} ({model.units[n]}), so its lower "
                            f"bound must be too; got {lo:g}")
    return Box(np.array([bounds[n][0] for n in free], float),
               np.array([bounds[n][1] for n in free], float))


def synthetic_target(model: NeuronModel, d: FitDefaults, config: FitConfig, fixed: dict,
                     free: list[str], dt: float) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], dict]:
    """Current, voltage (with --noise_mV added), the true model's spike times (from its own
    spike signal, so none is missed: a GIF rebound spike resets V by only a few mV) and the
    true values of the free parameters."""
    current = d.protocol(dt)
    truth = {**d.target_params(model), **fixed}
    v, signal = simulate_cell(model, truth, current, dt)
    spikes = model.spikes_of(v, signal, dt)
    if config.noise_mV > 0:
        v = v + np.random.default_rng(config.seed + 7919).normal(0, config.noise_mV, v.shape)
    return current, v, spikes, {n: truth[n] for n in free}


def _check_files_flags(config: FitConfig) -> None:
    """--data (NWB/ABF files) excludes the CSV flags and --dt; --sweeps, --cells and
    --data_format need it."""
    if config.data is None:
        given = [f for f, on in (("--sweeps", config.sweeps), ("--cells", config.cells),
                                 ("--data_format", config.data_format != "auto")) if on]
        if given:
            raise UserError(f"{'/'.join(given)} select among the recordings of --data: give "
                            "--data")
        return
    if config.data_current or config.data_voltage or config.data_spikes:
        raise UserError("--data and --data_current/--data_voltage/--data_spikes are two "
                        "sources of recordings: give one")
    if config.dt is not None:
        raise UserError("--dt: with --data the sampling interval is read from the files: "
                        "leave it out")


def _check_data_flags(config: FitConfig) -> None:
    if config.noise_mV < 0 or not math.isfinite(config.noise_mV):
        raise UserError(f"--noise_mV must be >= 0, got {config.noise_mV}")
    _check_files_flags(config)
    if isinstance(config.test_sweeps, tuple) and not (config.data_current or config.data):
        raise UserError("--test_sweeps holds out sweeps of recordings: give --data or "
                        "--data_current")
    if config.noise_mV > 0 and (config.data_current or config.data):
        raise UserError("--noise_mV adds noise to the synthetic target only; with recordings "
                        f"({'--data' if config.data else '--data_current'}) it would be "
                        "ignored: leave it out")
    if not config.data_current and (config.data_voltage or config.data_spikes):
        raise UserError("--data_voltage/--data_spikes need --data_current (the input currents)")
    if config.data_current:
        if config.dt is None:
            raise UserError("--dt (ms) is required with --data_current")
        if not config.data_voltage and not config.data_spikes:
            raise UserError("--data_current needs --data_voltage or --data_spikes as the target")
        if config.target == "potential" and not config.data_voltage:
            raise UserError("--target potential needs --data_voltage")


def _check_presearch_dt(model: NeuronModel, config: FitConfig, n_samples: int,
                        dt: float) -> None:
    """The coarse presearch grid must leave at least 2 steps in the traces."""
    if model.simulate_forced is None or config.presearch != "on" or config.presearch_dt is None:
        return
    factor = max(1, int(round(config.presearch_dt / dt)))
    if n_samples // factor < 2:
        raise UserError(f"--presearch_dt {config.presearch_dt:g} ms leaves fewer than 2 steps "
                        f"in traces of {n_samples * dt:g} ms; use at most "
                        f"{n_samples * dt / 2:g} ms (or --dt {dt:g} to skip the coarse stage)")


def make_problem(model: NeuronModel, d: FitDefaults, config: FitConfig) -> Problem:
    """Validate the settings and data, and build the problem (synthetic or from
    recordings)."""
    free, fixed = _free_and_fixed(model, d, config)
    box = _make_box(model, free, d, config)
    _check_data_flags(config)
    if config.data_current:
        current, v_target, spikes = load_recordings(
            config.data_current, config.data_voltage, config.data_spikes, config.current_unit,
            dt=config.dt, header=config.csv_header, index=config.csv_index)
        truth, source, dt = None, "recordings", config.dt
        current, v_target, spikes, held_out, numbers = held_out_rows(config, current,
                                                                      v_target, spikes)
    else:
        held_out = numbers = None
        dt = config.dt or d.dt
        current, v_target, spikes, truth = synthetic_target(model, d, config, fixed, free, dt)
        source = "synthetic"
    return _finish(model, d, config, (current, v_target, spikes, dt), free, fixed, box, truth,
                   source, held_out, numbers)


def _finish(model: NeuronModel, d: FitDefaults, config: FitConfig, data: tuple,
            free: list[str], fixed: dict, box: Box, truth: dict | None, source: str,
            held_out: HeldOut | None = None,
            numbers: tuple[int, ...] | None = None) -> Problem:
    """The problem from its data (current, voltage or None, spike times or None, dt): spike
    times detected in the voltage where not given; a spike target needs spikes."""
    current, v_target, spikes, dt = data
    recorded = truth is None and v_target is not None
    if spikes is None and v_target is not None:
        spikes = recording_spikes(model, v_target, dt) if recorded else \
            model.spikes_of(v_target, None, dt)
    if config.target == "spike" and not any(len(s) for s in spikes):
        raise UserError("the spike target holds no spikes: nothing to fit")
    _check_presearch_dt(model, config, current.shape[1], dt)
    estimates = estimate_cell(current, v_target, dt) if recorded else None
    weight = spike_weight(config, estimates, spikes)
    return Problem(model, current, dt, config.target, v_target, spikes, free, fixed, box, truth,
                   config.spike_tau, gamma_window(config, d, truth, spikes, current, dt), source,
                   presearch=config.presearch == "on", presearch_dt=config.presearch_dt,
                   spike_weight=weight,
                   v_cap=AP_LEVEL_MV if weight else None,
                   anchor=anchor(model, estimates, free, box.lo, box.hi), estimates=estimates,
                   test=held_out, numbers=numbers)


def check_flags(model: NeuronModel, d: FitDefaults,
                config: FitConfig) -> tuple[list[str], dict[str, float]]:
    """Every check of the settings that does not need the data (UserError); returns the free
    parameters and the fixed ones' values."""
    free, fixed = _free_and_fixed(model, d, config)
    _make_box(model, free, d, config)
    _check_data_flags(config)
    return free, fixed


def cell_problem(model: NeuronModel, d: FitDefaults, config: FitConfig, current: np.ndarray,
                 voltage: np.ndarray, dt: float, source: str,
                 held_out: HeldOut | None = None,
                 numbers: tuple[int, ...] | None = None) -> Problem:
    """The problem of one recorded cell (current [N, T] nA, voltage [N, T] mV, dt ms); a
    UserError says why the cell cannot be fitted (too short, NaN, implausible units, a tiny
    stimulus or a flat response, no spikes for a spike target)."""
    free, fixed = _free_and_fixed(model, d, config)
    box = _make_box(model, free, d, config)
    if current.shape[1] < 2:
        raise UserError(f"{source}: the sweeps hold {current.shape[1]} sample(s); at least 2 "
                        "are needed")
    for what, x in (("stimulus", current), ("response", voltage)):
        if not np.all(np.isfinite(x)):
            r, c = np.argwhere(~np.isfinite(x))[0]
            raise UserError(f"{source}: {what} of selected sweep {r + 1}, sample {c + 1} is "
                            f"{x[r, c]} (NaN or infinite)")
    check_current(source, current, None)
    check_voltage(source, voltage)
    check_recorded_cell(source, current, voltage)
    return _finish(model, d, config, (current, voltage, None, dt), free, fixed, box, None,
                   source, held_out, numbers)


def traces_of(problem: Problem, params: Mapping[str, float]) -> tuple[np.ndarray, list]:
    """Voltage [N, T] and spike times of one parameter set on the problem's inputs (`params`
    of the free parameters, or some of them: the fixed ones fill in the rest)."""
    v, s = simulate_cell(problem.model, {**problem.fixed, **params}, problem.current,
                        problem.dt)
    return v, problem.model.spikes_of(v, s, problem.dt)


@functools.cache
def _compiled(simulate: Callable) -> Callable:
    """A model's simulation compiled (dt static), one per model, so that compiling it ahead
    (compile_simulations) serves the later calls."""
    return jax.jit(simulate, static_argnums=2)


def simulate_cell(model: NeuronModel, params: Mapping[str, float], current: np.ndarray,
                  dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Voltage and spike signal [N, T] of one full parameter set (one cell, where
    `model.simulate` runs a population), in float64, as one compiled call (faster than op by
    op)."""
    with jax.enable_x64(True):
        p = {k: np.full((1,), params[k]) for k in model.param_names}
        v, s = _compiled(model.simulate)(p, current, dt)
        return np.asarray(v)[0], np.asarray(s)[0]  # indexing on the device compiles a call


def compile_simulations(problem: Problem) -> None:
    """Compile the one-cell simulations that score a fit of `problem` (its fitted sweeps and
    its held-out ones), without running them."""
    with jax.enable_x64(True):
        p = {k: np.zeros(1) for k in problem.model.param_names}
        held_out = [] if problem.test is None else [problem.test.current]
        for current in [problem.current, *held_out]:
            _compiled(problem.model.simulate).lower(p, current, problem.dt).compile()
