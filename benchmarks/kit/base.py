"""The repository's root, the output convention and small helpers of every benchmark.

The output convention: a benchmark's result is one JSON file, NAME.json, written atomically
by `write_result`, which prints its path. It goes into the folder --out_dir names: by default
results/benchmarks/ (results/benchmarks/NAME.json, replaced by the next run), or, for a
benchmark that also keeps working files (recordings, logs, fit folders, figures), a fresh
run folder results/benchmarks/NAME/<time>/ made by `run_folder`.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from utils.run import atomic_write_json, make_out_dir

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path("results") / "benchmarks"  # relative, as the scripts' run folders


def run_folder(name: str, out_dir: str | None) -> Path:
    """A fresh folder for a benchmark's working files and result: `out_dir`, or
    results/benchmarks/NAME/<time>/."""
    return make_out_dir(f"benchmarks/{name}", out_dir)


def result_path(name: str, folder: str | Path | None = None) -> Path:
    """Where the result of benchmark `name` goes: FOLDER/NAME.json (results/benchmarks/)."""
    return Path(RESULTS if folder is None else folder) / f"{name}.json"


def write_result(name: str, result: Any, folder: str | Path | None = None) -> Path:
    """Write `result` to result_path(name, folder) atomically; print and return the path."""
    path = result_path(name, folder)
    atomic_write_json(path, result)
    print(f"wrote {path}")
    return path


def time_to(history: Sequence[Sequence[float]], level: float) -> float | None:
    """Seconds at which a best-so-far history [[s, n, best], ...] first reaches `level`
    (None if never)."""
    return next((h[0] for h in history if h[2] <= level), None)


def free_port() -> int:
    """A TCP port of 127.0.0.1 free at the time of asking (for a jax.distributed
    coordinator)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_csv(path: Path, rows: np.ndarray) -> Path:
    """`rows` as CSV at 10 significant digits (the peers' input format)."""
    np.savetxt(path, rows, delimiter=",", fmt="%.10g")
    return path
