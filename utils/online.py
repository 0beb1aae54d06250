"""Online learning with brainscale 0.1.0 (D-RTRL and ES-D-RTRL), and its jax compatibility shim.

The shim lives here and nowhere else. brainscale 0.1.0 calls `jax.core.get_aval`, which jax
0.10 removed (ECOSYSTEM.md item 3); `jax.typeof` is its replacement. tests/test_online.py
fails as soon as the shim is no longer needed (a brainscale or jax upgrade) or stops working.
"""
from __future__ import annotations

from typing import Any

import jax

__all__ = ["ONLINE_METHODS", "brainscale_needs_shim", "ensure_brainscale_compat",
           "make_online_algorithm"]

ONLINE_METHODS = ("diag", "expsm_diag")
_SHIM_APPLIED = False


def brainscale_needs_shim() -> bool:
    """True when this jax lacks `jax.core.get_aval` (which brainscale 0.1.0 calls)."""
    return not hasattr(jax.core, "get_aval") or _SHIM_APPLIED


def ensure_brainscale_compat() -> None:
    """Alias `jax.core.get_aval = jax.typeof` if jax no longer has it (idempotent)."""
    global _SHIM_APPLIED
    if not hasattr(jax.core, "get_aval"):
        jax.core.get_aval = jax.typeof  # removed in jax 0.10; same semantics for arrays
        _SHIM_APPLIED = True


def make_online_algorithm(net: Any, method: str, etrace_decay: float, example_input: Any) -> Any:
    """Build and compile brainscale's online algorithm for `net` (states already batched).

    diag: D-RTRL, `ParamDimVjpAlgorithm` (one trace per weight and batch element).
    expsm_diag: ES-D-RTRL, `IODimVjpAlgorithm` with trace decay `etrace_decay`
    (exponential smoothing of input and hidden-dimension traces).
    """
    ensure_brainscale_compat()
    import brainscale
    import brainstate

    if method == "diag":
        algo = brainscale.ParamDimVjpAlgorithm(net, mode=brainstate.mixin.Batching())
    elif method == "expsm_diag":
        if not 0.0 < etrace_decay < 1.0:
            raise ValueError(f"etrace_decay must be in (0, 1), got {etrace_decay}")
        algo = brainscale.IODimVjpAlgorithm(net, float(etrace_decay),
                                            mode=brainstate.mixin.Batching())
    else:
        raise ValueError(f"unknown online method {method!r}; expected one of {ONLINE_METHODS}")
    algo.compile_graph(example_input)
    return algo
