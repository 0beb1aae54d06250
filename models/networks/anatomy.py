"""Networks from anatomy: `CONNECTOMES` is the one list of them (name -> builder
(settings, rng) -> Connectome), beside the generic CONNECTIVITIES of connectivity.py.

    pd14      the cortical microcircuit of Potjans and Diesmann (2014, Cereb Cortex 24:785),
              scaled to --n_rec: 8 populations in the paper's relative sizes, connection
              probabilities of its Table 5 (target x source), the L4E -> L2/3E weight doubled
              as in the paper; input to L4 and L6 (the thalamic targets), readout from L5E
    celegans  the C. elegans hermaphrodite chemical synapses (Cook et al. 2019, Nature
              571:63), signs from neurotransmitter identity (data/connectomes/
              celegans_cook2019/SOURCE.md); input to the sensory neurons, readout from every
              neuron
    file      a user's own connectome (--connectome DIR; models/networks/connectome.py)

Initial magnitudes are proportional to the connectome's weights, scaled so that the mean
summed synaptic weight onto a neuron is --rec_scale (x --w_ei_ratio for inhibitory synapses).
pd14's default --rec_scale gives each synapse the paper's PSP K-scaled to --n_rec
(`pd14_rec_scale`); the others' is the neuron model's. Data are read when a network is built,
never at import.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from models.networks.connectome import Connectome, ConnectomeError, read_connectome

__all__ = ["CONNECTOMES", "DATA_CONNECTOMES", "PD14_POPULATIONS", "PD14_SIZES",
           "PD14_PROBABILITY", "PD14_PSP", "pd14_sizes", "pd14_rec_scale", "psp_peak",
           "make_connectome", "check_connectome", "data_size", "initial_weights", "split_pops",
           "CELEGANS_DIR", "PD14_MIN_N"]

CELEGANS_DIR = Path(__file__).resolve().parents[2] / "data" / "connectomes" / "celegans_cook2019"

PD14_POPULATIONS = ("L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I")
PD14_SIZES = (20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948)  # full scale (Table 5)
# connection probability, target (rows) x source (columns), Potjans & Diesmann 2014 Table 5
PD14_PROBABILITY = np.array([
    [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0, 0.0076, 0.0],
    [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0, 0.0042, 0.0],
    [0.0077, 0.0059, 0.0497, 0.1350, 0.0067, 0.0003, 0.0453, 0.0],
    [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0, 0.1057, 0.0],
    [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0],
    [0.0548, 0.0269, 0.0257, 0.0022, 0.0600, 0.3158, 0.0086, 0.0],
    [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],
    [0.0364, 0.0010, 0.0034, 0.0005, 0.0277, 0.0080, 0.0658, 0.1443]])
PD14_INPUT, PD14_READOUT = ("L4E", "L4I", "L6E", "L6I"), ("L5E",)
PD14_DOUBLED = ("L4E", "L23E")  # source, target of the doubled weight
PD14_MIN_N = 80  # every population keeps at least one cell
# one synapse's PSP / (threshold - rest) at full scale: 0.15 mV, rest -65 mV, threshold -50 mV
# (Potjans & Diesmann 2014, Table 5)
PD14_PSP = 0.15 / 15.0


def split_pops(text: str) -> Tuple[str, ...]:
    """'L4E, L6E' -> ('L4E', 'L6E'); '' -> ()."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


def pd14_sizes(n_rec: int) -> np.ndarray:
    """Population sizes in the paper's proportions summing to n_rec (largest remainder)."""
    exact = np.array(PD14_SIZES, dtype=float) * n_rec / sum(PD14_SIZES)
    sizes = np.floor(exact).astype(int)
    order = np.argsort(-(exact - sizes), kind="stable")
    sizes[order[:n_rec - sizes.sum()]] += 1
    return sizes


def psp_peak(e_rev: float, tau_syn: float, tau_neu: float) -> float:
    """Peak (threshold units) of the PSP that a unit conductance jump, decaying with tau_syn,
    causes in a membrane at rest (0) with time constant tau_neu, driving force e_rev."""
    if np.isclose(tau_syn, tau_neu):
        return float(e_rev / np.e)
    t = tau_neu * tau_syn * np.log(tau_neu / tau_syn) / (tau_neu - tau_syn)
    return float(e_rev * tau_syn / (tau_neu - tau_syn)
                 * (np.exp(-t / tau_neu) - np.exp(-t / tau_syn)))


def pd14_rec_scale(n_rec: int, e_exc: float, tau_syn: float, tau_neu: float) -> float:
    """pd14's --rec_scale (the mean summed weight onto a cell) when every synapse is K-scaled:
    each gives the paper's full-scale PSP (PD14_PSP) x sqrt(K_full / K), as in-degrees K shrink
    with the cell count and weights grow as 1/sqrt(K) (the downscaling of Potjans and
    Diesmann's model: van Albada, Helias and Diesmann 2015, PLoS Comput Biol 11:e1004490),
    times the expected summed weight onto a cell at n_rec cells. With the table's
    probabilities kept, K_full / K is the ratio of cell counts."""
    sizes = pd14_sizes(n_rec).astype(float)
    weight = np.ones_like(PD14_PROBABILITY)
    weight[PD14_POPULATIONS.index(PD14_DOUBLED[1]), PD14_POPULATIONS.index(PD14_DOUBLED[0])] = 2
    pre = sizes[None, :] - np.eye(sizes.size)  # no autapses
    summed = float(sizes @ (PD14_PROBABILITY * weight * pre).sum(axis=1)) / n_rec
    synapse = PD14_PSP * np.sqrt(sum(PD14_SIZES) / n_rec) / psp_peak(e_exc, tau_syn, tau_neu)
    return float(summed * synapse)


