"""The neuron-fitting pipeline shared by the GIF and HH scripts: flags, problem set-up,
objectives, running the optimizers, the results table, metrics.json and figures."""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from models.spec import NeuronModel
from utils.run import UserError, positive_float, positive_int

__all__ = ["FitDefaults", "Box", "Problem", "build_parser", "parse_assignments", "parse_bounds",
           "parse_methods", "make_problem", "make_objectives", "fit_all", "run_fitting"]


@dataclass(frozen=True)
class FitDefaults:
    """What a fitting script sets: its model, default problem and budgets."""

    script: str
    title: str                                      # e.g. "Hodgkin-Huxley neuron"
    make_model: Callable[[argparse.Namespace], NeuronModel]
    fit: tuple[str, ...]
    bounds: Mapping[str, tuple[float, float]]      # default bounds of every parameter
    truth: Mapping[str, float]                      # full parameter set of the synthetic target
    dt: float
    protocol: Callable[[float], np.ndarray]         # dt -> current [N, T] in nA
    n_starts: int
    add_args: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    spike_tau: float = 10.0
    presearch_dt: float | None = None  # grid (ms) of the first presearch stage; None: dt


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

    @property
    def duration(self) -> float:
        return self.current.shape[1] * self.dt


# --------------------------------------------------------------------------- flags

def parse_methods(text: str) -> list[str]:
    """argparse type: comma list of known methods."""
    from utils.optim import METHODS

    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown method {', '.join(unknown) or '(none)'}; choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(names))


def parse_assignments(text: str, flag: str = "--fix") -> dict[str, float]:
    """'a=1,b=2' -> {'a': 1.0, 'b': 2.0}."""
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not math.isfinite(out.get(name.strip(), math.nan)):
            raise UserError(f"{flag}: expected NAME=VALUE with a finite number, got {item!r}")
    return out


def parse_bounds(text: str) -> dict[str, tuple[float, float]]:
    """'a=0:1,b=-2:3' -> {'a': (0, 1), 'b': (-2, 3)}, refusing LO >= HI."""
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, rng = item.partition("=")
        lo, colon, hi = rng.rpartition(":") if rng.count(":") == 1 else ("", "", "")
        try:
            lo_v, hi_v = float(lo), float(hi)
        except ValueError:
            raise UserError(f"--bounds: expected NAME=LO:HI, got {item!r}") from None
        if not colon or not (math.isfinite(lo_v) and math.isfinite(hi_v)):
            raise UserError(f"--bounds: expected NAME=LO:HI with finite numbers, got {item!r}")
        if lo_v >= hi_v:
            raise UserError(f"--bounds: {name.strip()}: LO ({lo_v:g}) must be below HI ({hi_v:g})")
        out[name.strip()] = (lo_v, hi_v)
    return out


