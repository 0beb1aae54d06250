"""Data parallel training over devices and processes: the batch axis of each batch sharded over
a one-axis device mesh ("batch"), the weights and optimizer state replicated. XLA partitions the
jitted step (GSPMD) and all-reduces the gradient, so one device and several run the same code
and give the same numbers (to float rounding).

Several processes (hosts) join through `jax.distributed`, set up by `init_distributed` from
environment variables (DISTRIBUTED_ENV); the mesh then spans the devices of every process, and
each process copies only the trials of its own devices to them.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any, Mapping, Optional, Tuple

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from utils.devices import local_devices
from utils.run import UserError
from utils.distributed_env import DISTRIBUTED_ENV

__all__ = ["DISTRIBUTED_ENV", "init_distributed", "is_main_process", "data_mesh", "replicate",
           "shard_batch", "gather", "gather_json", "any_process", "first_line", "lost_peer"]



def _env_int(env: Mapping[str, str], name: str, default: Optional[int] = None) -> int:
    text = env.get(name)
    if text is None:
        if default is None:
            raise UserError(f"JAX_COORDINATOR_ADDRESS is set but {name} is not "
                            f"({DISTRIBUTED_ENV[name]})")
        return default
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{name} must be an integer, got {text!r}") from None


def _wait_for_coordinator(address: str, timeout: float) -> None:
    """Return once something accepts TCP connections at `address` (host:port); UserError
    after `timeout` seconds."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"JAX_COORDINATOR_ADDRESS must be host:port, got {address!r}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=1.0).close()
            return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise UserError(f"no coordinator answers at {address} after {timeout} s "
                                f"(JAX_INIT_TIMEOUT; is process 0 running?): "
                                f"{err.strerror or err}") from None
            time.sleep(0.25)


def init_distributed(env: Mapping[str, str] = os.environ) -> bool:
    """Join a multi-process run if JAX_COORDINATOR_ADDRESS is set (True), else nothing (False).

    Must run before anything touches a jax device. UserError (one line) for a missing or bad
    variable, or when the coordinator or the other processes do not answer in time.
    """
    address = env.get("JAX_COORDINATOR_ADDRESS")
    if not address:
        return False
    if jax.distributed.is_initialized():  # a second run in the same process
        return True
    count = _env_int(env, "JAX_NUM_PROCESSES")
    pid = _env_int(env, "JAX_PROCESS_ID")
    timeout = _env_int(env, "JAX_INIT_TIMEOUT", 120)
    if count < 1 or not 0 <= pid < count:
        raise UserError(f"JAX_PROCESS_ID {pid} must be in 0 .. JAX_NUM_PROCESSES - 1 "
                        f"(JAX_NUM_PROCESSES {count})")
    if timeout < 1:
        raise UserError(f"JAX_INIT_TIMEOUT must be >= 1 s, got {timeout}")
    if pid > 0:  # jax aborts the process when the coordinator is absent: check first
        _wait_for_coordinator(address, timeout)
    try:
        jax.distributed.initialize(coordinator_address=address, num_processes=count,
                                   process_id=pid, initialization_timeout=timeout)
    except Exception as err:  # jax raises its runtime errors (deadline, refused) untyped
        raise UserError(f"process {pid} of {count} could not join the run at {address} within "
                        f"{timeout} s (JAX_INIT_TIMEOUT): {first_line(err)}") from None
    return True


def first_line(err: Exception) -> str:
    """The first line of an error's message (its type's name if it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def lost_peer(err: Exception) -> bool:
    """True for a multi-process run's error that says another process is gone."""
    return jax.process_count() > 1 and any(
        key in str(err) for key in ("Gloo", "DEADLINE_EXCEEDED", "UNAVAILABLE",
                                    "Connection reset", "Socket closed"))


def is_main_process() -> bool:
    """True in process 0 (the one that writes files), and in a single-process run."""
    return jax.process_index() == 0


def data_mesh(devices: Optional[int], batch_size: int) -> Optional[Mesh]:
    """The mesh over the first `devices` local devices of every process (None: all of them),
    ordered by process; None for one device in all. UserError if more are asked than present
    or the batch does not split evenly over the devices of all processes."""
    n = len(local_devices(devices))
    processes = jax.process_count()
    by_process: dict[int, list] = {p: [] for p in range(processes)}
    for d in sorted(jax.devices(), key=lambda d: (d.process_index, d.id)):
        by_process[d.process_index].append(d)
    per_process = [len(by_process[p]) for p in range(processes)]
    if devices is None and len(set(per_process)) > 1:
        raise UserError(f"the processes have different numbers of devices ({per_process}): "
                        f"give --devices (at most {min(per_process)})")
    if n > min(per_process):
        raise UserError(f"--devices {n}: a process of the run has only {min(per_process)} "
                        f"device(s)")
    total = n * processes
    if batch_size % total:
        where = f"{n} devices" if processes == 1 else \
            f"{total} devices ({n} in each of {processes} processes)"
        raise UserError(f"--batch_size {batch_size} does not split over {where}: use a "
                        f"multiple of {total} (or --devices)")
    if total == 1:
        return None
    chosen = [d for p in range(processes) for d in by_process[p][:n]]
    return Mesh(np.array(chosen), ("batch",))


def replicate(tree: Any, mesh: Optional[Mesh]) -> Any:
    """Every array of `tree` copied to every device of `mesh` (unchanged without a mesh); in
    a multi-process run every process must pass the same values."""
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def _place(array: Any, mesh: Mesh, spec: PartitionSpec) -> jax.Array:
    """The global array whose shards are the slices of `array` its local devices own."""
    host = np.asarray(array)
    return jax.make_array_from_callback(host.shape, NamedSharding(mesh, spec),
                                        lambda index: host[index])


def shard_batch(xs: Any, ys: Any, recall: Any,
                mesh: Optional[Mesh]) -> Tuple[Any, Any, Any]:
    """Inputs (T, B, n_in) and labels (B,) split along B over `mesh`; the recall mask (T,)
    replicated. Every process passes the whole batch and copies only its own devices'
    trials (so a run over P processes trains on exactly the trials of a one-process run)."""
    if mesh is None:
        return xs, ys, recall
    return (_place(xs, mesh, PartitionSpec(None, "batch")),
            _place(ys, mesh, PartitionSpec("batch")),
            _place(recall, mesh, PartitionSpec()))


def gather(array: Any) -> np.ndarray:
    """The whole of a (possibly process-spanning) array as numpy, on every process."""
    if jax.process_count() > 1 and not array.is_fully_addressable:
        return np.asarray(multihost_utils.process_allgather(array, tiled=True))
    return np.asarray(array)


def gather_json(obj: Any) -> list:
    """`obj` (anything JSON can hold, numpy included) of every process, in process order, on
    every process (every process must call it at the same point)."""
    import json

    from utils.run import to_jsonable

    if jax.process_count() == 1:
        return [to_jsonable(obj)]
    data = np.frombuffer(json.dumps(to_jsonable(obj)).encode(), dtype=np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.int64(len(data)))).ravel()
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[:len(data)] = data
    parts = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(sizes), -1)
    return [json.loads(part[:n].tobytes().decode()) for part, n in zip(parts, sizes)]


def any_process(flag: bool) -> bool:
    """True if `flag` is True in any process of the run (every process must call it at the
    same point); `flag` itself in a single-process run."""
    if jax.process_count() == 1:
        return flag
    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))