def pd14(cfg: Any, rng: np.random.Generator) -> Connectome:
    """The microcircuit at cfg.n_rec cells: every synapse drawn independently with its
    population pair's probability (no autapses); weight 1, 2 for L4E -> L2/3E."""
    sizes = pd14_sizes(cfg.n_rec)
    pop_index = np.repeat(np.arange(len(PD14_POPULATIONS)), sizes)
    p = PD14_PROBABILITY[pop_index[None, :], pop_index[:, None]]  # pre x post
    mask = rng.random(p.shape) < p
    np.fill_diagonal(mask, False)
    pre, post = np.nonzero(mask)
    src, tgt = (PD14_POPULATIONS.index(x) for x in PD14_DOUBLED)
    weight = np.where((pop_index[pre] == src) & (pop_index[post] == tgt), 2.0, 1.0)
    population = np.array(PD14_POPULATIONS)[pop_index]
    counts = np.concatenate([np.arange(s) for s in sizes])
    ids = np.array([f"{p}_{i}" for p, i in zip(population, counts)])
    return Connectome(ids, np.char.endswith(population, "I"), population,
                      np.isin(population, PD14_INPUT), np.isin(population, PD14_READOUT),
                      pre, post, weight)


@lru_cache(maxsize=8)
def _read_cached(folder: str, mtimes: Tuple[float, ...]) -> Connectome:
    return read_connectome(folder)


def _read(folder: Path) -> Connectome:
    """read_connectome, read again only when a file changed."""
    stamps = tuple(p.stat().st_mtime for p in sorted(folder.glob("*.csv"))) \
        if folder.is_dir() else ()
    return _read_cached(str(folder), stamps)


def celegans(cfg: Any, rng: np.random.Generator) -> Connectome:
    """The C. elegans chemical connectome shipped with the repository."""
    return _read(CELEGANS_DIR)


def from_file(cfg: Any, rng: np.random.Generator) -> Connectome:
    """The user's connectome in folder cfg.connectome."""
    if not cfg.connectome:
        raise ConnectomeError("--conn_method file needs --connectome DIR")
    return _read(Path(cfg.connectome))


CONNECTOMES: Dict[str, Callable[[Any, np.random.Generator], Connectome]] = {
    "pd14": pd14, "celegans": celegans, "file": from_file}
DATA_CONNECTOMES = ("celegans", "file")  # their size is the data's: --n_rec must match


def data_size(cfg: Any) -> Optional[int]:
    """The number of cells of a data connectome (None for the others)."""
    if cfg.conn_method not in DATA_CONNECTOMES:
        return None
    return CONNECTOMES[cfg.conn_method](cfg, np.random.default_rng(0)).n


def check_connectome(cfg: Any) -> None:
    """ConnectomeError if cfg's connectome cannot be read, its size is not --n_rec (data
    connectomes) or --input_pops / --readout_pops name an unknown population."""
    if cfg.conn_method == "pd14":
        known = list(PD14_POPULATIONS)
    else:
        conn = CONNECTOMES[cfg.conn_method](cfg, np.random.default_rng(0))
        if conn.n != cfg.n_rec:
            raise ConnectomeError(f"--n_rec {cfg.n_rec}: the {cfg.conn_method} connectome has "
                                  f"{conn.n} neurons (leave --n_rec out)")
        known = conn.populations()
    for role in ("input", "readout"):
        unknown = [p for p in split_pops(getattr(cfg, f"{role}_pops")) if p not in known]
        if unknown:
            raise ConnectomeError(f"--{role}_pops: unknown population(s) {unknown}; the "
                                  f"{cfg.conn_method} connectome has {known}")


def make_connectome(cfg: Any, seed: int,
                    arrays: Optional[Dict[str, np.ndarray]] = None) -> Optional[Connectome]:
    """The connectome of network settings `cfg` in network order (E first), its input and
    readout populations set by cfg.input_pops / cfg.readout_pops; read from saved `arrays`
    if given; None for the generic connectivities. A drawn one (pd14) comes from its own
    generator seeded by [seed, 2], so that the network's other draws are the same whether
    the connectome is drawn or read from files."""
    if arrays is not None:
        return Connectome.from_arrays(arrays)
    if cfg.conn_method not in CONNECTOMES:
        return None
    conn = CONNECTOMES[cfg.conn_method](cfg, np.random.default_rng([seed, 2]))
    if conn.n != cfg.n_rec:
        raise ConnectomeError(f"--n_rec {cfg.n_rec}: the {cfg.conn_method} connectome has "
                              f"{conn.n} neurons")
    conn = conn.with_roles(split_pops(cfg.input_pops), split_pops(cfg.readout_pops))
    for role in ("input", "readout"):
        if not getattr(conn, role).any():
            raise ConnectomeError(f"--{role}_pops: no {role} cell in the {cfg.conn_method} "
                                  "connectome")
    return conn.ordered()


def initial_weights(conn: Connectome, rec_scale: float,
                    w_ei_ratio: float) -> Tuple[np.ndarray, np.ndarray]:
    """Initial E (n_exc, n) and I (n_inh, n) magnitudes of an ordered connectome: its weights
    x rec_scale / (mean summed weight onto a cell), x w_ei_ratio for I rows."""
    w = conn.matrix()
    w *= rec_scale / max(w.sum(axis=0).mean(), np.finfo(float).tiny)
    w[conn.n_exc:] *= w_ei_ratio
    return w[:conn.n_exc].astype(np.float32), w[conn.n_exc:].astype(np.float32)
