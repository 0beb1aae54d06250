"""Memory and time of online learning (diag = D-RTRL, expsm_diag = ES-D-RTRL) against BPTT,
as the sequence grows.

For each n_rec and each sequence length (set through the task's delay), each method runs in a
fresh process (benchmarks/kit/training.py): one warm-up step, then the median seconds of --steps
training steps of a batch. Memory, two ways:
  * XLA: bytes the compiled training step allocates (arguments + outputs + temporaries,
    from jax's `Compiled.memory_analysis()`), minus the input spike sequence itself (T x B x
    100 bools, data that an online learner would stream; reported separately as input_mb);
    exact for the step, excludes the Python heap;
  * RSS: the fresh process's whole peak resident memory (ru_maxrss: Python, jax, the compiled
    program, the batch), and that peak minus its RSS just before the first step (includes
    compilation and allocator slack).
Prints a table and the memory checks (XLA: expsm_diag flat within 1.2x, >= 5x less than BPTT
at the longest sequence; whole-process peak RSS: expsm_diag within 1.2x, BPTT >= 2x
expsm_diag's at the longest sequence), draws memory vs sequence length, and writes
results/benchmarks/online_vs_bptt/<time>/{online_vs_bptt.json, online_vs_bptt.png}.

    python -m benchmarks.online_vs_bptt                      # n_rec 200 and 800, T 500..5000
    python -m benchmarks.online_vs_bptt --n_rec 200 --steps 1 --seq_lens 500 2000 5000
"""
from __future__ import annotations

import argparse

from matplotlib.figure import Figure

from benchmarks.kit.base import result_path, run_folder, write_result
from benchmarks.kit.training import run_isolated
from models.networks import NEURONS
from models.networks.connectivity import CONNECTIVITIES
from utils.run import atomic_write_json, positive_float, positive_int, save_figure
from utils.training.config import RULES

T_INTERVAL, T_CUE, T_RECALL = 50, 100, 150  # brainpy-datasets EvidenceAccumulation (dt 1 ms)


def delay_for(seq_len: int, num_cue: int) -> int:
    """t_delay (ms, dt 1) giving a trial of `seq_len` steps."""
    delay = seq_len - num_cue * (T_INTERVAL + T_CUE) - T_RECALL
    if delay <= 0:
        raise SystemExit(f"error: sequence length {seq_len} too short for {num_cue} cues")
    return delay


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n_rec", type=positive_int, nargs="+", default=[200, 800],
                   help="network sizes")
    p.add_argument("--seq_lens", type=positive_int, nargs="+", default=[500, 1000, 2000, 5000],
                   help="trial lengths in steps (dt 1 ms), set via --t_delay")
    p.add_argument("--methods", nargs="+", default=list(RULES), choices=tuple(RULES),
                   help="learning rules to compare")
    p.add_argument("--conn_method", default="dense", choices=CONNECTIVITIES,
                   help="connectivity")
    p.add_argument("--neuron", default="gif", choices=tuple(NEURONS), help="neuron model")
    p.add_argument("--batch_size", type=positive_int, default=32, help="trials per batch")
    p.add_argument("--num_cue", type=positive_int, default=2,
                   help="cues per trial (2 allows trials as short as 500 steps)")
    p.add_argument("--diag_max_len", type=positive_int, default=100000,
                   help="skip diag (D-RTRL, slow on CPU) above this sequence length")
    p.add_argument("--diag_max_n", type=positive_int, default=100000,
                   help="skip diag above this n_rec")
    p.add_argument("--steps", type=positive_int, default=2, help="timed steps per config")
    p.add_argument("--timeout", type=positive_float, default=1800.0,
                   help="seconds allowed per configuration")
    p.add_argument("--out_dir", default=None, help="output folder")
    return p


