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
VT : volt (constant)
C : farad (constant)
EL : volt (constant)
EK : volt (constant)
ENa : volt (constant)
I : amp
trace : integer (constant)
"""
# parameter name -> (our name, Brian2 unit); ours in uS, nF, mV
PARAMS = {"gl": ("gl", b2.uS), "g_na": ("g_na", b2.uS), "g_kd": ("g_kd", b2.uS),
          "vth": ("VT", b2.mV), "C": ("C", b2.nF), "EL": ("EL", b2.mV), "EK": ("EK", b2.mV),
          "ENa": ("ENa", b2.mV)}


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--current", required=True, help="CSV, one trace per row, nA")
    p.add_argument("--voltage", required=True, help="CSV, one trace per row, mV")
    p.add_argument("--dt", type=float, required=True, help="sample spacing, ms")
    p.add_argument("--fixed", required=True,
                   help="JSON {name: value} of the fixed parameters (uS, nF, mV)")
    p.add_argument("--bounds", required=True,
                   help="JSON {name: [lo, hi]} of the free parameters (uS, nF, mV)")
    p.add_argument("--popsize", type=int, default=100, help="candidates per round")
    p.add_argument("--rounds", type=int, default=20, help="rounds at most")
    p.add_argument("--target_mse", type=float, default=0.0, help="stop once reached (mV^2)")
    p.add_argument("--method", default="rk4", help="Brian2 integration method")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--evaluate", default=None,
                   help="JSON {gl, g_na, g_kd}: only simulate these values and report the MSE")
    return p.parse_args(argv)


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


def set_params(group, values: dict, repeat: int) -> None:
    """Per-neuron parameter values (ours' units), each repeated for the `repeat` traces."""
    for name, value in values.items():
        brian_name, unit = PARAMS[name]
        setattr(group, brian_name, np.repeat(np.atleast_1d(value), repeat) * unit)


def build(current: np.ndarray, dt: float, fixed: dict, popsize: int, method: str):
    """One network: popsize x traces neurons, each reading its trace's current every step."""
    n_traces, n_steps = current.shape
    b2.defaultclock.dt = dt * b2.ms
    namespace = {"I_rec": b2.TimedArray(current.T * b2.nA, dt=dt * b2.ms)}
    group = b2.NeuronGroup(popsize * n_traces, EQUATIONS, method=method, namespace=namespace)
    group.trace = np.tile(np.arange(n_traces), popsize)
    set_params(group, fixed, popsize * n_traces)
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
        set_params(group, values, n_traces)
        net.run(duration)
        v = np.asarray(monitor.v / b2.mV)[:, :n_steps]
        out = {"best_mse": float(np.mean((v - voltage) ** 2)), "params": values,
               "wall_s": time.perf_counter() - T_START, "method": args.method}
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
        set_params(group, values, n_traces)
        try:
            net.run(duration)
            v = np.asarray(monitor.v / b2.mV).reshape(args.popsize, n_traces, -1)[..., :n_steps]
            mse = np.mean((v - voltage[None]) ** 2, axis=(1, 2))
            mse = np.where(np.isfinite(mse), mse, 1e12)
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
           "method": args.method, "brian2": b2.__version__}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
