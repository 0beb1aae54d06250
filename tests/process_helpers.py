"""Helpers of the tests that start processes: the repository root, a free local port, and the
environment of one process of a multi-process JAX run."""
from __future__ import annotations

import os
import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(port: int, pid: int, count: int = 2, timeout: int = 60) -> dict:
    """The environment of process `pid` of `count` joined through 127.0.0.1:`port` (one CPU
    device each)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one device each
    env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(count),
               JAX_PROCESS_ID=str(pid), JAX_INIT_TIMEOUT=str(timeout))
    return env
