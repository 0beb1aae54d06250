"""Sign-constrained projections of the E/I networks: the weights are `brainstate.ParamState`s
applied through braintrace's eligibility-trace-aware products, so one network trains by BPTT
and online (braintrace's D-RTRL / ES-D-RTRL).

Dale's law (`dale_project`, the one place it is decided): every projection stores its
conductances themselves, kept non-negative by reflection after each optimizer step, so the
sign of a neuron's effect comes from the reversal potential. The product is a plain `x @ W`
(no `weight_fn`), the form braintrace's closed-form trace kernels accept (docs/NOTES.md,
"Dale's law by projection").
"""
from __future__ import annotations

from typing import Optional

import brainevent
import brainstate
import braintrace
import jax
import jax.numpy as jnp
import numpy as np

from models.networks.connectivity import Connectivity

__all__ = ["LAYOUTS", "dale_project", "Projection"]

LAYOUTS = ("dense", "masked", "csr")


def dale_project(w: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
    """Dale's law as a projection: a weight stepped below zero is reflected, |w| (zero off
    `mask`); clipping at zero trained worse (docs/NOTES.md, "Reflect or clip at zero")."""
    w = jnp.abs(w)
    return w if mask is None else w * mask
class Projection(brainstate.nn.Module):
    """Non-negative weight matrix pre -> post, a `brainstate.ParamState` applied through
    braintrace's eligibility-trace-aware products.

    layout 'dense': y = x @ W; 'masked': y = x @ W with W zero off a fixed mask M (its
    gradient is masked too, `mask_gradient`); 'csr': W is the data of a brainevent CSR matrix.
    W holds the conductances themselves (`dale_project` keeps them non-negative), so the
    products carry no weight transform and braintrace's fast trace kernels apply. With
    `event_driven=True` and layout 'csr', the product uses `brainevent.BinaryArray` (spikes
    as events; BPTT only); braintrace's online algorithms need `event_driven=False` (an ETP
    primitive they can trace).
    """

    def __init__(self, weight: np.ndarray, conn: Connectivity, layout: str = "dense",
                 event_driven: bool = True):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if conn.mask is None and layout != "dense":
            layout = "dense"
        self.layout = layout
        self.event_driven = event_driven
        self.n_pre, self.n_post = conn.n_pre, conn.n_post
        self.mask = None
        if layout == "dense":
            stored = weight
        elif layout == "masked":
            self.mask = jnp.asarray(conn.mask, dtype=jnp.float32)
            stored = weight * conn.mask
        else:
            rows, cols = np.nonzero(conn.mask)  # row-major: CSR order
            indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=conn.n_pre))])
            stored = weight[rows, cols].astype(np.float32)
            self.csr = brainevent.CSR(
                (jnp.asarray(stored), jnp.asarray(cols, dtype=jnp.int32),
                 jnp.asarray(indptr, dtype=jnp.int32)),
                shape=(conn.n_pre, conn.n_post))
        self.weight = brainstate.ParamState({"weight": dale_project(jnp.asarray(stored))})

    def update(self, x: jax.Array) -> jax.Array:
        """Conductance increment caused by presynaptic activity `x` (..., n_pre)."""
        w = self.weight.value["weight"]
        if self.layout != "csr":
            return braintrace.matmul(x, w)
        if self.event_driven:
            return brainevent.BinaryArray(x) @ self.csr.with_data(w)
        return braintrace.sparse_matmul(x, w, sparse_mat=self.csr)

    def project(self) -> None:
        """Apply Dale's law to the stored weights (after an optimizer step)."""
        self.weight.value = {"weight": dale_project(self.weight.value["weight"], self.mask)}

    def mask_gradient(self, grad: jax.Array) -> jax.Array:
        """The gradient restricted to existing synapses (masked layout; others unchanged)."""
        return grad if self.mask is None else grad * self.mask

    def effective_weight(self) -> np.ndarray:
        """The dense (n_pre, n_post) matrix of effective (non-negative) weights."""
        w = np.asarray(self.weight.value["weight"])
        if self.layout != "csr":
            return w
        dense = np.zeros((self.n_pre, self.n_post), dtype=w.dtype)
        indptr = np.asarray(self.csr.indptr)
        rows = np.repeat(np.arange(self.n_pre), np.diff(indptr))
        dense[rows, np.asarray(self.csr.indices)] = w
        return dense

    def synapse_values(self, arr: Optional[np.ndarray] = None) -> np.ndarray:
        """Values of `arr` (default: the weights) at the existing synapses, 1-D, in row-major
        (CSR) order, whatever the layout; e.g. to compare gradients across layouts."""
        w = np.asarray(self.weight.value["weight"]) if arr is None else np.asarray(arr)
        if self.layout == "csr":
            return w
        if self.layout == "masked":
            return w[np.asarray(self.mask) > 0]
        return w.ravel()