def build_parser(d: FitDefaults) -> argparse.ArgumentParser:
    """Every flag of a fitting script."""
    from utils.optim import DEFAULT_METHODS, METHODS

    p = argparse.ArgumentParser(
        prog=f"{d.script}.py",
        description=f"Fit a {d.title} to membrane potentials or spike trains, by gradient and gradient-free "
                    "methods.")
    p.add_argument("--target", choices=["potential", "spike"], default="potential",
                   help="fit membrane potentials (voltage MSE) or spike trains (van Rossum loss, "
                        "scored by the gamma factor)")
    p.add_argument("--methods", type=parse_methods, default=list(DEFAULT_METHODS),
                   help=f"comma list of methods among {','.join(METHODS)} (gradient: "
                        "multi-start L-BFGS-B; lm: multi-start Levenberg-Marquardt on JAX "
                        f"Jacobians) (default: {','.join(DEFAULT_METHODS)})")
    p.add_argument("--n_starts", type=positive_int, default=d.n_starts,
                   help="random starts of the gradient-based methods (gradient, lm)")
    p.add_argument("--maxiter", type=positive_int, default=200,
                   help="iterations per start of the gradient-based methods")
    p.add_argument("--presearch", choices=["on", "off"], default="on",
                   help="gradient-based methods in two stages where the model supports it "
                        "(GIF): fit with resets forced at the target's spike times, then "
                        "refine on the real loss from the best results; off: the real loss only")
    p.add_argument("--presearch_dt", type=positive_float, default=d.presearch_dt,
                   help="time step (ms) of a first, cheaper presearch stage on a coarser grid "
                        "(rounded to a whole number of --dt steps), whose best results the "
                        f"presearch on --dt then polishes (default: {d.presearch_dt or '--dt'}; "
                        "set it to --dt to skip that stage)")
    p.add_argument("--n_refine", type=positive_int, default=4,
                   help="presearch optima refined on the real loss (with --presearch on)")
    p.add_argument("--budget", type=positive_int, default=100,
                   help="simulations allowed to each gradient-free method")
    p.add_argument("--popsize", type=positive_int, default=20,
                   help="candidates per round (one batched simulation) of gradient-free methods")
    p.add_argument("--fit", default=",".join(d.fit),
                   help=f"comma list of parameters to fit (default {','.join(d.fit)})")
    p.add_argument("--fix", default="",
                   help="NAME=VALUE[,NAME=VALUE...]: set fixed parameters (units as in README)")
    p.add_argument("--bounds", default="",
                   help="NAME=LO:HI[,...]: search bounds of fitted parameters")
    p.add_argument("--data_current", help="CSV of input currents, one trace per row")
    p.add_argument("--data_voltage", help="CSV of recorded membrane potentials (mV), same shape")
    p.add_argument("--data_spikes", help="CSV of spike times (ms), one row per trace")
    p.add_argument("--current_unit", choices=["nA", "pA", "A"], default="nA",
                   help="unit of the values in --data_current")
    p.add_argument("--dt", type=positive_float, default=None,
                   help=f"sampling interval in ms (default {d.dt} for the synthetic problem; "
                        "required with --data_current)")
    p.add_argument("--noise_mV", type=float, default=0.0,
                   help="std of Gaussian noise added to the synthetic voltage target (mV)")
    p.add_argument("--spike_tau", type=positive_float, default=d.spike_tau,
                   help="time constant (ms) of the van Rossum spike loss")
    p.add_argument("--gamma_window", type=positive_float, default=2.0,
                   help="coincidence window (ms) of the gamma factor")
    p.add_argument("--repeats", type=positive_int, default=1,
                   help="run each method N times with different seeds; report mean and std")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--out_dir", default=None,
                   help=f"output folder (default results/{d.script}/<timestamp>/)")
    p.add_argument("--show", action="store_true", help="open the figures as well as saving them")
    d.add_args(p)
    return p


# --------------------------------------------------------------------------- problem

def _free_and_fixed(model: NeuronModel, d: FitDefaults, args) -> tuple[list[str], dict]:
    names = model.param_names
    free = [s.strip() for s in args.fit.split(",") if s.strip()]
    fix = parse_assignments(args.fix)
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
    base = dict(model.defaults) if args.data_current else dict(d.truth)
    fixed = {n: float(fix.get(n, base[n])) for n in names if n not in free}
    return free, fixed


def _make_box(free: list[str], d: FitDefaults, args) -> Box:
    bounds = dict(d.bounds)
    given = parse_bounds(args.bounds)
    stray = [n for n in given if n not in free]
    if stray:
        raise UserError(f"--bounds: {', '.join(stray)} is not fitted (add it to --fit)")
    bounds.update(given)
    return Box(np.array([bounds[n][0] for n in free], float),
               np.array([bounds[n][1] for n in free], float))


