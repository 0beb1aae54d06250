"""The tables of benchmarks/hh_dimensions.py and gif_dimensions.py: every method's fit at each
number of free parameters, against the noise floor and at equal wall time."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.kit.base import time_to, write_result
from benchmarks.kit.hh import FLOOR


def best_at(history: list, seconds: float) -> float | None:
    """The best loss a history [[s, n, best], ...] had reached by `seconds`."""
    reached = [h[2] for h in history if h[0] <= seconds]
    return min(reached) if reached else None


def size_rows(runs: dict, free: tuple, noise_mV: float, truth: dict) -> dict:
    """The table of one size: per method (runs: name -> history, mse, params, wall_s,
    n_evals), time to the noise floor, wall time, RMSE / noise, largest parameter error against
    `truth`, and the best loss at the wall time of the gradient method."""
    equal = runs["gradient"]["wall_s"]
    floor = (FLOOR * noise_mV) ** 2
    rows = [{"method": name, "to_floor_s": time_to(r["history"], floor), "wall_s": r["wall_s"],
             "rmse_over_noise": float(np.sqrt(r["mse"]) / noise_mV),
             "max_rel_err": max(abs(r["params"][k] / truth[k] - 1.0) for k in free),
             "n_evals": r["n_evals"], "best_at_equal_time": best_at(r["history"], equal)}
            for name, r in runs.items()]
    return {"free": list(free), "equal_time_s": equal, "rows": rows}


def markdown(result: dict) -> str:
    """One size's table."""
    lines = [f"{len(result['free'])} free ({', '.join(result['free'])}); equal wall time = "
             f"L-BFGS-B's {result['equal_time_s']:.1f} s", "",
             "| method | s to noise floor | wall s | RMSE / noise | max param error | sims | "
             "best MSE at equal time |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        floor = "never" if r["to_floor_s"] is None else f"{r['to_floor_s']:.2f}"
        at = "-" if r["best_at_equal_time"] is None else f"{r['best_at_equal_time']:.4g}"
        lines.append(f"| {r['method']} | {floor} | {r['wall_s']:.1f} | {r['rmse_over_noise']:.3f}"
                     f" | {100 * r['max_rel_err']:.1f}% | {r['n_evals']} | {at} |")
    return "\n".join(lines)


def report(out: Path, name: str, noise_mV: float, results: list, **extra) -> dict:
    """Print every size's table and write them (and `extra`) as the result of benchmark
    `name` into `out`."""
    text = "\n\n".join(markdown(r) for r in results)
    print(text)
    write_result(name, {"noise_mV": noise_mV, "sizes": results, **extra}, out)
    return {"sizes": results, "table": text}
