"""The local devices a run's --devices flag chooses (shared by fitting and training)."""
from __future__ import annotations

import jax

from utils.run import UserError

__all__ = ["local_devices"]


def local_devices(devices: int | None) -> list:
    """The first `devices` local devices of this process (None: all of them); UserError if
    more are asked than present."""
    available = jax.local_devices()
    n = len(available) if devices is None else devices
    if n > len(available):
        raise UserError(f"--devices {n}: only {len(available)} device(s) present "
                        f"({available[0].platform})")
    return available[:n]