def _synthetic_target(model, d, args, fixed, free,
                      dt) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], dict]:
    """Current, voltage (with --noise_mV added), the true model's spike times (from its own
    spike signal, so none is missed: a GIF rebound spike resets V by only a few mV) and the
    true values of the free parameters."""
    import jax
    import jax.numpy as jnp

    current = d.protocol(dt)
    truth = {**d.truth, **fixed}
    with jax.enable_x64(True):
        params = {k: jnp.full((1,), truth[k]) for k in model.param_names}
        v, signal = (np.asarray(x[0]) for x in model.simulate(params, jnp.asarray(current), dt))
    spikes = model.spikes_of(v, signal, dt)
    if args.noise_mV > 0:
        v = v + np.random.default_rng(args.seed + 7919).normal(0, args.noise_mV, v.shape)
    return current, v, spikes, {n: truth[n] for n in free}


def make_problem(model: NeuronModel, d: FitDefaults, args) -> Problem:
    """Validate the flags and data, and build the problem (synthetic or from recordings)."""
    from utils.data import load_recordings

    free, fixed = _free_and_fixed(model, d, args)
    box = _make_box(free, d, args)
    if args.noise_mV < 0 or not math.isfinite(args.noise_mV):
        raise UserError(f"--noise_mV must be >= 0, got {args.noise_mV}")
    if not args.data_current and (args.data_voltage or args.data_spikes):
        raise UserError("--data_voltage/--data_spikes need --data_current (the input currents)")
    if args.data_current:
        if args.dt is None:
            raise UserError("--dt (ms) is required with --data_current")
        if not args.data_voltage and not args.data_spikes:
            raise UserError("--data_current needs --data_voltage or --data_spikes as the target")
        if args.target == "potential" and not args.data_voltage:
            raise UserError("--target potential needs --data_voltage")
        current, v_target, spikes = load_recordings(args.data_current, args.data_voltage,
                                                    args.data_spikes, args.current_unit)
        truth, source, dt = None, "recordings", args.dt
    else:
        dt = args.dt or d.dt
        current, v_target, spikes, truth = _synthetic_target(model, d, args, fixed, free, dt)
        source = "synthetic"
    if spikes is None and v_target is not None:
        spikes = model.spikes_of(v_target, None, dt)
    if args.target == "spike" and not any(len(s) for s in spikes):
        raise UserError("the spike target holds no spikes: nothing to fit")
    return Problem(model, current, dt, args.target, v_target, spikes, free, fixed, box, truth,
                   args.spike_tau, args.gamma_window, source,
                   presearch=args.presearch == "on", presearch_dt=args.presearch_dt)


# --------------------------------------------------------------------------- objectives

def forced_spike_steps(spikes: Sequence[np.ndarray], n_steps: int, dt: float) -> np.ndarray:
    """[N, T] bool: True for the step (sample k to k + 1) in which each spike happened."""
    out = np.zeros((len(spikes), n_steps), dtype=bool)
    for row, ts in zip(out, spikes):
        k = np.ceil(np.asarray(ts, dtype=float) / dt - 1e-9).astype(int) - 1
        row[k[(k >= 0) & (k < n_steps)]] = True
    return out


def threshold_residuals(x_start, x_end, forced, n_spikes: int):
    """Residuals [P, 3 N T] of the penalty for a threshold that is not crossed within each
    recorded spike's step, or that is crossed elsewhere; their sum of squares is in mV^2 per
    recorded spike (zero for the true parameters)."""
    import jax
    import jax.numpy as jnp

    zero = jnp.zeros_like(x_end)
    parts = (jnp.where(forced, jax.nn.relu(-x_end), zero),
             jnp.where(forced, jax.nn.relu(x_start), zero),
             jnp.where(forced, zero, jax.nn.relu(x_end)))
    return jnp.concatenate([_flat(p) for p in parts], axis=-1) / np.sqrt(max(1, n_spikes))


def _flat(x):
    """[P, ...] -> [P, M]."""
    return x.reshape(x.shape[0], -1)


