"""braintrace's dense D-RTRL recurrent trace kernel against the fused one registered by
utils/training/trace_kernels.py, side by side on the trace of one network.

The trace of the input and recurrent weights of an n_rec network (in = 100 + n_rec rows,
out = n_rec columns, 3 traced states per neuron, batch B) is rolled through random per-neuron
Jacobians; prints milliseconds per step of each kernel and their ratio, and writes them to
results/benchmarks/trace_kernel.json.

    python -m benchmarks.trace_kernel                     # n_rec 200, batch 32
    python -m benchmarks.trace_kernel --n_rec 400 --batch_size 16
"""
from __future__ import annotations

import argparse
import time

import jax
from braintrace._op import dense

from benchmarks.kit.base import write_result
from utils.run import positive_int
from utils.training import trace_kernels


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n_rec", type=positive_int, default=200, help="network size")
    p.add_argument("--batch_size", type=positive_int, default=32, help="trials per batch")
    p.add_argument("--num_state", type=positive_int, default=3, help="traced states per neuron")
    p.add_argument("--repeats", type=positive_int, default=20, help="timed calls per kernel")
    p.add_argument("--out_dir", default=None,
                   help="folder of trace_kernel.json (default results/benchmarks/)")
    return p


def time_ms(fn, *args, repeats: int) -> float:
    """Median wall milliseconds of a jitted call (after one compiling call)."""
    fn(*args)["weight"].block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)["weight"].block_until_ready()
        times.append(time.perf_counter() - t0)
    return 1e3 * sorted(times)[len(times) // 2]


def main(argv=None) -> dict:
    """Time both kernels, print, write and return the milliseconds and the ratio."""
    args = build_parser().parse_args(argv)
    S, B, n = args.num_state, args.batch_size, args.n_rec
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    diag = jax.random.normal(k1, (B, n, S, S))
    trace = {"weight": jax.random.normal(k2, (B, 100 + n, n, S))}
    theirs = jax.jit(lambda d, t: dense._dense_fast_recurrent(d, t, S))
    ours = jax.jit(lambda d, t: trace_kernels.recurrent(d, t, S))
    err = float(abs(theirs(diag, trace)["weight"] - ours(diag, trace)["weight"]).max())
    t_theirs = time_ms(theirs, diag, trace, repeats=args.repeats)
    t_ours = time_ms(ours, diag, trace, repeats=args.repeats)
    print(f"trace ({B}, {100 + n}, {n}, {S}): braintrace einsum {t_theirs:.2f} ms, fused "
          f"{t_ours:.2f} ms per step: {t_theirs / t_ours:.1f}x faster (max difference {err:.1e})")
    result = {"braintrace_ms": t_theirs, "fused_ms": t_ours, "speedup": t_theirs / t_ours,
              "max_abs_diff": err}
    write_result("trace_kernel", {"args": vars(args), **result}, args.out_dir)
    return result


if __name__ == "__main__":
    main()
