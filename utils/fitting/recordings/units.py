"""Units of recorded series: a voltage or current unit (SI, SI-prefixed, or spelled out) to
the factor that brings its values to mV or nA."""
from __future__ import annotations

from utils.run import UserError

_PREFIX = {"": 1.0, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9, "p": 1e-12, "k": 1e3}
_BASE = {"volt": "V", "volts": "V", "ampere": "A", "amperes": "A", "amp": "A", "amps": "A"}
_TO = {"V": ("mV", 1e3), "A": ("nA", 1e9)}  # SI unit -> (our unit, factor)


def si_scale(unit: str) -> tuple[float, str] | None:
    """('mV' -> (1e-3, 'V')), ('amperes' -> (1, 'A')): the unit's factor to its SI base, or
    None for a unit that is no voltage or current."""
    text = unit.strip()
    if text.lower() in _BASE:
        return 1.0, _BASE[text.lower()]
    base, prefix = text[-1:], text[:-1]
    if base in ("V", "A") and prefix in _PREFIX:
        return _PREFIX[prefix], base
    return None


def unit_base(unit: str) -> str | None:
    """'V' for a voltage unit, 'A' for a current unit, None otherwise."""
    scale = si_scale(unit)
    return scale[1] if scale else None


def unit_factor(unit: str, base: str, what: str) -> float:
    """Factor from `unit` (e.g. 'volts', 'mV', 'pA') to mV (base V) or nA (base A); UserError
    naming `what` for a unit of another kind."""
    scale = si_scale(unit)
    if scale is None or scale[1] != base:
        kind = "voltage (volts, V, mV)" if base == "V" else "current (amperes, A, nA, pA)"
        raise UserError(f"the {what} is in {unit!r}, not a {kind} unit")
    return scale[0] * _TO[base][1]