def make_objectives(problem: Problem):
    """The problem's objectives over unit coordinates Z [B, D] (an `Objectives`): loss,
    loss+gradient and Gauss-Newton terms, and for models that support it the same for the
    spike-forced presearch, on dt and (where `presearch_dt` is coarser) on that grid. NumPy
    in and out, each one compiled call, run in float64.

    Every loss is a sum of squared residuals: the voltage MSE, the van Rossum distance, and
    the presearch's voltage MSE plus threshold penalty. The presearch forces resets at the
    target's spike times, so the voltage error no longer jumps when a spike moves by a step;
    `threshold_residuals` is what constrains the threshold parameters. It is smooth where the
    real objective is rugged (see README)."""
    import jax
    import jax.numpy as jnp

    from utils.metrics import alpha_filter, spike_counts_on_grid
    from utils.optim import Objectives

    with jax.enable_x64(True):
        current = jnp.asarray(problem.current)
        n_traces, n_steps = current.shape
        v_target = jnp.asarray(problem.v_target) if problem.v_target is not None else None
        if problem.target == "spike":
            grid = spike_counts_on_grid(problem.spikes_target, n_steps, problem.dt)
            filtered = alpha_filter(jnp.asarray(grid), problem.dt, problem.spike_tau)
        coarse = max(1, int(round((problem.presearch_dt or problem.dt) / problem.dt)))

    def params_of(z):
        x = problem.box.to_params(z, jnp)
        params = {n: x[:, k] for k, n in enumerate(problem.free)}
        params.update({n: jnp.full(z.shape[:1], v) for n, v in problem.fixed.items()})
        return params

    def residuals(z):
        v, s = problem.model.simulate(params_of(z), current, problem.dt)
        if problem.target == "potential":  # sum of squares = voltage MSE over every sample
            return _flat(v - v_target) / np.sqrt(n_traces * n_steps)
        # sum of squares = squared van Rossum distance (utils.metrics.van_rossum_loss)
        diff = alpha_filter(s, problem.dt, problem.spike_tau) - filtered
        return _flat(diff) * np.sqrt(problem.dt / (problem.spike_tau * n_traces))

    def forced_residuals_on(factor: int):
        """Presearch residuals on a grid `factor` times coarser than dt: block means of the
        current (exact for step protocols aligned with it), the target sampled on it."""
        with jax.enable_x64(True):
            n_c, dt_c = n_steps // factor, problem.dt * factor
            current_c = current[:, :n_c * factor].reshape(-1, n_c, factor).mean(-1)
            v_target_c = v_target[:, ::factor][:, :n_c] if v_target is not None else None
            forced_np = forced_spike_steps(problem.spikes_target or [], n_c, dt_c)
            forced, n_spikes = jnp.asarray(forced_np), int(forced_np.sum())

        def forced_residuals(z):
            v, x_start, x_end = problem.model.simulate_forced(params_of(z), current_c, dt_c,
                                                              forced)
            r = threshold_residuals(x_start, x_end, forced, n_spikes)
            if problem.target == "potential":
                r = jnp.concatenate([r, _flat(v - v_target_c) / np.sqrt(v_target_c.size)],
                                    axis=-1)
            return r
        return forced_residuals

    def numpy_in_out(fn):
        jitted = jax.jit(fn)

        def call(z: np.ndarray):
            with jax.enable_x64(True):
                out = jitted(jnp.asarray(z))
                return tuple(np.asarray(o) for o in out) if isinstance(out, tuple) \
                    else np.asarray(out)
        return call

    def real_loss(z):
        return jnp.sum(residuals(z) ** 2, axis=-1)

    def value_and_grad(res_fn, score=None):
        def summed(z):
            per = jnp.sum(res_fn(z) ** 2, axis=-1)
            return jnp.sum(per), per

        def fn(z):
            g, per = jax.grad(summed, has_aux=True)(z)
            return (per, g) if score is None else (per, g, score(z))
        return numpy_in_out(fn)

    def gauss_newton(res_fn, score=None):
        def fn(z):  # J [D, B, M] by one forward-mode pass over D copies of the batch
            # (rows are independent; measured here, this compiles and runs 20-35% faster than
            # a vmap of jvp over the D tangents)
            n_b, n_d = z.shape
            tangents = jnp.repeat(jnp.eye(n_d), n_b, axis=0)  # copy d of the batch: e_d
            r_all, jac = jax.jvp(res_fn, (jnp.tile(z, (n_d, 1)),), (tangents,))
            r, jac = r_all[:n_b], jac.reshape(n_d, n_b, -1)
            out = (jnp.sum(r ** 2, axis=-1), 2.0 * jnp.einsum("dbm,bm->bd", jac, r),
                   2.0 * jnp.einsum("dbm,ebm->bde", jac, jac))
            return out if score is None else (*out, score(z))
        return numpy_in_out(fn)

    use_presearch = (problem.model.simulate_forced is not None and problem.presearch
                     and any(len(s) for s in problem.spikes_target or []))
    real = dict(loss=numpy_in_out(real_loss), value_and_grad=value_and_grad(residuals),
                gauss_newton=gauss_newton(residuals))
    if not use_presearch:
        return Objectives(**real)
    # each presearch also scores its points on the real loss, which is what is recorded
    fine = forced_residuals_on(1)
    coarse_res = forced_residuals_on(coarse) if coarse > 1 else None
    return Objectives(
        **real,
        presearch=value_and_grad(fine, real_loss), presearch_gn=gauss_newton(fine, real_loss),
        coarse=value_and_grad(coarse_res, real_loss) if coarse_res else None,
        coarse_gn=gauss_newton(coarse_res, real_loss) if coarse_res else None)


