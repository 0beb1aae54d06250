"""The jaxley peer of the HH fitting benchmark: the same Traub-Miles neuron as a jaxley channel
on one compartment, fitted as jaxley's documentation fits (trainable parameters, a sigmoid
`ParamTransform` to the bounds, optax Adam on the unconstrained values).

Needs jaxley, which installs next to this project's pins without changing them:

    pip install -r benchmarks/requirements-jaxley.txt

`python -m benchmarks.hh_peers` starts it in a fresh process. The compartment has 20000 um^2
of membrane at 1 uF/cm^2 (C = 0.2 nF), so a conductance of g uS is g * 5e-3 S/cm^2. Voltage
by Crank-Nicolson (jaxley's default backward Euler is 0.57 mV^2 MSE away from an accurate
solution at dt 0.01 ms on this problem, Crank-Nicolson 0.0013). Prints one JSON object like
benchmarks/brian2_fit.py: best-so-far history [[seconds since start, simulations, best
MSE], ...], best parameters (uS), timings.
"""
from __future__ import annotations

import argparse
import json
import time

T_START = time.perf_counter()

import jax  # noqa: E402  (timed: imports are part of a run)
import jax.numpy as jnp  # noqa: E402
import jaxley as jx  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jaxley.channels import Channel  # noqa: E402
from jaxley.optimize.transforms import ParamTransform, SigmoidTransform  # noqa: E402
from jaxley.solver_gate import save_exp, solve_gate_exponential  # noqa: E402

AREA_CM2 = 2e-4                 # 20000 um^2
US_TO_S_PER_CM2 = 1e-6 / AREA_CM2
NAMES = {"gl": "gLeak", "g_na": "gNa", "g_kd": "gK"}   # ours -> the channel's


def _exprel(x: jax.Array) -> jax.Array:
    small = jnp.abs(x) < 1e-6
    safe = jnp.where(small, 1.0, x)
    return jnp.where(small, 1.0 + x / 2.0, jnp.expm1(safe) / safe)


class TraubMiles(Channel):
    """Traub-Miles Na, K and leak currents with threshold shift vt (Brian2's HH examples);
    conductances in S/cm^2, potentials in mV, gates starting at 0."""

    def __init__(self, name: str | None = None):
        self.current_is_in_mA_per_cm2 = True
        super().__init__(name)
        self.channel_params = {"gNa": 0.1, "gK": 0.03, "gLeak": 5e-5, "eNa": 50.0,
                               "eK": -90.0, "eLeak": -65.0, "vt": -55.0}
        self.channel_states = {"m": 0.0, "h": 0.0, "n": 0.0}
        self.current_name = "i_TraubMiles"

    def update_states(self, states, dt, v, params):
        vt = params["vt"]
        rates = {"m": (0.32 * 4.0 / _exprel((13.0 - v + vt) / 4.0),
                       0.28 * 5.0 / _exprel((v - vt - 40.0) / 5.0)),
                 "h": (0.128 * save_exp((17.0 - v + vt) / 18.0),
                       4.0 / (1.0 + save_exp((40.0 - v + vt) / 5.0))),
                 "n": (0.032 * 5.0 / _exprel((15.0 - v + vt) / 5.0),
                       0.5 * save_exp((10.0 - v + vt) / 40.0))}
        return {k: solve_gate_exponential(states[k], dt, a, b) for k, (a, b) in rates.items()}

    def compute_current(self, states, v, params):
        m, h, n = states["m"], states["h"], states["n"]
        return (params["gNa"] * m ** 3 * h * (v - params["eNa"])
                + params["gK"] * n ** 4 * (v - params["eK"])
                + params["gLeak"] * (v - params["eLeak"]))

    def init_state(self, states, v, params, delta_t):
        return {"m": 0.0, "h": 0.0, "n": 0.0}


