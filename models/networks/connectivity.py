"""Connectivity of the E/I networks, drawn with NumPy from an explicit generator, and the
initial weight magnitudes.

``dense`` (all-to-all), ``rand`` (fixed probability) and ``gaussian`` (distance-dependent on a
ring). `CONNECTIVITIES` is the one list of connectivities: name -> connection probability
(pre, n_exc, n_inh, prob, sigma) -> [n_pre, n_exc + n_inh], or None for all-to-all. Adding one
is one function and one entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import numpy as np

__all__ = ["Connectivity", "CONNECTIVITIES", "make_connectivity", "draw_connectivity",
           "ring_positions", "half_normal_weights", "kaiming_abs_weights", "WeightInit"]


@dataclass
class Connectivity:
    """A fixed pre x post connection pattern. `mask is None` means all-to-all."""

    n_pre: int
    n_post: int
    mask: Optional[np.ndarray]  # bool (n_pre, n_post) or None

    @property
    def density(self) -> float:
        """Fraction of possible synapses that exist."""
        return 1.0 if self.mask is None else float(self.mask.mean())

    @property
    def n_syn(self) -> int:
        """Number of synapses."""
        return self.n_pre * self.n_post if self.mask is None else int(self.mask.sum())


def ring_positions(n_exc: int, n_inh: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions on a ring of circumference n_exc + n_inh (unit = mean neuron spacing).

    E and I cells are each spread evenly around the ring, so inhibition is local everywhere.
    """
    n = n_exc + n_inh
    pos_e = np.arange(n_exc) * (n / max(n_exc, 1))
    pos_i = (np.arange(n_inh) + 0.5) * (n / max(n_inh, 1))
    return pos_e, pos_i


def _ring_distance(pre: np.ndarray, post: np.ndarray, circumference: float) -> np.ndarray:
    d = np.abs(pre[:, None] - post[None, :])
    return np.minimum(d, circumference - d)


def _rand_probability(pre: str, n_exc: int, n_inh: int, prob: float, sigma: float) -> np.ndarray:
    """rand: every synapse exists with probability `prob`."""
    n_pre = n_exc if pre == "E" else n_inh
    return np.full((n_pre, n_exc + n_inh), prob)


def _gaussian_probability(pre: str, n_exc: int, n_inh: int, prob: float,
                          sigma: float) -> np.ndarray:
    """gaussian: p = exp(-d^2 / (2 sigma^2)) with d the ring distance in neuron spacings; the
    expected in-degree is about sqrt(2 pi) sigma."""
    pos_e, pos_i = ring_positions(n_exc, n_inh)
    pos_pre = pos_e if pre == "E" else pos_i
    return np.exp(-_ring_distance(pos_pre, np.concatenate([pos_e, pos_i]), n_exc + n_inh) ** 2
                  / (2.0 * sigma ** 2))


CONNECTIVITIES: Dict[str, Callable[..., np.ndarray] | None] = {
    "dense": None, "gaussian": _gaussian_probability, "rand": _rand_probability}


def make_connectivity(
    method: str, pre: str, n_exc: int, n_inh: int, rng: np.random.Generator,
    prob: float = 0.1, sigma: float = 20.0,
) -> Connectivity:
    """Connection pattern from population `pre` ('E' or 'I') to all n_exc + n_inh neurons,
    drawn from the probabilities of CONNECTIVITIES[method] (no autapses)."""
    if method not in CONNECTIVITIES:
        raise ValueError(f"unknown conn_method {method!r}; "
                         f"expected one of {tuple(CONNECTIVITIES)}")
    n = n_exc + n_inh
    n_pre = n_exc if pre == "E" else n_inh
    probability = CONNECTIVITIES[method]
    if probability is None:
        return Connectivity(n_pre, n, None)
    offset = 0 if pre == "E" else n_exc
    autapse = np.zeros((n_pre, n), dtype=bool)
    autapse[np.arange(n_pre), offset + np.arange(n_pre)] = True
    p = probability(pre, n_exc, n_inh, prob, sigma)
    mask = (rng.random((n_pre, n)) < p) & ~autapse
    return Connectivity(n_pre, n, mask)


def draw_connectivity(cfg: Any, layout: str, rng: np.random.Generator,
                      structure: Optional[Dict[str, np.ndarray]] = None,
                      connectome: Any = None) -> tuple[str, Connectivity, Connectivity]:
    """The recurrent layout ("auto": dense for dense nets, else CSR) and the E and I
    connectivity of network settings `cfg`: those of an ordered `connectome`
    (models.networks.connectome), else drawn from `rng` (E first) or read from a saved
    `structure`."""
    if layout == "auto":
        layout = "dense" if cfg.conn_method == "dense" else "csr"
    if connectome is not None:
        exists, n_exc, n = connectome.matrix() > 0, connectome.n_exc, connectome.n
        return (layout, Connectivity(n_exc, n, exists[:n_exc]),
                Connectivity(n - n_exc, n, exists[n_exc:]))
    n_exc, n_inh, n = cfg.n_exc, cfg.n_inh, cfg.n_rec
    if structure is not None:
        return (layout, Connectivity(n_exc, n, structure.get("mask_E")),
                Connectivity(n_inh, n, structure.get("mask_I")))
    return (layout, make_connectivity(cfg.conn_method, "E", n_exc, n_inh, rng, cfg.conn_prob,
                                      cfg.conn_sigma),
            make_connectivity(cfg.conn_method, "I", n_exc, n_inh, rng, cfg.conn_prob,
                              cfg.conn_sigma))


WeightInit = Callable[[Connectivity, float, np.random.Generator], np.ndarray]


def half_normal_weights(conn: Connectivity, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Non-negative initial weights |N(0, 1)| * scale / sqrt(mean in-degree), zero off-mask."""
    fan_in = max(conn.n_syn / conn.n_post, 1.0)
    w = np.abs(rng.standard_normal((conn.n_pre, conn.n_post))) * (scale / np.sqrt(fan_in))
    if conn.mask is not None:
        w = w * conn.mask
    return w.astype(np.float32)


def kaiming_abs_weights(conn: Connectivity, scale: float, rng: np.random.Generator) -> np.ndarray:
    """|N(0, scale / n_pre)| magnitudes (Kaiming-normal variance over the full fan-in, as the
    authors' KaimingNormal(scale)), zero off-mask; Dale's sign comes from the projection."""
    w = np.abs(rng.standard_normal((conn.n_pre, conn.n_post))) * np.sqrt(scale / conn.n_pre)
    if conn.mask is not None:
        w = w * conn.mask
    return w.astype(np.float32)
