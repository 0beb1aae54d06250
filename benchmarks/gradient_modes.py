"""Forward- against reverse-mode gradients of the fitting loss, side by side in one run: the
time of one batched value-and-gradient evaluation (compilation apart) and of compiling it,
for HH and GIF with growing numbers of free parameters. The fitting code switches from forward
to reverse mode above utils.fitting.objectives.FORWARD_MODE_MAX_DIM free parameters.

Then the layout of forward mode over a batch, for HH's three conductances at growing batch
sizes: the fitting code's (one simulation of the whole batch, its D tangents alongside), each
row's simulation with its D tangents mapped over the rows (the layout before), and one
forward pass over D copies of the batch (the layout before that).

Writes both tables' rows to results/benchmarks/gradient_modes.json.

    python -m benchmarks.gradient_modes
"""
from __future__ import annotations

import argparse
import time
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

import neuron_fitting_of_gif_model as gif_script
import neuron_fitting_of_hh_model as hh_script
from benchmarks.kit.base import write_result
from utils.fitting import make_objectives, problem_from_flags
from utils.fitting import objectives

CASES = [("hh", hh_script, "gl,g_na,g_kd", 20), ("hh", hh_script, "gl,g_na,g_kd,vth,C", 20),
         ("hh", hh_script, "gl,g_na,g_kd,vth,C,EL,EK,ENa", 20),
         ("gif", gif_script, "a,b,k1,k2", 2), ("gif", gif_script, "a,b,k1,k2,tau,R,A1,A2", 2)]


def time_mode(script, fit: str, batch: int, forward: bool, repeats: int) -> dict:
    """Compile-and-first-call seconds and the median of `repeats` later calls (ms)."""
    limit = 99 if forward else 0
    with mock.patch.object(objectives, "FORWARD_MODE_MAX_DIM", limit):
        problem = problem_from_flags(script.DEFAULTS, ["--fit", fit, "--presearch", "off"])
        fn = make_objectives(problem).real.value_and_grad
        z = np.random.default_rng(0).uniform(0.2, 0.8, (batch, len(problem.free)))
        t0 = time.perf_counter()
        first = fn(z)
        compile_s = time.perf_counter() - t0
        calls = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(z)
            calls.append(time.perf_counter() - t0)
    return {"compile_s": compile_s, "eval_ms": 1e3 * float(np.median(calls)), "grad": first[1]}


def _compiled(fn):
    jitted = jax.jit(fn)

    def call(z):
        with jax.enable_x64(True):
            return tuple(np.asarray(o) for o in jitted(jnp.asarray(z)))
    return call


def _cell_and_residuals(problem):
    with jax.enable_x64(True):
        cell = jax.tree.map(jnp.asarray, objectives._cell_data(problem))
    return cell, objectives.real_residuals(problem)


def tiled_value_and_grad(problem):
    """Loss and gradient by one forward pass over D copies of the batch."""
    cell, residuals = _cell_and_residuals(problem)

    def fn(z):
        n_b, n_d = z.shape
        tangents = jnp.repeat(jnp.eye(n_d), n_b, axis=0)
        r, jac = jax.jvp(lambda x: residuals(x, cell), (jnp.tile(z, (n_d, 1)),), (tangents,))
        r, jac = r[:n_b], jac.reshape(n_d, n_b, -1)
        return jnp.sum(r ** 2, -1), 2.0 * jnp.einsum("dbm,bm->bd", jac, r)
    return _compiled(fn)


def per_row_value_and_grad(problem):
    """Loss and gradient of each row by its own simulation with D tangents, mapped over the
    rows."""
    cell, residuals = _cell_and_residuals(problem)

    def one(z):
        def along(t):
            return jax.jvp(lambda x: residuals(x[None], cell)[0], (z,), (t,))
        r, jac = jax.vmap(along, out_axes=(None, 0))(jnp.eye(z.shape[0], dtype=z.dtype))
        return jnp.sum(r ** 2), 2.0 * jac @ r
    return _compiled(jax.vmap(one))


def layouts(batches, repeats: int) -> list:
    """The fitting code's forward mode against per-row and tiled, HH (gl, g_na, g_kd), each
    batch size."""
    problem = problem_from_flags(hh_script.DEFAULTS, ["--fit", "gl,g_na,g_kd"])
    fns = {"batch": make_objectives(problem).real.value_and_grad,
           "per_row": per_row_value_and_grad(problem), "tiled": tiled_value_and_grad(problem)}
    rows = []
    print("\n| batch | fitting code ms | per row ms | tiled ms | per row / fitting code | "
          "tiled / fitting code | gradients differ by |")
    print("|---|---|---|---|---|---|---|")
    for batch in batches:
        z = np.random.default_rng(0).uniform(0.2, 0.8, (batch, 3))
        grads = {k: f(z)[1] for k, f in fns.items()}  # compiles
        times = {k: [] for k in fns}
        for _ in range(repeats):  # interleaved, so that load on the machine hits both
            for k, f in fns.items():
                t0 = time.perf_counter()
                f(z)
                times[k].append(time.perf_counter() - t0)
        ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
        diff = max(float(np.max(np.abs(grads[k] - grads["batch"]))
                         / np.max(np.abs(grads["batch"]))) for k in ("per_row", "tiled"))
        rows.append({"batch": batch, **{f"{k}_ms": v for k, v in ms.items()},
                     "relative_difference": diff})
        print(f"| {batch} | {ms['batch']:.1f} | {ms['per_row']:.1f} | {ms['tiled']:.1f} | "
              f"{ms['per_row'] / ms['batch']:.2f} | {ms['tiled'] / ms['batch']:.2f} | "
              f"{diff:.1e} |", flush=True)
    return rows


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7, help="timed calls per mode")
    p.add_argument("--batches", default="20,64,200,640",
                   help="batch sizes of the layout comparison (comma list)")
    p.add_argument("--out_dir", default=None,
                   help="folder of gradient_modes.json (default results/benchmarks/)")
    args = p.parse_args(argv)
    rows = []
    print("| model | free | batch | forward ms | reverse ms | forward compile s | "
          "reverse compile s | gradients differ by |")
    print("|---|---|---|---|---|---|---|---|")
    for model, script, fit, batch in CASES:
        fwd, rev = (time_mode(script, fit, batch, mode, args.repeats) for mode in (True, False))
        diff = float(np.max(np.abs(fwd["grad"] - rev["grad"])) / np.max(np.abs(rev["grad"])))
        rows.append({"model": model, "free": fit, "batch": batch, "forward_ms": fwd["eval_ms"],
                     "reverse_ms": rev["eval_ms"], "forward_compile_s": fwd["compile_s"],
                     "reverse_compile_s": rev["compile_s"], "relative_difference": diff})
        print(f"| {model} | {len(fit.split(','))} | {batch} | {fwd['eval_ms']:.1f} | "
              f"{rev['eval_ms']:.1f} | {fwd['compile_s']:.2f} | {rev['compile_s']:.2f} | "
              f"{diff:.1e} |", flush=True)
    rows += layouts([int(b) for b in args.batches.split(",")], args.repeats)
    write_result("gradient_modes", {"args": vars(args), "rows": rows}, args.out_dir)
    return rows


if __name__ == "__main__":
    main()
