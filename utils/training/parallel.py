"""Data parallel training over the local devices: the batch axis of each batch sharded over a
one-axis device mesh ("batch"), the weights and optimizer state replicated. XLA partitions the
jitted step (GSPMD) and all-reduces the gradient, so one device and several run the same code
and give the same numbers (to float rounding)."""
from __future__ import annotations

from typing import Any, Optional, Tuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from utils.run import UserError

__all__ = ["data_mesh", "replicate", "shard_batch"]


def data_mesh(devices: Optional[int], batch_size: int) -> Optional[Mesh]:
    """The mesh over the first `devices` local devices (None: all of them); None for one
    device. UserError if more are asked than present or the batch does not split evenly."""
    available = jax.local_devices()
    n = len(available) if devices is None else devices
    if n > len(available):
        raise UserError(f"--devices {n}: only {len(available)} device(s) present "
                        f"({available[0].platform})")
    if batch_size % n:
        raise UserError(f"--batch_size {batch_size} does not split over {n} devices: use a "
                        f"multiple of {n} (or --devices)")
    return Mesh(np.array(available[:n]), ("batch",)) if n > 1 else None


def replicate(tree: Any, mesh: Optional[Mesh]) -> Any:
    """Every array of `tree` copied to every device of `mesh` (unchanged without a mesh)."""
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(xs: jax.Array, ys: jax.Array, recall: jax.Array,
                mesh: Optional[Mesh]) -> Tuple[jax.Array, jax.Array, jax.Array]:
    """Inputs (T, B, n_in) and labels (B,) split along B over `mesh`; the recall mask (T,)
    replicated."""
    if mesh is None:
        return xs, ys, recall
    return (jax.device_put(xs, NamedSharding(mesh, PartitionSpec(None, "batch"))),
            jax.device_put(ys, NamedSharding(mesh, PartitionSpec("batch"))),
            replicate(recall, mesh))
