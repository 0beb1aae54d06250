"""Seconds per BPTT training batch: dense vs rand vs gaussian connectivity (and the pd14
microcircuit, --conn_methods pd14), by network size.

Each configuration runs in a fresh process (benchmarks/kit/training.py): one warm-up step, then
the median of --steps steps; with --forward also the forward pass alone (backward = step -
forward). --backends compares brainevent's CPU kernels (numba, the default here) with
jax_raw. Prints a table and the sparse/dense ratios; writes
results/benchmarks/train_speed/<time>/train_speed.json.

    python -m benchmarks.train_speed                                  # 200, 1000, 4000
    python -m benchmarks.train_speed --sizes 200 1000 --steps 2 --forward --backends numba jax_raw
"""
from __future__ import annotations

import argparse

from benchmarks.kit.base import result_path, run_folder, write_result
from benchmarks.kit.training import run_isolated
from models.networks.connectivity import CONNECTIVITIES
from utils.run import atomic_write_json, positive_float, positive_int


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[200, 1000, 4000],
                   help="n_rec values")
    p.add_argument("--conn_methods", nargs="+", default=list(CONNECTIVITIES),
                   choices=[*CONNECTIVITIES, "pd14"], help="connectivities to compare")
    p.add_argument("--backends", nargs="+", default=["default"],
                   choices=["default", "numba", "jax_raw"],
                   help="brainevent CPU backends for the sparse nets")
    p.add_argument("--batch_size", type=positive_int, default=32, help="trials per batch")
    p.add_argument("--t_delay", type=positive_float, default=1000.0, help="task delay (ms)")
    p.add_argument("--num_cue", type=positive_int, default=7, help="cues per trial")
    p.add_argument("--steps", type=positive_int, default=3, help="timed steps per config")
    p.add_argument("--forward", action="store_true", help="also time the forward pass alone")
    p.add_argument("--timeout", type=positive_float, default=1800.0,
                   help="seconds allowed per configuration")
    p.add_argument("--out_dir", default=None, help="output folder")
    return p


def main(argv=None) -> dict:
    """Run every configuration, print the table and ratios, write the JSON."""
    args = build_parser().parse_args(argv)
    out_dir = run_folder("train_speed", args.out_dir)
    rows = []
    print(f"{'n_rec':>6} {'conn':>9} {'backend':>8} {'s/batch':>8} {'fwd s':>7} {'bwd s':>7} "
          f"{'peak MB':>8}", flush=True)
    for n in args.sizes:
        for conn in args.conn_methods:
            for backend in (["default"] if conn == "dense" else args.backends):
                spec = {"method": "bptt", "conn_method": conn, "n_rec": n,
                        "batch_size": args.batch_size, "t_delay": args.t_delay,
                        "num_cue": args.num_cue, "steps": args.steps, "forward": args.forward,
                        "backend": None if backend == "default" else backend}
                r = run_isolated(spec, timeout=args.timeout)
                r["backend_name"] = backend
                rows.append(r)
                if "error" in r:
                    print(f"{n:>6} {conn:>9} {backend:>8} failed: {r['error']}", flush=True)
                    continue
                print(f"{n:>6} {conn:>9} {backend:>8} {r['s_per_batch']:>8.3f} "
                      f"{r.get('forward_s', float('nan')):>7.3f} "
                      f"{r.get('backward_s', float('nan')):>7.3f} {r['peak_rss_mb']:>8.0f}",
                      flush=True)
                atomic_write_json(result_path("train_speed", out_dir), {"args": vars(args),
                                                                         "rows": rows})
    ratios = []
    for n in args.sizes:
        dense = [r for r in rows if r["n_rec"] == n and r["conn_method"] == "dense"
                 and "error" not in r]
        for r in rows:
            if r["n_rec"] == n and r["conn_method"] != "dense" and "error" not in r and dense:
                ratio = r["s_per_batch"] / dense[0]["s_per_batch"]
                ratios.append({"n_rec": n, "conn_method": r["conn_method"],
                               "backend": r["backend_name"], "sparse_over_dense": ratio})
                print(f"n_rec {n}: {r['conn_method']}/{r['backend_name']} takes {ratio:.2f}x "
                      f"the time of dense")
    result = {"args": vars(args), "rows": rows, "ratios": ratios}
    write_result("train_speed", result, out_dir)
    return result


if __name__ == "__main__":
    main()
