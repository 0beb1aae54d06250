"""One training configuration measured in a fresh process, and the speed bars of the rules.

`measure(spec)` builds the task and trainer for `spec`, times training steps (and forward
passes), and reports peak resident memory of this process. `run_isolated(spec)` runs
`measure` in a child Python process (`python -m benchmarks.kit.training SPEC_JSON`), so every
configuration starts from a clean heap, its peak RSS (`ru_maxrss`) belongs to it alone, and
a brainevent backend chosen by `spec['backend']` is set in that child only.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from typing import Any, Dict

import brainevent
import brainstate
import jax.numpy as jnp
import numpy as np

from benchmarks.kit.base import ROOT
from utils.training.task import make_task, trial_seed
from utils.training.trainer import TrainConfig, Trainer, make_trainer

__all__ = ["spec_config", "measure", "xla_memory_mb", "run_isolated", "SPEED_BARS",
           "speed_bars"]

SPEED_BARS = {"diag": 10.0, "expsm_diag": 1.0}  # most seconds per batch, as a multiple of BPTT's


def _rss_mb() -> float:
    """Current resident set size of this process (MB), from /proc (Linux)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB); ru_maxrss is in KiB on Linux."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def spec_config(spec: Dict[str, Any]) -> TrainConfig:
    """The TrainConfig of a benchmark spec (method, conn_method, n_rec, batch_size, t_delay,
    num_cue, seed, neuron (default gif); everything else at its default)."""
    optional = {k: spec[k] for k in ("neuron", "seed") if k in spec}
    return TrainConfig.make(method=spec["method"], conn_method=spec["conn_method"],
                            n_rec=int(spec["n_rec"]), batch_size=int(spec["batch_size"]),
                            t_delay=float(spec["t_delay"]), num_cue=int(spec["num_cue"]),
                            **optional)


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Time `steps` training steps (after one warm-up step) for one configuration.

    spec keys: those of `spec_config`, steps, forward (also time forward passes), xla_memory
    (default true). Run it in a fresh process (`run_isolated`) for a meaningful peak RSS.
    """
    config = spec_config(spec)
    task = make_task(config.task, config.net.dt, config.t_delay, config.num_cue)
    batches = [task.sample(config.batch_size, trial_seed(0, 0, i))
               for i in range(spec["steps"] + 1)]
    trainer = make_trainer(config, task)
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


def xla_memory_mb(trainer: Trainer, data: Any) -> Dict[str, float]:
    """XLA's memory analysis of the compiled training step (MB): arguments, outputs, temporaries.

    temp is the working memory of the step: for BPTT it holds the stored trajectory.
    """
    xs = jnp.asarray(data.X, dtype=bool)
    with brainstate.environ.context(dt=trainer.dt):
        stats = trainer.compiled_step.lower(xs, jnp.asarray(data.y), jnp.asarray(data.recall),
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
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.kit.training", json.dumps(spec)],
                              cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {**spec, "error": f"exit {proc.returncode}: {tail[0][:300]}"}


def speed_bars(rows: list) -> list:
    """Each rule's seconds per batch over BPTT's at the same size, against SPEED_BARS."""
    lines = []
    for n in sorted({r["n_rec"] for r in rows}):
        done = {r["method"]: r for r in rows if r["n_rec"] == n and "error" not in r}
        if "bptt" not in done:
            continue
        for method, r in done.items():
            if method == "bptt":
                continue
            ratio = r["s_per_batch"] / done["bptt"]["s_per_batch"]
            bar = SPEED_BARS.get(method)
            verdict = "" if bar is None else f" ({'PASS' if ratio <= bar else 'FAIL'} <= {bar:g})"
            lines.append(f"n_rec {n}: {method} takes {ratio:.2f}x BPTT's time per batch"
                         f"{verdict}")
    return lines


def _child(spec_json: str) -> None:
    """Entry point of the fresh process: set the requested backend, measure, print."""
    spec = json.loads(spec_json)
    if spec.get("backend"):
        brainevent.config.set_backend("cpu", spec["backend"])  # this child process only
    print("RESULT " + json.dumps(measure(spec)))


if __name__ == "__main__":
    _child(sys.argv[1])