def simulate_params(problem: Problem, params: Mapping[str, float]) -> tuple[np.ndarray, list]:
    """Voltage [N, T] and spike times of one parameter set (free and fixed)."""
    import jax
    import jax.numpy as jnp

    full = {**problem.fixed, **params}
    with jax.enable_x64(True):
        p = {k: jnp.full((1,), full[k]) for k in problem.model.param_names}
        v, s = problem.model.simulate(p, jnp.asarray(problem.current), problem.dt)
        v, s = np.asarray(v[0]), np.asarray(s[0])
    return v, problem.model.spikes_of(v, s, problem.dt)


# --------------------------------------------------------------------------- running

def _score(problem: Problem, res) -> dict:
    from utils.metrics import mean_gamma

    x = problem.box.to_params(res.z)
    params = {n: float(v) for n, v in zip(problem.free, x)}
    v, spikes = simulate_params(problem, params)
    rmse = (float(np.sqrt(np.mean((v - problem.v_target) ** 2)))
            if problem.v_target is not None else None)
    gamma = mean_gamma(spikes, problem.spikes_target, problem.gamma_window, problem.duration)
    rel = ({n: abs(params[n] - t) / abs(t) if t != 0 else abs(params[n])
            for n, t in problem.truth.items()} if problem.truth else None)
    return {"params": params, "loss": res.loss, "wall_s": res.wall_s, "n_evals": res.n_evals,
            "rmse_mV": rmse, "gamma": gamma, "rel_err": rel}


