"""A network too large for the memory is refused before anything is allocated, with the
estimate in one line (instead of an allocation error deep inside NumPy or XLA)."""
from __future__ import annotations

import math
import os

from utils.run import UserError
from utils.training.config import TrainConfig

__all__ = ["estimate_bytes", "available_bytes", "check_memory"]

# Building a network draws every recurrent matrix dense, in float64 (uniforms for the mask,
# normals for the weights, their magnitudes), whatever the connectivity: about 24 bytes per
# possible synapse at the peak.
BUILD_BYTES_PER_PAIR = 24
# Training holds per synapse the float32 weight, its gradient, Adam's two moments and the
# updated copy; D-RTRL one trace per synapse and trial with its Jacobians (about 40 bytes per
# synapse and trial, fitted to peak-RSS growth from 200 to 800 neurons); BPTT the states of
# every step (about 32 bytes per neuron, step and trial: XLA's figure at 200 and 800 neurons).
TRAIN_BYTES_PER_SYNAPSE = 20
TRACE_BYTES = 40
STATE_BYTES_PER_NEURON_STEP = 32
TRIAL_STEPS_MS = 1300.0  # the task's trial length beyond the delay (cues and recall)


def synapses(config: TrainConfig) -> float:
    """Expected number of recurrent and input synapses."""
    net = config.net.resolved()
    n = net.n_rec
    if net.conn_method == "rand":
        rec = net.conn_prob * n * n
    elif net.conn_method == "gaussian":
        rec = n * min(n, math.sqrt(2 * math.pi) * net.conn_sigma)
    else:
        rec = n * n
    return rec + net.n_in * n


def estimate_bytes(config: TrainConfig) -> tuple[float, float]:
    """(bytes to build the network, bytes to train it) for `config`, roughly."""
    n, n_syn, batch = config.net.n_rec, synapses(config), config.batch_size
    build = BUILD_BYTES_PER_PAIR * n * n
    train = TRAIN_BYTES_PER_SYNAPSE * n_syn
    if config.method == "diag":
        train += TRACE_BYTES * n_syn * batch
    elif not config.rule.online:
        steps = (config.t_delay + TRIAL_STEPS_MS) / config.net.dt
        train += STATE_BYTES_PER_NEURON_STEP * n * steps * batch
    return build, train


def available_bytes() -> float:
    """Memory the process may still take: MemAvailable of /proc/meminfo, else physical."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_memory(config: TrainConfig, available: float | None = None) -> None:
    """UserError naming the estimate when building or training `config` would not fit."""
    available = available_bytes() if available is None else available
    build, train = estimate_bytes(config)
    need = max(build, train)
    if need <= available:
        return
    largest = _largest_n_rec(config, available)
    raise UserError(
        f"--n_rec {config.net.n_rec} with --conn_method {config.net.conn_method} and --method "
        f"{config.method} needs about {need / 1e9:.0f} GB (building {build / 1e9:.0f} GB, "
        f"training {train / 1e9:.0f} GB), more than the {available / 1e9:.0f} GB of memory "
        f"available; use --n_rec {largest} or less" + _sparse_hint(config, available))


def _largest_n_rec(config: TrainConfig, available: float) -> int:
    n = config.net.n_rec
    while n > 5 and max(estimate_bytes(config.replace(n_rec=n))) > available:
        n = int(n * 0.9)
    return max(n, 5)


def _sparse_hint(config: TrainConfig, available: float) -> str:
    """A sparse connectivity to suggest, if one makes this size fit."""
    if config.net.conn_method != "dense":
        return ""
    for method in ("gaussian", "rand"):
        if max(estimate_bytes(config.replace(conn_method=method))) <= available:
            return f", or --conn_method {method} (sparse)"
    return ""
