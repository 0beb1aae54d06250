"""The Brian2 peer of the HH fitting benchmark: nevergrad DE driving Brian2 simulations.

Runs in its own virtual environment (Brian2 wants numpy < 2), so it imports nothing from this
repository; `python -m benchmarks.hh_peers` starts it. Set up once:

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

# Traub-Miles kinetics as in Brian2's HH examples; the same ODE as models/hh.py.
EQUATIONS = """
dv/dt = (gl*(EL - v) - g_na*(m*m*m)*h*(v - ENa) - g_kd*(n*n*n*n)*(v - EK) + I)/C : volt
dm/dt = 0.32*(mV**-1)*4*mV/exprel((13.*mV - v + VT)/(4*mV))/ms*(1 - m) - 0.28*(mV**-1)*5*mV/exprel((v - VT - 40.*mV)/(5*mV))/ms*m : 1
dn/dt = 0.032*(mV**-1)*5*mV/exprel((15.*mV - v + VT)/(5.*mV))/ms*(1. - n) - .5*exp((10.*mV - v + VT)/(40.*mV))/ms*n : 1
dh/dt = 0.128*exp((17.*mV - v + VT)/(18.*mV))/ms*(1. - h) - 4./(1 + exp((40.*mV - v + VT)/(5.*mV)))/ms*h : 1
gl : siemens (constant)
g_na : siemens (constant)
g_kd : siemens (constant)
I : amp
trace : integer (constant)
"""
FREE = ("gl", "g_na", "g_kd")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--current", required=True, help="CSV, one trace per row, nA")
    p.add_argument("--voltage", required=True, help="CSV, one trace per row, mV")
    p.add_argument("--dt", type=float, required=True, help="sample spacing, ms")
    p.add_argument("--fixed", required=True,
                   help="JSON of the fixed parameters: vth, C, EL, EK, ENa (mV, nF)")
    p.add_argument("--bounds", required=True, help="JSON {name: [lo, hi]} of gl, g_na, g_kd (uS)")
    p.add_argument("--popsize", type=int, default=100, help="candidates per round")
    p.add_argument("--rounds", type=int, default=20, help="rounds at most")
    p.add_argument("--target_mse", type=float, default=0.0, help="stop once reached (mV^2)")
    p.add_argument("--method", default="rk4", help="Brian2 integration method")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--evaluate", default=None,
                   help="JSON {gl, g_na, g_kd}: only simulate these values and report the MSE")
    return p.parse_args(argv)


def to_params(z: np.ndarray, bounds: dict) -> dict:
    """Unit cube -> parameter values, log-scaled (all three bounds span > 50x)."""
    out = {}
    for k, name in enumerate(FREE):
        lo, hi = np.log(bounds[name][0]), np.log(bounds[name][1])
        out[name] = np.exp(lo + z[:, k] * (hi - lo))
    return out


def build(current: np.ndarray, dt: float, fixed: dict, popsize: int, method: str):
    """One network: popsize x traces neurons, each reading its trace's current every step."""
    n_traces, n_steps = current.shape
    b2.defaultclock.dt = dt * b2.ms
    namespace = {"VT": fixed["vth"] * b2.mV, "C": fixed["C"] * b2.nF, "EL": fixed["EL"] * b2.mV,
                 "EK": fixed["EK"] * b2.mV, "ENa": fixed["ENa"] * b2.mV,
                 "I_rec": b2.TimedArray(current.T * b2.nA, dt=dt * b2.ms)}
    group = b2.NeuronGroup(popsize * n_traces, EQUATIONS, method=method, namespace=namespace)
    group.trace = np.tile(np.arange(n_traces), popsize)
    group.v = -65 * b2.mV
    group.m = group.h = group.n = 0
    group.run_regularly("I = I_rec(t, trace)", when="start", order=-1)
    monitor = b2.StateMonitor(group, "v", record=True)
    net = b2.Network(group, monitor)
    net.store()
    return net, group, monitor, n_steps * dt * b2.ms


def main(argv=None) -> dict:
    args = parse(argv)
    b2.prefs.codegen.target = "cython"
    b2.prefs.logging.console_log_level = "ERROR"
    current = np.loadtxt(args.current, delimiter=",", ndmin=2)
    voltage = np.loadtxt(args.voltage, delimiter=",", ndmin=2)
    fixed, bounds = json.loads(args.fixed), json.loads(args.bounds)
    net, group, monitor, duration = build(current, args.dt, fixed, args.popsize, args.method)
    n_traces, n_steps = voltage.shape
    if args.evaluate is not None:
        values = json.loads(args.evaluate)
        for name in FREE:
            setattr(group, name, values[name] * b2.uS)
        net.run(duration)
        v = np.asarray(monitor.v / b2.mV)[:, :n_steps]
        out = {"best_mse": float(np.mean((v - voltage) ** 2)), "params": values,
               "wall_s": time.perf_counter() - T_START, "method": args.method}
        print(json.dumps(out))
        return out
    opt = ng.optimizers.DE(parametrization=ng.p.Array(shape=(3,), lower=0.0, upper=1.0),
                           budget=args.popsize * args.rounds, num_workers=args.popsize)
    opt.parametrization.random_state = np.random.RandomState(args.seed)
    history, rounds_s, best, n_evals = [], [], (np.inf, None), 0
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        cands = [opt.ask() for _ in range(args.popsize)]
        z = np.array([c.value for c in cands])
        values = to_params(z, bounds)
        net.restore()
        for name in FREE:
            setattr(group, name, np.repeat(values[name], n_traces) * b2.uS)
        net.run(duration)
        v = np.asarray(monitor.v / b2.mV).reshape(args.popsize, n_traces, -1)[..., :n_steps]
        mse = np.mean((v - voltage[None]) ** 2, axis=(1, 2))
        mse = np.where(np.isfinite(mse), mse, 1e12)
        for c, f in zip(cands, mse):
            opt.tell(c, float(f))
        n_evals += args.popsize
        k = int(np.argmin(mse))
        if mse[k] < best[0]:
            best = (float(mse[k]), {name: float(values[name][k]) for name in FREE})
        rounds_s.append(time.perf_counter() - t0)
        history.append([time.perf_counter() - T_START, n_evals, best[0]])
        if best[0] <= args.target_mse:
            break
    out = {"history": history, "best_mse": best[0], "params": best[1], "n_evals": n_evals,
           "first_round_s": rounds_s[0], "later_round_s": float(np.median(rounds_s[1:]))
           if len(rounds_s) > 1 else None, "wall_s": time.perf_counter() - T_START,
           "method": args.method, "brian2": b2.__version__}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
