"""Seconds per training batch of every learning rule against BPTT's, side by side.

Each rule runs in a fresh process (benchmarks/kit/training.py) on the default task (7 cues,
1000 ms delay: 2200 steps) at batch 32, for each network size: one warm-up step, then the
median of --steps batches, and the process's whole peak RSS. Prints the table and the bars
(D-RTRL at most 10x BPTT's seconds per batch, ES-D-RTRL at most 1x), writes
results/benchmarks/rule_speed/<time>/rule_speed.json.

    python -m benchmarks.rule_speed                          # n_rec 200, 400, 800, dense
    python -m benchmarks.rule_speed --sizes 200 --conn_method gaussian --steps 2
"""
from __future__ import annotations

import argparse

from benchmarks.kit.base import result_path, run_folder, write_result
from benchmarks.kit.training import run_isolated, speed_bars
from models.networks.connectivity import CONNECTIVITIES
from utils.run import atomic_write_json, positive_float, positive_int
from utils.training.config import RULES


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[200, 400, 800],
                   help="n_rec values")
    p.add_argument("--methods", nargs="+", default=list(RULES), choices=tuple(RULES),
                   help="learning rules (bptt is the reference of the ratios)")
    p.add_argument("--conn_method", default="dense", choices=CONNECTIVITIES, help="connectivity")
    p.add_argument("--batch_size", type=positive_int, default=32, help="trials per batch")
    p.add_argument("--t_delay", type=positive_float, default=1000.0, help="task delay (ms)")
    p.add_argument("--num_cue", type=positive_int, default=7, help="cues per trial")
    p.add_argument("--steps", type=positive_int, default=3, help="timed batches per rule")
    p.add_argument("--timeout", type=positive_float, default=3600.0,
                   help="seconds allowed per configuration")
    p.add_argument("--out_dir", default=None, help="output folder")
    return p


def main(argv=None) -> dict:
    """Time every rule at every size, print the table and the bars, write the JSON."""
    args = build_parser().parse_args(argv)
    out_dir = run_folder("rule_speed", args.out_dir)
    rows = []
    print(f"{'n_rec':>6} {'method':>11} {'s/batch':>8} {'first s':>8} {'peak RSS MB':>11}",
          flush=True)
    for n in args.sizes:
        for method in args.methods:
            spec = {"method": method, "conn_method": args.conn_method, "n_rec": n,
                    "batch_size": args.batch_size, "t_delay": args.t_delay,
                    "num_cue": args.num_cue, "steps": args.steps, "xla_memory": False}
            r = run_isolated(spec, timeout=args.timeout)
            rows.append(r)
            if "error" in r:
                print(f"{n:>6} {method:>11} failed: {r['error']}", flush=True)
            else:
                print(f"{n:>6} {method:>11} {r['s_per_batch']:>8.2f} {r['first_step_s']:>8.1f} "
                      f"{r['peak_rss_mb']:>11.0f}", flush=True)
            atomic_write_json(result_path("rule_speed", out_dir), {"args": vars(args),
                                                                   "rows": rows})
    checks = speed_bars(rows)
    for line in checks:
        print(line)
    result = {"args": vars(args), "rows": rows, "checks": checks}
    write_result("rule_speed", result, out_dir)
    return result


if __name__ == "__main__":
    main()