def check_bars(rows: list) -> list:
    """The memory bars, per n_rec: from XLA's numbers and from whole-process peak RSS."""
    lines = []
    for n in sorted({r["n_rec"] for r in rows}):
        ok = {m: sorted((r for r in rows if r["n_rec"] == n and r["method"] == m
                         and "error" not in r), key=lambda r: r["T"])
              for m in ("bptt", "expsm_diag", "diag")}
        es, bp = ok["expsm_diag"], ok["bptt"]
        if len(es) >= 2:
            growth = es[-1]["xla_step_mb"] / es[0]["xla_step_mb"]
            lines.append(f"n_rec {n}: expsm_diag memory T {es[0]['T']} -> {es[-1]['T']}: "
                         f"x{growth:.2f} ({'PASS' if growth <= 1.2 else 'FAIL'} <= 1.2)")
        if es and bp and es[-1]["T"] == bp[-1]["T"]:
            ratio = bp[-1]["xla_step_mb"] / es[-1]["xla_step_mb"]
            lines.append(f"n_rec {n}: at T {bp[-1]['T']} bptt uses {ratio:.1f}x the memory of "
                         f"expsm_diag ({'PASS' if ratio >= 5 else 'FAIL'} >= 5)")
        if len(bp) >= 2:
            lines.append(f"n_rec {n}: bptt memory T {bp[0]['T']} -> {bp[-1]['T']}: "
                         f"x{bp[-1]['xla_step_mb'] / bp[0]['xla_step_mb']:.2f}")
        if len(es) >= 2 and "peak_rss_mb" in es[0]:
            growth = es[-1]["peak_rss_mb"] / es[0]["peak_rss_mb"]
            lines.append(f"n_rec {n}: expsm_diag whole-process peak RSS T {es[0]['T']} -> "
                         f"{es[-1]['T']}: {es[0]['peak_rss_mb']:.0f} -> "
                         f"{es[-1]['peak_rss_mb']:.0f} MB, x{growth:.2f} "
                         f"({'PASS' if growth <= 1.2 else 'FAIL'} <= 1.2)")
        if es and bp and es[-1]["T"] == bp[-1]["T"] and "peak_rss_mb" in es[-1]:
            ratio = bp[-1]["peak_rss_mb"] / es[-1]["peak_rss_mb"]
            lines.append(f"n_rec {n}: at T {bp[-1]['T']} bptt's whole-process peak RSS is "
                         f"{ratio:.1f}x expsm_diag's ({'PASS' if ratio >= 2 else 'FAIL'} >= 2)")
    return lines


def plot(rows: list):
    """Memory (XLA and RSS) and time against sequence length, one line per method and size."""
    fig = Figure(figsize=(21, 4.5))
    axes = fig.subplots(1, 4)
    known = {"bptt": "o-", "diag": "s--", "expsm_diag": "^-"}
    styles = {m: known.get(m, "x:") for m in dict.fromkeys(r["method"] for r in rows)}
    for n in sorted({r["n_rec"] for r in rows}):
        for m in styles:
            rs = sorted((r for r in rows if r["n_rec"] == n and r["method"] == m
                         and "error" not in r), key=lambda r: r["T"])
            if not rs:
                continue
            T = [r["T"] for r in rs]
            label = f"{m}, n_rec {n}"
            axes[0].plot(T, [r["xla_step_mb"] for r in rs], styles[m], label=label)
            axes[1].plot(T, [r["peak_rss_increase_mb"] for r in rs], styles[m], label=label)
            axes[2].plot(T, [r["s_per_batch"] for r in rs], styles[m], label=label)
            axes[3].plot(T, [r["peak_rss_mb"] for r in rs], styles[m], label=label)
    for ax, title in zip(axes, ["XLA memory of the step, without input (MB)",
                                "peak RSS increase of a fresh process (MB)",
                                "seconds per batch",
                                "whole-process peak RSS (MB)"]):
        ax.set_xlabel("sequence length (steps of 1 ms)")
        ax.set_title(title)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv=None) -> dict:
    """Run every configuration, print the table and the checks, save JSON and figure."""
    args = build_parser().parse_args(argv)
    out_dir = run_folder("online_vs_bptt", args.out_dir)
    rows = []
    print(f"{'n_rec':>6} {'T':>6} {'method':>11} {'s/batch':>8} {'XLA MB':>8} {'RSS+ MB':>8} "
          f"{'peakRSS MB':>10}", flush=True)
    for n in args.n_rec:
        for T in args.seq_lens:
            for m in args.methods:
                if m == "diag" and (T > args.diag_max_len or n > args.diag_max_n):
                    print(f"{n:>6} {T:>6} {m:>11} skipped (--diag_max_len/--diag_max_n)")
                    continue
                spec = {"method": m, "conn_method": args.conn_method, "n_rec": n,
                        "batch_size": args.batch_size, "t_delay": delay_for(T, args.num_cue),
                        "num_cue": args.num_cue, "steps": args.steps, "neuron": args.neuron}
                r = run_isolated(spec, timeout=args.timeout)
                rows.append(r)
                if "error" in r:
                    print(f"{n:>6} {T:>6} {m:>11} failed: {r['error']}", flush=True)
                else:
                    print(f"{n:>6} {r['T']:>6} {m:>11} {r['s_per_batch']:>8.2f} "
                          f"{r['xla_step_mb']:>8.1f} {r['peak_rss_increase_mb']:>8.1f} "
                          f"{r['peak_rss_mb']:>10.1f}", flush=True)
                atomic_write_json(result_path("online_vs_bptt", out_dir), {"args": vars(args),
                                                                            "rows": rows})
    checks = check_bars(rows)
    for line in checks:
        print(line)
    result = {"args": vars(args), "rows": rows, "checks": checks,
              "memory_method": "XLA memory_analysis of the compiled step minus the input "
                               "sequence; whole-process peak RSS of a fresh process "
                               "(peak_rss_mb), and that minus RSS before the first step"}
    save_figure(plot(rows), out_dir / "online_vs_bptt.png")
    write_result("online_vs_bptt", result, out_dir)
    return result


if __name__ == "__main__":
    main()
