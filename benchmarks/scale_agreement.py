"""Do runs split over several devices or processes give the numbers of one device?

Runs the scripts as a user would, in fresh processes: task_training.py (BPTT and ES-D-RTRL)
on 1 and on 4 devices, and as two processes joined by jax.distributed (CPU collectives on
127.0.0.1, one device each) against one process; neuron_fitting_of_hh_model.py's gradient fit
on 1 and 4 devices. On a CPU the extra devices are forced host devices (XLA_FLAGS), so this
measures agreement, not speed. Prints a table (per-batch loss relative differences, best fit
and parameter differences) and writes
results/benchmarks/scale_agreement/<time>/scale_agreement.json.

    python -m benchmarks.scale_agreement
    python -m benchmarks.scale_agreement --n_rec 200 --batches 4 --methods bptt
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from benchmarks.kit.base import ROOT, free_port, run_folder, write_result
from utils.run import positive_int


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n_rec", type=positive_int, default=200, help="network size")
    p.add_argument("--batches", type=positive_int, default=4, help="training batches per run")
    p.add_argument("--batch_size", type=positive_int, default=32,
                   help="trials per batch (a multiple of 4)")
    p.add_argument("--t_delay", type=positive_int, default=300, help="task delay (ms)")
    p.add_argument("--methods", nargs="+", default=["bptt", "expsm_diag"],
                   choices=["bptt", "expsm_diag", "diag"], help="learning rules to compare")
    p.add_argument("--n_starts", type=positive_int, default=8, help="starts of the HH fit")
    p.add_argument("--out_dir", default=None,
                   help="results folder (default results/benchmarks/scale_agreement/<time>)")
    return p


def environment(devices: int, **extra: str) -> Dict[str, str]:
    """This environment with `devices` forced host devices and `extra` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu", MPLBACKEND="Agg", **extra)  # forced devices are CPU ones
    return env


def launch(script: str, argv: Sequence[str], env: Dict[str, str]) -> subprocess.Popen:
    """`script` in a fresh process, its stderr in a temporary file (a pipe could fill up while
    another process is waited for)."""
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([sys.executable, script, *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=log, text=True)
    proc.log = log
    return proc


def finish(procs: List[subprocess.Popen]) -> None:
    """Wait for `procs`; exit with the last lines of a failed one's stderr."""
    for p in procs:
        p.wait()
        p.log.seek(0)
        err = p.log.read()
        p.log.close()
        if p.returncode:
            raise SystemExit(f"error: {' '.join(p.args[1:3])} failed:\n{err[-1500:]}")


def training_losses(argv: Sequence[str], out: Path, devices: int = 1,
                    processes: int = 1) -> np.ndarray:
    """Per-batch training losses of task_training.py run with `devices` devices in each of
    `processes` processes."""
    if processes == 1:
        procs = [launch("task_training.py", [*argv, "--devices", str(devices),
                                             "--out_dir", str(out)], environment(devices))]
    else:
        port = free_port()
        procs = [launch("task_training.py", [*argv, "--devices", str(devices),
                                             "--out_dir", str(out)],
                        environment(devices, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                                    JAX_NUM_PROCESSES=str(processes), JAX_PROCESS_ID=str(k)))
                 for k in range(processes)]
    finish(procs)
    history = json.loads((out / "metrics.json").read_text())["history"]
    return np.array([h["loss"] for h in history])


def fit_result(n_starts: int, devices: int, out: Path) -> Dict[str, object]:
    """The gradient method's result of the default HH fit on `devices` devices."""
    finish([launch("neuron_fitting_of_hh_model.py",
                   ["--methods", "gradient", "--n_starts", str(n_starts), "--seed", "0",
                    "--devices", str(devices), "--out_dir", str(out)], environment(4))])
    return json.loads((out / "metrics.json").read_text())["methods"]["gradient"]


def relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(b) / np.asarray(a) - 1.0)


def main(argv: Sequence[str] | None = None) -> Dict[str, object]:
    """Run every comparison, print the table, write scale_agreement.json; returns what it wrote."""
    args = build_parser().parse_args(argv)
    if args.batch_size % 4:
        raise SystemExit(f"error: --batch_size {args.batch_size} must be a multiple of 4")
    out_dir = run_folder("scale_agreement", args.out_dir)
    train_argv = ["--n_rec", str(args.n_rec), "--t_delay", str(args.t_delay), "--num_cue", "3",
                  "--batch_size", str(args.batch_size), "--epochs", str(args.batches),
                  "--eval_every", str(args.batches), "--n_val", str(args.batch_size),
                  "--n_test", str(args.batch_size), "--seed", "0"]
    rows: List[Dict[str, object]] = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        for method in args.methods:
            run = [*train_argv, "--method", method]
            one = training_losses(run, tmp / f"{method}-1")
            for label, devices, processes in (("4 devices", 4, 1), ("2 processes", 1, 2)):
                other = training_losses(run, tmp / f"{method}-{label}", devices, processes)
                rel = relative(one, other)
                rows.append({"run": f"train {method}", "against 1 device": label,
                             "first batch": float(rel[0]), "worst batch": float(rel.max()),
                             "losses 1": one.tolist(), "losses": other.tolist()})
        fits = {n: fit_result(args.n_starts, n, tmp / f"fit-{n}") for n in (1, 4)}
    a, b = fits[1], fits[4]
    param_rel = max(abs(b["params"][k] - v) / max(abs(v), 1e-300) for k, v in a["params"].items())
    rows.append({"run": f"HH fit, gradient, {args.n_starts} starts",
                 "against 1 device": "4 devices",
                 "first batch": None, "worst batch": None,
                 "best loss": float(relative(a["loss"], b["loss"])), "params": float(param_rel),
                 "losses": [a["loss"], b["loss"]],
                 "n_evals": [a["n_evals"], b["n_evals"]]})
    print(f"n_rec {args.n_rec}, batch {args.batch_size}, {args.batches} batches, t_delay "
          f"{args.t_delay} ms, 3 cues; relative differences from the 1-device run\n")
    print("| run | against 1 device | first batch's loss | worst batch's loss | best fit loss "
          "| worst parameter |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [r.get("first batch"), r.get("worst batch"), r.get("best loss"), r.get("params")]
        text = ["" if c is None else f"{c:.1e}" for c in cells]
        print(f"| {r['run']} | {r['against 1 device']} | " + " | ".join(text) + " |")
    result = {"args": vars(args), "rows": rows}
    print(f"\nHH fit's best loss (mV^2) on 1 and 4 devices: {a['loss']:.6g} and {b['loss']:.6g}")
    write_result("scale_agreement", result, out_dir)
    return result


if __name__ == "__main__":
    main()
