"""The multi-start L-BFGS-B engine of the fits (SciPy's L-BFGS-B in lock-step threads, one
batched evaluation per round) against a JAX-native one (optax.lbfgs, every start in one
compiled, vmapped while-loop, the box by z = sigmoid(u)), side by side in one run, from the
same starts on the same objective: HH's default fit (its one stage) and the first stage of
GIF's (the coarse presearch). Prints wall times (first call with compilation, then a second
call), the best loss each reaches and the ratios; writes results/benchmarks/fit_engines.json.

    python -m benchmarks.fit_engines [--repeats 2]
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import neuron_fitting_of_gif_model as gif_script
import neuron_fitting_of_hh_model as hh_script
from benchmarks.kit.base import write_result
from utils.fitting import objectives, problem_from_flags
from utils.fitting.multistart import lbfgsb_multistart

GTOL = 1e-5    # SciPy L-BFGS-B's defaults: projected-gradient tolerance ...
FTOL = 2.2e-9  # ... and relative decrease of the loss that ends a run


def value_and_forward_grad(value):
    """`value` (u [D] -> loss) whose reverse-mode gradient is computed by forward mode (D
    tangents), as the fits do for few parameters."""
    def both(u):
        values, grad = jax.vmap(lambda t: jax.jvp(value, (u,), (t,)))(jnp.eye(u.shape[0]))
        return values[0], grad

    f = jax.custom_vjp(value)
    f.defvjp(both, lambda grad, cotangent: (cotangent * grad,))
    return f


def optax_multistart(residuals, maxiter: int):
    """A compiled function: starts Z0 [S, D] in the unit box -> (ends Z [S, D], losses [S],
    value-and-gradient evaluations [S]); each start runs optax L-BFGS (zoom line search) on
    u = logit(z) until SciPy's stopping rule (GTOL, FTOL) or `maxiter`."""
    loss = value_and_forward_grad(
        lambda u: jnp.sum(residuals(jax.nn.sigmoid(u)[None]) ** 2))
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def one(z0):
        def step(carry):
            u, state, previous, _, evals = carry
            value, grad = value_and_grad(u, state=state)
            updates, state = opt.update(grad, state, u, value=value, grad=grad, value_fn=loss)
            steps = optax.tree_utils.tree_get(state, "num_linesearch_steps")
            return optax.apply_updates(u, updates), state, value, previous, evals + steps

        def running(carry):
            u, state, value, previous, _ = carry
            count = optax.tree_utils.tree_get(state, "count")
            grad = optax.tree_utils.tree_get(state, "grad")
            decrease = (previous - value) / jnp.maximum(jnp.abs(previous), 1.0)
            return (count < 2) | ((count < maxiter) & (jnp.max(jnp.abs(grad)) > GTOL)
                                  & (decrease > FTOL))

        u0 = jnp.log(z0) - jnp.log1p(-z0)
        carry = (u0, opt.init(u0), jnp.inf, jnp.inf, 0)
        u, _, _, _, evals = jax.lax.while_loop(running, step, carry)
        return jax.nn.sigmoid(u), loss(u), evals

    return jax.jit(jax.vmap(one))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def compare(name: str, residuals, vg, starts: np.ndarray, maxiter: int, repeats: int) -> dict:
    """Both engines from `starts` on sum(residuals ** 2) (`vg`: the fits' compiled value and
    gradient of it): wall times of each call (the first compiles), the best loss,
    evaluations."""
    jax_fit = optax_multistart(residuals, maxiter)
    row = {"case": name, "starts": len(starts), "maxiter": maxiter}
    for engine, run in (("scipy", lambda: lbfgsb_multistart(vg, [starts], maxiter=maxiter)[0]),
                        ("scipy_confirm3", lambda: lbfgsb_multistart(vg, [starts],
                                                                     maxiter=maxiter,
                                                                     confirm=3)[0]),
                        ("optax", lambda: jax.block_until_ready(jax_fit(jnp.asarray(starts))))):
        walls = []
        for _ in range(repeats):
            out, wall = timed(run)
            walls.append(wall)
        if engine == "optax":
            best, evals = float(np.min(np.asarray(out[1]))), int(np.sum(np.asarray(out[2])))
        else:
            best, evals = out.loss, out.n_evals
        row[engine] = {"first_s": walls[0], "later_s": min(walls[1:] or walls), "loss": best,
                       "n_evals": evals}
    return row


def batch_residuals(problem, cell_residuals):
    """Z [B, D] -> residuals [B, M] of one problem (its recording as constants)."""
    with jax.enable_x64(True):
        data = jax.tree.map(jnp.asarray, objectives._cell_data(problem))
    return lambda z: cell_residuals(z, data)


def cases():
    """(name, residuals, value and gradient, starts, maxiter) of the default fits' first
    stages."""
    hh = problem_from_flags(hh_script.DEFAULTS, [])
    gif = problem_from_flags(gif_script.DEFAULTS, [])
    coarse = int(round(gif.presearch_dt / gif.dt))
    yield ("hh default (real loss)", batch_residuals(hh, objectives.real_residuals(hh)),
           objectives.make_objectives(hh).stages[0].value_and_grad,
           np.random.default_rng(0).uniform(size=(hh_script.DEFAULTS.n_starts, 4)), 200)
    yield ("gif coarse presearch",
           batch_residuals(gif, objectives.forced_residuals(gif, coarse)),
           objectives.make_objectives(gif).stages[0].value_and_grad,
           np.random.default_rng(0).uniform(size=(gif_script.DEFAULTS.n_starts, 4)), 50)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=2, help="calls per engine (the first "
                   "compiles)")
    p.add_argument("--out_dir", default=None,
                   help="folder of fit_engines.json (default results/benchmarks/)")
    args = p.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    rows = []
    print("| case | engine | first call s | later call s | best loss | evaluations |")
    print("|---|---|---|---|---|---|")
    for name, residuals, vg, starts, maxiter in cases():
        row = compare(name, residuals, vg, starts, maxiter, args.repeats)
        rows.append(row)
        for engine in ("scipy", "scipy_confirm3", "optax"):
            r = row[engine]
            print(f"| {name} | {engine} | {r['first_s']:.2f} | {r['later_s']:.2f} | "
                  f"{r['loss']:.3g} | {r['n_evals']} |", flush=True)
        print(f"| {name} | optax / scipy | {row['optax']['first_s'] / row['scipy']['first_s']:.2f}"
              f" | {row['optax']['later_s'] / row['scipy']['later_s']:.2f} | | |", flush=True)
    write_result("fit_engines", {"args": vars(args), "rows": rows}, args.out_dir)
    return rows


if __name__ == "__main__":
    main()
