"""Electrophysiological features of recording and fitted model side by side, by eFEL (the
Blue Brain Project's feature extraction library, as BluePyOpt uses it), sweep by sweep over
each sweep's first depolarizing step (its first step where none depolarizes). A model whose
spikes are resets (GIF) has each spike marked in its voltage for eFEL to find, and no
waveform features (AP amplitude and width)."""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Sequence

import numpy as np

from utils.fitting.features import epochs

__all__ = ["FEATURES", "WAVEFORM", "sweep_features", "marked_spikes", "compare_features",
           "format_features"]

# eFEL feature -> what the report calls it
FEATURES = {"spike_count_stimint": "spike count", "AP_amplitude": "AP amplitude (mV)",
            "spike_half_width": "AP half width (ms)", "ISI_CV": "ISI CV",
            "adaptation_index2": "adaptation index", "voltage_base": "resting potential (mV)",
            "ohmic_input_resistance_vb_ssse": "input resistance (MOhm)"}
WAVEFORM = ("AP_amplitude", "spike_half_width")  # what a reset model's voltage cannot show
MARGIN_MS = 100.0  # of the trace kept before and after the step
SPIKE_MARK_MV = 20.0  # a reset model's spike, as one sample eFEL's -20 mV detector crosses


class _Deferred(types.ModuleType):
    """Stands in sys.modules for a module not imported yet: `import name` binds it, and the
    first attribute read imports the real module (which then replaces it) and reads there."""

    def __getattr__(self, attr: str):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def _defer_import(name: str) -> None:
    """Make `import name` cost nothing until the module is used (unless imported already or
    absent)."""
    if name not in sys.modules and importlib.util.find_spec(name) is not None:
        sys.modules[name] = _Deferred(name)


# eFEL imports its file reader's dependency neo (0.3 s), which features of arrays never use
# (docs/NOTES.md S12)
_defer_import("neo")


def _step(current: np.ndarray) -> tuple[int, int] | None:
    """The sample range of a sweep's first depolarizing step, else of its first step (None: a
    constant stimulus)."""
    parts = epochs(current)[1:]
    rising = [p for p in parts if current[p[0]] > current[0]]
    return (rising or parts or [None])[0]


def sweep_features(current: np.ndarray, voltage: np.ndarray, dt: float) -> dict:
    """The FEATURES of one sweep over its first step (None where eFEL finds none, e.g. an AP
    amplitude without spikes); every value None for a constant stimulus."""
    import efel

    step = _step(current)
    if step is None:
        return {name: None for name in FEATURES}
    start, stop = step
    margin = int(round(MARGIN_MS / dt))
    lo, hi = max(0, start - margin), min(len(voltage), stop + margin)
    trace = {"T": np.arange(lo, hi) * dt, "V": np.asarray(voltage[lo:hi], dtype=float),
             "stim_start": [start * dt], "stim_end": [stop * dt],
             "stimulus_current": [float(current[start] - current[start - 1])]}
    values = efel.get_feature_values([trace], list(FEATURES), raise_warnings=False)[0]
    return {name: (float(np.mean(v)) if v is not None and len(v) else None)
            for name, v in values.items()}


def marked_spikes(voltage: np.ndarray, times: np.ndarray, dt: float) -> np.ndarray:
    """`voltage` [T] with the sample at each spike time (ms) set to SPIKE_MARK_MV."""
    marked = np.array(voltage, dtype=float)
    k = np.clip(np.round(np.asarray(times) / dt).astype(int), 0, len(marked) - 1)
    marked[k] = SPIKE_MARK_MV
    return marked


def _model_features(current: np.ndarray, voltage: np.ndarray, dt: float,
                    spikes: np.ndarray | None) -> dict:
    """A model sweep's FEATURES; with `spikes` (a reset model's spike times) the spikes are
    marked in the voltage and the waveform features are None."""
    if spikes is None:
        return sweep_features(current, voltage, dt)
    found = sweep_features(current, marked_spikes(voltage, spikes, dt), dt)
    return {name: None if name in WAVEFORM else v for name, v in found.items()}


def compare_features(current: np.ndarray, v_cell: np.ndarray, v_model: np.ndarray, dt: float,
                     numbers: Sequence[int],
                     model_spikes: Sequence[np.ndarray] | None = None) -> list[dict]:
    """Per sweep: its number and the features of the cell and of the model (`model_spikes`:
    the spike times of a model whose spikes are resets, per sweep)."""
    spikes = model_spikes if model_spikes is not None else [None] * len(numbers)
    return [{"sweep": int(n), "cell": sweep_features(i, vc, dt),
             "model": _model_features(i, vm, dt, sm)}
            for n, i, vc, vm, sm in zip(numbers, current, v_cell, v_model, spikes)]


def _median(rows: Sequence[dict], who: str, name: str) -> float | None:
    values = [r[who][name] for r in rows if r[who][name] is not None]
    return float(np.median(values)) if values else None


def format_features(rows: Sequence[dict], title: str) -> str:
    """The printed table: each feature's median over the sweeps, cell and model."""
    lines = [f"{title:<28}{'cell':>12}{'model':>12}"]
    for name, label in FEATURES.items():
        cell, model = _median(rows, "cell", name), _median(rows, "model", name)
        lines.append(f"{label:<28}" + "".join(
            ("-" if v is None else format(v, ".4g")).rjust(12) for v in (cell, model)))
    return "\n".join(lines)
