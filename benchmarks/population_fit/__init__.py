"""A population of HH cells simulated by Brian2, fitted by this project in one run, against the
single-cell script run once per cell and against Brian2 + nevergrad DE per cell.

    python -m benchmarks.population_fit                              # 100 cells, the bars
    python -m benchmarks.population_fit --cells 4 --single_cells 2 --brian2_cells 1

1. The recordings: `--cells` Traub-Miles cells whose gl, g_na and g_kd are drawn log-uniformly
   between (1 - spread) and (1 + spread) times models/hh.py's defaults (the rest at the
   defaults), each run on the authors' five step currents (the HH script's protocol, dt 0.01
   ms) by Brian2 (benchmarks/brian2_population.py, RK4 at dt / --substeps), plus Gaussian
   noise; written as ONE NWB file (one electrode per cell, its sweeps as CurrentClampSeries
   in mV with paired CurrentClampStimulusSeries in pA), the truth beside it (truth.json).
2. The population run: `neuron_fitting_of_hh_model.py --data FILE --methods gradient` in a
   fresh process with an empty JAX compilation cache, timed whole (imports included).
3. The single-cell script, once per cell (`--cells ID`), each a fresh process; the first
   starts with an empty cache, the others reuse it (as a user's repeated runs would);
   `--single_cells K` of them are timed and the total extrapolated to every cell.
4. Brian2 + nevergrad DE per cell (benchmarks/brian2_fit.py, as benchmarks/hh_peers.py runs
   it): seconds to the noise floor (RMSE within 3% of the noise) from its best-so-far history;
   `--brian2_cells K` cells timed, extrapolated to every cell.
5. The bars: every cell's RMSE / noise <= 1.03; at least 98% of cells with every free
   parameter within 5% of its truth, and each free parameter's median signed error over the
   cells within 0.5% (no bias from the model's step); population run <= 0.15 x Brian2 + DE's
   time to the floor for all cells; single-cell runs >= 5 x the population run.

Results: population_fit.json and population_fit.md in the run folder (default
results/benchmarks/population_fit/<time>/), a table on the terminal. The benchmark's parts:
recordings.py (1), fitters.py (2-4), verdict.py (5), __main__.py (the command line).
"""
from __future__ import annotations

import time

T0 = time.perf_counter()


def say(text: str) -> None:
    """A progress line with the seconds since the benchmark started."""
    print(f"[{time.perf_counter() - T0:7.1f} s] {text}", flush=True)