def fit_all(problem: Problem, methods: Sequence[str], *, n_starts: int, budget: int,
            popsize: int, maxiter: int, seed: int, repeats: int = 1, n_refine: int = 4,
            show_progress: bool = True) -> tuple[dict, dict]:
    """Run every method `repeats` times; returns (metrics per method, best-loss histories)."""
    from tqdm import tqdm

    from utils.optim import GRADIENT_BASED, run_method

    out, histories = {}, {}
    for method in methods:
        objectives = make_objectives(problem)  # fresh: each method pays its own compilation
        runs = []
        for r in range(repeats):
            total = None if method in GRADIENT_BASED else budget
            desc = f"{method}" + (f" {r + 1}/{repeats}" if repeats > 1 else "")
            with tqdm(total=total, desc=desc, unit="sim", disable=not show_progress,
                      leave=False, mininterval=0.5) as bar:
                def progress(n, best, bar=bar):
                    bar.update(n)
                    bar.set_postfix(best=f"{best:.4g}")
                res = run_method(method, objectives, len(problem.free),
                                 n_starts=n_starts, budget=budget, popsize=popsize,
                                 maxiter=maxiter, seed=seed + 1000 * r, progress=progress,
                                 n_refine=n_refine)
            runs.append(res)
        best = min(runs, key=lambda res: res.loss)
        entry = _score(problem, best)
        if repeats > 1:
            losses = np.array([res.loss for res in runs])
            walls = np.array([res.wall_s for res in runs])
            entry["repeats"] = {"n": repeats, "loss_mean": losses.mean(), "loss_std": losses.std(),
                                "wall_s_mean": walls.mean(), "wall_s_std": walls.std(),
                                "losses": losses, "wall_s": walls}
        out[method] = entry
        histories[method] = best.history
    return out, histories


def format_table(problem: Problem, results: Mapping[str, dict]) -> str:
    """The printed results table: one row per method."""
    units = problem.model.units
    head = (f"{'method':<12}{'loss':>12}{'RMSE mV':>10}{'gamma':>8}{'wall s':>9}{'sims':>8}  "
            + "  ".join(f"{n} ({units[n]})" for n in problem.free))
    lines = [head, "-" * len(head)]
    if problem.truth:
        lines.append(f"{'truth':<12}{'':>47}  " + "  ".join(
            f"{problem.truth[n]:.6g}".rjust(len(f'{n} ({units[n]})')) for n in problem.free))
    for m, r in results.items():
        rmse = f"{r['rmse_mV']:.3f}" if r["rmse_mV"] is not None else "-"
        gam = f"{r['gamma']:.3f}" if r["gamma"] is not None else "-"
        lines.append(f"{m:<12}{r['loss']:>12.5g}{rmse:>10}{gam:>8}{r['wall_s']:>9.2f}"
                     f"{r['n_evals']:>8d}  " + "  ".join(
                         f"{r['params'][n]:.6g}".rjust(len(f'{n} ({units[n]})'))
                         for n in problem.free))
        if "repeats" in r:
            rp = r["repeats"]
            lines.append(f"{'':<12}loss {rp['loss_mean']:.4g} +/- {rp['loss_std']:.2g}, wall "
                         f"{rp['wall_s_mean']:.2f} +/- {rp['wall_s_std']:.2f} s "
                         f"over {rp['n']} repeats")
    return "\n".join(lines)


def run_fitting(d: FitDefaults, argv: Sequence[str] | None = None) -> dict:
    """Parse flags, fit, print the table, write config.json, metrics.json and figures."""
    from utils.fitting_plots import plot_all
    from utils.run import make_out_dir, write_config, write_metrics

    args = build_parser(d).parse_args(argv)
    model = d.make_model(args)
    problem = make_problem(model, d, args)
    out_dir = make_out_dir(d.script, args.out_dir)
    write_config(out_dir, args)
    results, histories = fit_all(problem, args.methods, n_starts=args.n_starts,
                                 budget=args.budget, popsize=args.popsize, maxiter=args.maxiter,
                                 seed=args.seed, repeats=args.repeats, n_refine=args.n_refine)
    metrics = {"model": model.name, "target": problem.target, "dt_ms": problem.dt,
               "source": problem.source, "free_params": problem.free,
               "fixed_params": problem.fixed, "units": dict(model.units),
               "truth": problem.truth, "methods": results}
    write_metrics(out_dir, metrics)
    plot_all(problem, results, histories, out_dir, show=args.show)
    print(format_table(problem, results))
    print(f"results in {out_dir}")
    return metrics
