"""The repository's NWB writer: current-clamp recordings as the fitting scripts read them
(benchmarks/population_fit writes its population with it, the tests their files)."""
from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Mapping

import numpy as np


def write_nwb(path: str | Path, cells: Mapping[str, tuple[np.ndarray, np.ndarray]],
              dt_ms: float = 0.01, *, dtype: type | None = None, description: str = "cells",
              rates_hz: Mapping[tuple[str, int], float] | None = None,
              voltage_clamp: bool = False, stimuli: bool = True, table: bool = True) -> str:
    """An NWB file at `path` holding `cells`: {electrode: (current [N, T] nA, voltage [N, T]
    mV)}, one sweep per row: the stimulus in pA (conversion 1e-12 A), the response in mV
    (conversion 1e-3 V), both cast to `dtype` (None: as given), sweep k of the file starting
    at 10 k s, paired through the intracellular recordings table (`table` False: by
    electrode and sweep_number only). `rates_hz`: {(electrode, sweep): rate} overrides;
    `voltage_clamp`: the same numbers as a clamp voltage and a current response (a file the
    fitting scripts refuse); `stimuli` False: responses only. Written under a temporary name,
    then renamed; returns the path as a string (as --data takes it)."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.icephys import (CurrentClampSeries, CurrentClampStimulusSeries,
                               VoltageClampSeries, VoltageClampStimulusSeries)

    def cast(data: np.ndarray) -> np.ndarray:
        return data if dtype is None else data.astype(dtype)

    path = Path(path)
    nwb = NWBFile(description, path.stem,
                  datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    device = nwb.create_device("amplifier")
    sweep = 0
    for name, (current, voltage) in cells.items():
        electrode = nwb.create_icephys_electrode(name=name, description="patch",
                                                 device=device)
        for k in range(len(current)):
            rate = (rates_hz or {}).get((name, k), 1000.0 / dt_ms)
            common = dict(electrode=electrode, rate=rate, sweep_number=np.uint32(sweep), gain=1.0,
                          starting_time=10.0 * sweep)
            if voltage_clamp:
                stim = VoltageClampStimulusSeries(name=f"stim_{name}_{k}", data=cast(voltage[k]),
                                                  conversion=1e-3, **common)
                resp = VoltageClampSeries(name=f"resp_{name}_{k}", data=cast(current[k] * 1e3),
                                          conversion=1e-12, **common)
            else:
                stim = CurrentClampStimulusSeries(name=f"stim_{name}_{k}",
                                                  data=cast(current[k] * 1e3), conversion=1e-12,
                                                  **common)
                resp = CurrentClampSeries(name=f"resp_{name}_{k}", data=cast(voltage[k]),
                                          conversion=1e-3, **common)
            if table:
                nwb.add_intracellular_recording(electrode=electrode, response=resp,
                                                stimulus=stim if stimuli else None)
            else:
                nwb.add_acquisition(resp)
                if stimuli:
                    nwb.add_stimulus(stim)
            sweep += 1
    tmp = path.with_name(path.stem + ".part.nwb")  # pynwb wants the .nwb suffix
    with NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwb)
    os.replace(tmp, path)
    return str(path)
