"""A faster recurrent kernel for braintrace's dense D-RTRL traces, registered in its place.

braintrace 0.2.6 rolls a dense weight's D-RTRL trace eps (B, in, out, S) through the
per-neuron hidden-state Jacobian D (B, out, S, S) as `einsum('...kab,...ikb->...ika')`. XLA
on CPU lowers that to a batched dot_general over B x out tiny S x S products, about 12x
slower than the same sum written as S broadcast multiply-adds, which XLA fuses into one pass
over the trace (docs/RESULTS.md, "D-RTRL trace kernel"). `install()` swaps the recurrent
kernel (and the chunked roll that calls it) in braintrace's fast-path registry for the dense
primitives; the other kernels stay braintrace's own. Same numbers up to float reassociation
(tests/test_trace_kernels.py checks against braintrace's kernels).
"""
from __future__ import annotations

from typing import Any, Dict

import jax
import jax.numpy as jnp

__all__ = ["recurrent", "chunk", "install"]


def recurrent(diag: jax.Array, old: Dict[str, Any], num_state: int) -> Dict[str, Any]:
    """D^t eps^{t-1}: new[..., i, k, a] = sum_b diag[..., k, a, b] old[..., i, k, b]."""
    w = old["weight"]
    out = {"weight": sum(diag[..., None, :, :, b] * w[..., None, b] for b in range(num_state))}
    if "bias" in old:
        out["bias"] = sum(diag[..., :, b] * old["bias"][..., None, b] for b in range(num_state))
    return out


def chunk(x_seq: Any, df_seq: Any, p_seq: jax.Array, m_full: jax.Array, old: Dict[str, Any],
          num_state: int) -> Dict[str, Any]:
    """braintrace's closed-form roll over a window (eps_end = M eps_start + sum_s x_s (x)
    P_s df_s), with `recurrent` for the M eps_start term."""
    pdf = sum(p_seq[..., b] * df_seq[..., None, b] for b in range(num_state))
    out = recurrent(m_full, old, num_state)
    out["weight"] = out["weight"] + jnp.einsum("t...i,t...ka->...ika", x_seq, pdf,
                                               precision=jax.lax.Precision.HIGHEST)
    if "bias" in out:
        out["bias"] = out["bias"] + pdf.sum(axis=0)
    return out


def install() -> None:
    """Register `recurrent` and `chunk` for braintrace's dense matmul primitives (idempotent)."""
    from braintrace._op import dense
    from braintrace._op._registries import ETP_FAST_PATH_RULES

    for primitive in (dense.etp_mm_p, dense.etp_mv_p):
        rules = ETP_FAST_PATH_RULES[primitive]
        ETP_FAST_PATH_RULES[primitive] = rules._replace(recurrent=recurrent, chunk=chunk)
