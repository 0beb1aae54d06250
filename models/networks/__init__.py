"""The conductance-based E/I spiking networks trained on tasks (task_training.py), after Wang
et al. (2024, arXiv 2406.19708), section "task training".

    connectivity.py  CONNECTIVITIES (dense, rand, gaussian), drawing masks and initial weights
    anatomy.py       CONNECTOMES (pd14, celegans, file): networks from anatomical data
    connectome.py    Connectome, and its CSV files (--connectome DIR)
    projection.py    Projection: non-negative weights (Dale's law) in braintrace's products
    base.py          EINetwork: what every network shares (projections, readout, states)
    alif.py, gif.py  one network class per neuron model

This module holds what a command line needs without importing JAX: `NetConfig` (every network
setting) and `NEURONS`, the one list of neuron models. Adding one is a subclass of
`EINetwork` and one entry:

    NEURONS["my_neuron"] = NeuronSpec("my_package.my_module:MyNet", defaults={}, summary="...")
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from models.networks.anatomy import (CONNECTOMES, PD14_MIN_N, check_connectome, data_size,
                                     pd14_rec_scale, split_pops)
from models.networks.connectivity import CONNECTIVITIES
from models.registry import Registry, load
from utils.settings import (Settings, nonneg_float, positive_float, setting)

__all__ = ["NetConfig", "NeuronSpec", "NEURONS", "build_net", "EXC_FRACTION", "INH_TYPES",
           "conn_methods"]

EXC_FRACTION = 0.8
INH_TYPES = ("regular", "fast_spiking")


def conn_methods() -> Dict[str, Any]:
    """Every --conn_method: the generic connectivities, then the connectomes."""
    return {**CONNECTIVITIES, **CONNECTOMES}



@dataclass(frozen=True)
class NeuronSpec:
    """A registered neuron model: its network class ('module:Class', imported when used), the
    defaults of the settings whose default depends on the neuron, a one-line summary, the
    surrogate half-width BPTT trains it with (narrower than the online rules' 1: with width 1
    the recurrent loop's BPTT Jacobian has gain above 1 and the gradients explode; docs/NOTES.md,
    "The surrogate width of BPTT"), and its excitatory reversal potential (the class's E_EXC;
    pd14's synapses are sized by the PSP it gives)."""

    network: str
    defaults: Dict[str, float] = field(default_factory=dict)
    summary: str = ""
    bptt_surrogate_width: float = 0.5
    e_exc: float = 3.0

    @property
    def net_class(self) -> type:
        """The network class (imports it)."""
        return load(self.network)


NEURONS: Registry = Registry({
    "gif": NeuronSpec(
        "models.networks.gif:GIFNet",
        {"tau_neu": 200.0, "ff_scale": 4.0, "rec_scale": 2.0, "lr": 3e-3, "lr_decay": 0.9},
        "generalised IF (after-spike currents, adaptive threshold), E 5 / I -10, "
        "standardised-membrane readout (the authors' BrainScale net; all methods learn)",
        bptt_surrogate_width=0.4, e_exc=5.0),
    "alif": NeuronSpec(
        "models.networks.alif:ALIFNet",
        {"tau_neu": 100.0, "ff_scale": 1.0, "rec_scale": 1.0, "lr": 1e-3, "lr_decay": 1.0},
        "adaptive LIF, E 3 / I -3, spike readout (best for bptt; expsm_diag learns it "
        "backwards)"),
})


def per_neuron(name: str) -> str:
    """'200 for gif, 100 for alif': a setting's default by neuron model."""
    return ", ".join(f"{spec.defaults[name]:g} for {neuron}" for neuron, spec in NEURONS.items()
                     if name in spec.defaults)


def _per_neuron_setting(help: str, name: str) -> Any:
    return setting(None, help, type=positive_float, default_text=lambda: per_neuron(name))


@dataclass(frozen=True)
class NetConfig(Settings):
    """Every setting of an E/I network (times in ms). None: the neuron model's default
    (NEURONS[neuron].defaults, filled in by `resolved`)."""

    neuron: str = setting(
        "gif", lambda: "neuron model: " + "; ".join(f"{k}: {v.summary}"
                                                    for k, v in NEURONS.items()),
        choices=lambda: NEURONS)
    conn_method: str = setting(
        "dense", "recurrent connectivity: dense all-to-all, rand fixed probability, gaussian "
        "ring (80% E, 20% I); or from anatomy: pd14 the cortical microcircuit of Potjans & "
        "Diesmann 2014 scaled to --n_rec, celegans the C. elegans chemical connectome (Cook et "
        "al. 2019; --n_rec is its 302 neurons), file a connectome of your own (--connectome)",
        choices=conn_methods)
    connectome: Optional[str] = setting(
        None, "folder with cells.csv and edges.csv of your own connectome (implies "
        "--conn_method file; format in README, \"Networks from anatomy\")")
    input_pops: str = setting(
        "", "populations of a connectome that receive the input, comma-separated",
        default_text="the connectome's own: pd14 L4E,L4I,L6E,L6I; celegans sensory; file the "
        "input column of its cells.csv")
    readout_pops: str = setting(
        "", "populations of a connectome that the readout reads, comma-separated",
        default_text="pd14 L5E; celegans every neuron; file the readout column of its cells.csv")
    n_rec: int = setting(200, "number of recurrent neurons (the data's size for celegans and "
                         "file)", type=int)
    w_ei_ratio: float = setting(4.0, "initial inhibitory / excitatory weight ratio",
                                type=positive_float)
    conn_prob: float = setting(0.1, "connection probability of --conn_method rand",
                               type=positive_float)
    conn_sigma: float = setting(20.0, "width of --conn_method gaussian, in neuron spacings on "
                                "the ring", type=positive_float)
    dt: float = setting(1.0, "time step (ms)", type=positive_float)
    tau_neu: Optional[float] = _per_neuron_setting("membrane time constant (ms)", "tau_neu")
    tau_syn: float = setting(10.0, "synaptic conductance decay (ms)", type=positive_float)
    tau_a: float = setting(1000.0, "alif: mean adaptation time constant (ms); drawn uniformly "
                           "in [0.5, 1.5] x tau_a", type=positive_float)
    tau_out: float = setting(10.0, "readout time constant (ms)", type=positive_float)
    beta: float = setting(1.0, "alif: adaptation strength", type=nonneg_float)
    ff_scale: Optional[float] = _per_neuron_setting("scale of initial input weights", "ff_scale")
    rec_scale: Optional[float] = setting(
        None, "scale of initial recurrent weights (networks from anatomy: the mean summed "
        "weight onto a cell)", type=positive_float,
        default_text=lambda: per_neuron("rec_scale") + "; pd14: each synapse the paper's PSP "
        "K-scaled to --n_rec")
    tau_I2: float = setting(10000.0, "gif: decay (ms) of the slow after-spike current I2 (the "
                            "delay's memory)", type=positive_float)
    A2: float = setting(1.0, "gif: I2 change per spike (I2 -= A2: a slow hyperpolarising "
                        "current)", type=nonneg_float)
    tau_I1: float = setting(50.0, "gif: decay (ms) of the fast after-spike current I1",
                            type=positive_float)
    A1: float = setting(0.01, "gif: I1 change per spike (I1 += A1)", type=nonneg_float)
    tau_th: float = setting(100.0, "gif: decay (ms) of the threshold back to 1",
                            type=positive_float)
    Ath: float = setting(1.0, "gif: threshold increase per spike", type=nonneg_float)
    inh_type: str = setting(
        "regular", "inhibitory cells: regular, the excitatory cells' parameters; fast_spiking, "
        "spike-triggered adaptation x --inh_adapt_ratio (default 0: gif, no slow current I2 and "
        "no threshold increase; alif, beta 0) and the membrane time constant x "
        "--inh_tau_ratio, as cortical fast-spiking interneurons", choices=INH_TYPES)
    inh_tau_ratio: float = setting(0.4, "fast_spiking: membrane time constant of inhibitory "
                                   "cells / excitatory cells'", type=positive_float)
    inh_adapt_ratio: float = setting(0.0, "fast_spiking: spike-triggered adaptation of "
                                     "inhibitory cells / excitatory cells' (gif: A2 and Ath; "
                                     "alif: beta); 0, none", type=nonneg_float)
    n_in: int = setting(100, "input channels (the task's)", cli=False)
    n_out: int = setting(2, "readout units (the task's choices)", cli=False)
    n_background: int = setting(0, "the task's last input channels that are background "
                                "(noise): in a network from anatomy they reach every cell",
                                cli=False)

    @property
    def n_exc(self) -> int:
        return int(round(self.n_rec * EXC_FRACTION))

    @property
    def n_inh(self) -> int:
        return self.n_rec - self.n_exc

    @property
    def spec(self) -> NeuronSpec:
        """The registered neuron model."""
        return NEURONS[self.neuron]

    def cell_types(self) -> dict:
        """The inhibitory cells' type as metrics.json records it, with the fast-spiking cells'
        ratios to the excitatory cells' parameters (None for regular cells)."""
        fast = self.inh_type == "fast_spiking"
        return {"inh_type": self.inh_type, "inh_tau_ratio": self.inh_tau_ratio if fast else None,
                "inh_adapt_ratio": self.inh_adapt_ratio if fast else None}

    def resolved(self) -> "NetConfig":
        """A copy with every None replaced by the neuron model's default."""
        if self.neuron not in NEURONS:
            return self
        defaults = self.spec.defaults
        changes = {k: defaults[k] for k in self.flag_names()
                   if getattr(self, k) is None and k in defaults}
        if self.conn_method == "pd14" and self.rec_scale is None and self.n_rec >= PD14_MIN_N:
            tau_neu = changes.get("tau_neu", self.tau_neu)
            changes["rec_scale"] = pd14_rec_scale(self.n_rec, self.spec.e_exc, self.tau_syn,
                                                  tau_neu)
        if self.connectome is not None and self.conn_method == "dense":
            changes["conn_method"] = "file"
        return self.replace(**changes)

    def check(self) -> None:
        """ValueError naming the flag of the first setting out of range."""
        cfg = self.resolved()
        if cfg.neuron not in NEURONS:
            raise ValueError(f"--neuron must be one of {tuple(NEURONS)}, got {cfg.neuron!r}")
        if cfg.conn_method not in conn_methods():
            raise ValueError(f"--conn_method must be one of {tuple(conn_methods())}, got "
                             f"{cfg.conn_method!r}")
        cfg.check_anatomy()
        for name in ("tau_neu", "ff_scale", "rec_scale", "tau_I2", "tau_I1", "tau_th"):
            if not getattr(cfg, name) > 0:
                raise ValueError(f"--{name} must be > 0, got {getattr(cfg, name)}")
        for name in ("A2", "A1", "Ath"):
            if not getattr(cfg, name) >= 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(cfg, name)}")
        if cfg.inh_type not in INH_TYPES:
            raise ValueError(f"--inh_type must be one of {INH_TYPES}, got {cfg.inh_type!r}")
        if not 0.0 < cfg.inh_tau_ratio <= 1.0:
            raise ValueError(f"--inh_tau_ratio must be in (0, 1], got {cfg.inh_tau_ratio}")
        if not 0.0 <= cfg.inh_adapt_ratio <= 1.0:
            raise ValueError(f"--inh_adapt_ratio must be in [0, 1], got {cfg.inh_adapt_ratio}")
        if cfg.n_rec < 5:
            raise ValueError(f"--n_rec must be >= 5 (need E and I neurons), got {cfg.n_rec}")
        if cfg.conn_prob > 1.0:
            raise ValueError(f"--conn_prob must be in (0, 1], got {cfg.conn_prob}")
        tau_inh = cfg.tau_neu * (cfg.inh_tau_ratio if cfg.inh_type == "fast_spiking" else 1.0)
        if cfg.dt > min(cfg.tau_neu, tau_inh, cfg.tau_syn, cfg.tau_out):
            raise ValueError(f"--dt {cfg.dt} ms is larger than a time constant")


    def check_anatomy(self) -> None:
        """ValueError for anatomy flags that do not fit --conn_method."""
        if self.connectome is not None and self.conn_method != "file":
            raise ValueError(f"--connectome is a connectome of your own: it cannot be used "
                             f"with --conn_method {self.conn_method}")
        if self.conn_method == "file" and not self.connectome:
            raise ValueError("--conn_method file needs --connectome DIR")
        if (split_pops(self.input_pops) or split_pops(self.readout_pops)) and \
                self.conn_method not in CONNECTOMES:
            raise ValueError(f"--input_pops and --readout_pops need a network with populations "
                             f"(--conn_method {', '.join(CONNECTOMES)}), not {self.conn_method}")
        if self.conn_method == "pd14" and self.n_rec < PD14_MIN_N:
            raise ValueError(f"--n_rec must be >= {PD14_MIN_N} for pd14 (every population "
                             f"needs a cell), got {self.n_rec}")
        if self.conn_method in CONNECTOMES:
            check_connectome(self)  # reads a data connectome (cached)

    def data_size(self) -> Optional[int]:
        """The number of cells of a data connectome (celegans, file: --n_rec must be it),
        else None; reads the data."""
        return data_size(self.resolved())


def build_net(cfg: NetConfig, seed: int, **kwargs: Any) -> Any:
    """The network of `cfg` (its neuron's defaults filled in), drawn from `seed`; keyword
    options as `models.networks.base.EINetwork`."""
    cfg = cfg.resolved()
    if cfg.neuron not in NEURONS:
        raise ValueError(f"unknown neuron {cfg.neuron!r}; expected one of {tuple(NEURONS)}")
    return cfg.spec.net_class(cfg, seed, **kwargs)