def build(fixed: dict) -> jx.Compartment:
    comp = jx.Compartment()
    comp.set("length", 100.0)
    comp.set("radius", 20000.0 / (2.0 * np.pi * 100.0))
    comp.insert(TraubMiles())
    comp.set("capacitance", 1.0)
    comp.set("v", -65.0)
    comp.set("vt", fixed["vth"])
    comp.set("eLeak", fixed["EL"])
    comp.set("eK", fixed["EK"])
    comp.set("eNa", fixed["ENa"])
    for name in NAMES.values():
        comp.make_trainable(name)
    comp.record("v", verbose=False)
    return comp


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--current", required=True)
    p.add_argument("--voltage", required=True)
    p.add_argument("--dt", type=float, required=True)
    p.add_argument("--fixed", required=True, help="JSON: vth, EL, EK, ENa (C is 0.2 nF)")
    p.add_argument("--bounds", required=True, help="JSON {gl, g_na, g_kd: [lo, hi]} in uS")
    p.add_argument("--steps", type=int, default=400, help="Adam steps at most")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate")
    p.add_argument("--target_mse", type=float, default=0.0, help="stop once reached")
    p.add_argument("--solver", default="crank_nicolson")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--evaluate", default=None,
                   help="JSON {gl, g_na, g_kd} (uS): only simulate these values, report the MSE")
    args = p.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    current = jnp.asarray(np.loadtxt(args.current, delimiter=",", ndmin=2))
    voltage = jnp.asarray(np.loadtxt(args.voltage, delimiter=",", ndmin=2))
    fixed, bounds = json.loads(args.fixed), json.loads(args.bounds)
    comp = build(fixed)
    # the order of get_parameters() is the order of make_trainable
    transform = ParamTransform([{NAMES[k]: SigmoidTransform(
        jnp.asarray([bounds[k][0] * US_TO_S_PER_CM2]), jnp.asarray([bounds[k][1] * US_TO_S_PER_CM2]))}
        for k in NAMES])
    rng = np.random.default_rng(args.seed)
    start = [{NAMES[k]: jnp.asarray([np.exp(rng.uniform(np.log(bounds[k][0]),
                                                          np.log(bounds[k][1])))
                                     * US_TO_S_PER_CM2])} for k in NAMES]
    n_steps = voltage.shape[1]

    def loss(opt_params):
        params = transform.forward(opt_params)

        def one(i):
            v = jx.integrate(comp, params=params, data_stimuli=comp.data_stimulate(i),
                             delta_t=args.dt, solver=args.solver)
            return v[0, :n_steps]

        return jnp.mean((jax.vmap(one)(current) - voltage) ** 2)

    if args.evaluate is not None:
        values = json.loads(args.evaluate)
        mse = float(loss(transform.inverse([{NAMES[k]: jnp.asarray([values[k] * US_TO_S_PER_CM2])}
                                            for k in NAMES])))
        out = {"best_mse": mse, "params": values, "solver": args.solver}
        print(json.dumps(out))
        return out
    value_and_grad = jax.jit(jax.value_and_grad(loss))
    opt_params = transform.inverse(start)
    optimizer = optax.adam(args.lr)
    opt_state = optimizer.init(opt_params)
    history, best = [], (np.inf, None)
    for step in range(args.steps):
        value, grad = value_and_grad(opt_params)
        value = float(value)
        if value < best[0]:
            best = (value, opt_params)
        history.append([time.perf_counter() - T_START, step + 1, best[0]])
        if best[0] <= args.target_mse:
            break
        updates, opt_state = optimizer.update(grad, opt_state)
        opt_params = optax.apply_updates(opt_params, updates)
    fitted = transform.forward(best[1])
    params = {k: float(fitted[i][NAMES[k]][0]) / US_TO_S_PER_CM2 for i, k in enumerate(NAMES)}
    out = {"history": history, "best_mse": best[0], "params": params, "n_evals": len(history),
           "wall_s": time.perf_counter() - T_START, "solver": args.solver,
           "jaxley": jx.__version__}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
