"""Measuring one training configuration in a fresh process (used by benchmarks/).

`measure(spec)` builds the network and task for `spec`, times training steps (and forward
passes), and reports peak resident memory of this process. `run_isolated(spec)` runs
`measure` in a child Python process so every configuration starts from a clean heap and its
peak RSS (`ru_maxrss`) belongs to it alone.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    """Current resident set size of this process (MB), from /proc (Linux)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB); ru_maxrss is in KiB on Linux."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Time `steps` training steps (after one warm-up step) for one configuration.

    spec keys: method, conn_method, n_rec, batch_size, t_delay, num_cue, steps, forward
    (also time forward passes), backend (brainevent CPU backend or null), seed.
    """
    if spec.get("backend"):
        import brainevent
        brainevent.config.set_backend("cpu", spec["backend"])
    import task_training
    from utils.training import get_task, sample_trials, trial_seed

    argv = ["--method", spec["method"], "--conn_method", spec["conn_method"],
            "--n_rec", str(spec["n_rec"]), "--batch_size", str(spec["batch_size"]),
            "--t_delay", str(spec["t_delay"]), "--num_cue", str(spec["num_cue"]),
            "--seed", str(spec.get("seed", 0))]
    args = task_training.build_parser().parse_args(argv)
    task = get_task(args.dt, args.t_delay, args.num_cue)
    batches = [sample_trials(task, args.batch_size, trial_seed(0, 0, i))
               for i in range(spec["steps"] + 1)]
    trainer = task_training.make_trainer(args)
    rss_before = _rss_mb()
    t0 = time.perf_counter()
    trainer.train_step(batches[0])  # compile + first step
    first_s = time.perf_counter() - t0
    times = []
    for b in batches[1:]:
        t0 = time.perf_counter()
        trainer.train_step(b)
        times.append(time.perf_counter() - t0)
    out = {**spec, "T": int(batches[0].X.shape[0]), "first_step_s": first_s,
           "s_per_batch": float(np.median(times)), "s_per_batch_all": times,
           "rss_before_mb": rss_before, "peak_rss_mb": _peak_rss_mb()}
    out["peak_rss_increase_mb"] = out["peak_rss_mb"] - rss_before
    if spec.get("xla_memory", True):
        out.update(xla_memory_mb(trainer, batches[0]))
    if spec.get("forward"):
        trainer.evaluate(batches[0])  # compile
        ft = []
        for b in batches[1:]:
            t0 = time.perf_counter()
            trainer.evaluate(b)
            ft.append(time.perf_counter() - t0)
        out["forward_s"] = float(np.median(ft))
        out["backward_s"] = out["s_per_batch"] - out["forward_s"]
    return out


def xla_memory_mb(trainer: Any, data: Any) -> Dict[str, float]:
    """XLA's memory analysis of the compiled training step (MB): arguments, outputs, temporaries.

    temp is the working memory of the step: for BPTT it holds the stored trajectory.
    """
    import brainstate
    import jax.numpy as jnp

    xs = jnp.asarray(data.X, dtype=bool)
    with brainstate.environ.context(dt=trainer.dt):
        stats = trainer._train_step.lower(xs, jnp.asarray(data.y), jnp.asarray(data.recall),
                                          trainer.opt_state).compile().memory_analysis()
    mb = 2.0 ** 20
    arg, out, tmp = (stats.argument_size_in_bytes / mb, stats.output_size_in_bytes / mb,
                     stats.temp_size_in_bytes / mb)
    inp = xs.size * xs.dtype.itemsize / mb  # the trial's input spikes, (T, B, 100) bool
    # xla_step_mb excludes the input sequence: data, streamed in a truly online setting
    return {"xla_argument_mb": arg, "xla_output_mb": out, "xla_temp_mb": tmp,
            "xla_total_mb": arg + out + tmp, "input_mb": inp,
            "xla_step_mb": arg + out + tmp - inp}


def run_isolated(spec: Dict[str, Any], timeout: float = 1800) -> Dict[str, Any]:
    """`measure(spec)` in a fresh Python process; {'error': ...} if it fails or times out."""
    code = ("import json, sys; sys.path.insert(0, %r); from utils.training_bench import measure; "
            "print('RESULT ' + json.dumps(measure(json.loads(sys.argv[1]))))" % str(ROOT))
    try:
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {**spec, "error": f"exit {proc.returncode}: {tail[0][:300]}"}
