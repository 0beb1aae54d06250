"""The Brian2 peer of the fitting benchmarks: nevergrad DE driving Brian2 simulations of the
HH (`--model hh`) or GIF (`--model gif`) neuron.

Runs in its own virtual environment (Brian2 wants numpy < 2), so it imports nothing from this
repository but benchmarks/kit/brian2_model.py (Brian2 and numpy only); `python -m
benchmarks.hh_peers`, `hh_dimensions`, `gif_dimensions` and `population_fit` start it.
Set up once:

    python3 -m venv .venv-brian2 && .venv-brian2/bin/pip install -r benchmarks/requirements-brian2.txt

brian2modelfitting's method: each round asks nevergrad's DE for `--popsize` candidates,
simulates all of them on every recorded trace as one Brian2 network (candidates x traces
neurons, Cython code generation, RK4 at the recording's dt), and tells it their voltage MSE.
Parameters are searched in the same unit cube, log-scaled, as this project's optimizers.
Prints one JSON object: the best-so-far history [[seconds since start, simulations, best
MSE], ...], the best parameters, and the timings of the first (compiling) and later rounds.
"""
from __future__ import annotations

import argparse
import json
import time

T_START = time.perf_counter()

import brian2 as b2  # noqa: E402  (timed: importing Brian2 is part of a run)
import nevergrad as ng  # noqa: E402
import numpy as np  # noqa: E402

from kit.brian2_model import MODELS, build, set_initial, set_params  # noqa: E402


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default="hh")
    p.add_argument("--current", required=True, help="CSV, one trace per row, nA")
    p.add_argument("--voltage", required=True, help="CSV, one trace per row, mV")
    p.add_argument("--dt", type=float, required=True, help="sample spacing, ms")
    p.add_argument("--fixed", required=True,
                   help="JSON {name: value} of the fixed parameters (this project's units)")
    p.add_argument("--bounds", required=True,
                   help="JSON {name: [lo, hi]} of the free parameters (this project's units)")
    p.add_argument("--popsize", type=int, default=100, help="candidates per round")
    p.add_argument("--rounds", type=int, default=20, help="rounds at most (at least 1)")
    p.add_argument("--target_mse", type=float, default=0.0, help="stop once reached (mV^2)")
    p.add_argument("--method", default="rk4", help="Brian2 integration method")
    p.add_argument("--substeps", type=int, default=1,
                   help="Brian2 steps per recorded sample (its dt is --dt / substeps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--evaluate", default=None,
                   help="JSON {name: value} of the free parameters: only simulate these values "
                        "and report the MSE")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.popsize < 1 or args.substeps < 1:
        p.error("--rounds, --popsize and --substeps must be at least 1")
    return args


def to_params(z: np.ndarray, bounds: dict) -> dict:
    """Unit cube -> parameter values, log-scaled where the bounds are positive and span more
    than 50x (the rule of this project's optimizers), linear otherwise."""
    out = {}
    for k, (name, (lo, hi)) in enumerate(bounds.items()):
        if lo > 0 and hi / lo > 50:
            out[name] = np.exp(np.log(lo) + z[:, k] * (np.log(hi) - np.log(lo)))
        else:
            out[name] = lo + z[:, k] * (hi - lo)
    return out


def main(argv=None) -> dict:
    args = parse(argv)
    if args.evaluate is not None:
        args.popsize = 1  # one parameter set
    b2.prefs.codegen.target = "cython"
    b2.prefs.logging.console_log_level = "ERROR"
    current = np.loadtxt(args.current, delimiter=",", ndmin=2)
    voltage = np.loadtxt(args.voltage, delimiter=",", ndmin=2)
    fixed, bounds = json.loads(args.fixed), json.loads(args.bounds)
    net, group, monitor, duration = build(args.model, current, args.dt, fixed, args.popsize,
                                          args.method, args.substeps)
    n_traces, n_steps = voltage.shape
    if args.evaluate is not None:
        values = json.loads(args.evaluate)
        set_params(group, args.model, values, n_traces)
        set_initial(group, args.model)
        net.run(duration)
        v = np.asarray(monitor.v / b2.mV)[:, :n_steps]
        out = {"best_mse": float(np.mean((v - voltage) ** 2)), "params": values,
               "wall_s": time.perf_counter() - T_START, "method": args.method,
               "substeps": args.substeps}
        print(json.dumps(out))
        return out
    dim = len(bounds)
    opt = ng.optimizers.DE(parametrization=ng.p.Array(shape=(dim,), lower=0.0, upper=1.0),
                           budget=args.popsize * args.rounds, num_workers=args.popsize)
    opt.parametrization.random_state = np.random.RandomState(args.seed)
    history, best_params, rounds_s, best, n_evals = [], [], [], (np.inf, None), 0
    failed_rounds = 0
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        cands = [opt.ask() for _ in range(args.popsize)]
        z = np.array([c.value for c in cands])
        values = to_params(z, bounds)
        net.restore()
        set_params(group, args.model, values, n_traces)
        set_initial(group, args.model)
        try:
            net.run(duration)
            v = np.asarray(monitor.v / b2.mV).reshape(args.popsize, n_traces, -1)[..., :n_steps]
            mse = np.mean((v - voltage[None]) ** 2, axis=(1, 2))
            # a state variable gone NaN fails the candidate even where v stayed finite (the
            # exact GIF update divides by b, b - k1, b tau - 1, ...: theta is NaN at b = 0)
            broken = ~np.all([np.isfinite(np.asarray(getattr(group, name)))
                              .reshape(args.popsize, n_traces).all(axis=1)
                              for name in MODELS[args.model][4]], axis=0)
            mse = np.where(np.isfinite(mse) & ~broken, mse, 1e12)
        except b2.core.base.BrianObjectException:
            # RK4 diverges for some candidates (e.g. a small C at this dt) and the generated
            # code then divides by zero, which ends the whole round: score it as failed
            failed_rounds += 1
            mse = np.full(args.popsize, 1e12)
        for c, f in zip(cands, mse):
            opt.tell(c, float(f))
        n_evals += args.popsize
        k = int(np.argmin(mse))
        if mse[k] < best[0]:
            best = (float(mse[k]), {name: float(values[name][k]) for name in values})
        rounds_s.append(time.perf_counter() - t0)
        history.append([time.perf_counter() - T_START, n_evals, best[0]])
        best_params.append(best[1])
        if best[0] <= args.target_mse:
            break
    out = {"history": history, "best_params": best_params, "best_mse": best[0],
           "params": best[1], "n_evals": n_evals, "failed_rounds": failed_rounds,
           "first_round_s": rounds_s[0], "later_round_s": float(np.median(rounds_s[1:]))
           if len(rounds_s) > 1 else None, "wall_s": time.perf_counter() - T_START,
           "method": args.method, "substeps": args.substeps, "brian2": b2.__version__}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
