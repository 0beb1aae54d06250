"""The verdict of the population benchmark: each cell's accuracy, the bars, the report."""
from __future__ import annotations

import math

import numpy as np

from benchmarks.kit.hh import FLOOR, FREE

PARAM_TOL = 0.05      # a parameter is recovered within 5% of its truth
PARAM_SHARE = 0.98    # ... in at least 98% of cells
PARAM_BIAS = 0.005    # median signed error of each free parameter over the cells: at most
BRIAN2_BAR = 0.15     # population run / (Brian2 + DE to the floor, every cell): at most
SINGLE_BAR = 5.0      # single-cell runs, every cell / population run: at least
SPLIT_TOL = 1e-9      # the table split over processes: relative difference at most


def accuracy(rows: list[dict], truth: dict) -> list[dict]:
    """Per cell: status, RMSE / noise, each free parameter's relative error, and how far our
    integrator is from Brian2's at the cell's truth (RMS mV)."""
    gap = dict(zip(truth["ids"], truth.get("check", {}).get("per_cell_ours_vs_brian2_rms_mV",
                                                             [])))
    out = []
    for r in rows:
        t = truth["cells"][r["cell"]]
        fitted = r["status"] == "fitted"
        signed = {p: r["params"][p] / t[p] - 1.0 if fitted else None for p in FREE}
        rel = {p: None if e is None else abs(e) for p, e in signed.items()}
        out.append({"cell": r["cell"], "status": r["status"], "wall_s": r["wall_s"],
                    "rmse_over_noise": r["rmse_mV"] / truth["noise_mV"] if fitted else None,
                    "max_rel_err": max(rel.values()) if fitted else None, "rel_err": rel,
                    "signed_err": signed,
                    "params": r["params"], "truth": t,
                    "ours_vs_brian2_at_truth_rms_mV": gap.get(r["cell"])})
    return out


def bars(cells: list[dict], pop: dict, single: dict | None, brian2: dict | None,
         split: dict | None) -> list[dict]:
    """Each bar: its measured value, the bar and PASS / FAIL (None: not measured)."""
    n = len(cells)
    ratios = [c["rmse_over_noise"] for c in cells]
    worst = None if any(r is None for r in ratios) else max(ratios)
    within = sum(1 for c in cells if c["max_rel_err"] is not None and c["max_rel_err"] <= PARAM_TOL)
    need = math.ceil(PARAM_SHARE * n - 1e-9)
    out = [{"bar": "accuracy: worst RMSE / noise over every cell", "value": worst,
            "target": f"<= {FLOOR}", "pass": worst is not None and worst <= FLOOR},
           {"bar": f"accuracy: cells with every free parameter within {PARAM_TOL:.0%}",
            "value": within, "target": f">= {need} of {n}", "pass": within >= need}]
    for p in FREE:  # a bias the step or the fit puts into every cell shows in the median
        errs = [c["signed_err"][p] for c in cells if c["signed_err"][p] is not None]
        median = float(np.median(errs)) if errs else None
        out.append({"bar": f"accuracy: median signed error of {p} over the cells",
                    "value": median, "target": f"within +-{PARAM_BIAS:.1%}",
                    "pass": median is not None and abs(median) <= PARAM_BIAS})
    vs_brian2 = pop["wall_s"] / brian2["total_s"] if brian2 else None
    out.append({"bar": "speed: population run / (Brian2 + DE to the floor x cells)"
                + ("" if not brian2 or brian2["all_reached"] else " (an upper bound)"),
                "value": vs_brian2, "target": f"<= {BRIAN2_BAR}",
                "pass": None if vs_brian2 is None else vs_brian2 <= BRIAN2_BAR})
    vs_single = single["total_s"] / pop["wall_s"] if single else None
    out.append({"bar": "speed: single-cell script x cells / population run", "value": vs_single,
                "target": f">= {SINGLE_BAR:g}",
                "pass": None if vs_single is None else vs_single >= SINGLE_BAR})
    out.append({"bar": "scale: the table split over processes, largest relative difference",
                "value": split["max_rel_diff"] if split else None,
                "target": f"<= {SPLIT_TOL:g}, same evaluations",
                "pass": None if split is None else
                split["max_rel_diff"] <= SPLIT_TOL and split["same_n_evals"]})
    return out


def _verdict(bar: dict) -> str:
    return "not measured" if bar["pass"] is None else "PASS" if bar["pass"] else "FAIL"


def bar_lines(bars: list[dict]) -> list[str]:
    """One line per bar for the terminal: its verdict, value and target."""
    return [f"{_verdict(b):>12}  {b['bar']}: {_num(b['value'], '.4g')} ({b['target']})"
            for b in bars]


def _num(x, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def report(result: dict) -> str:
    """The markdown printed and saved: the timings, the bars and the worst cells."""
    pop, single, b2, n = (result["population"], result["single"], result["brian2"],
                          result["config"]["cells"])
    lines = [f"Population of {n} HH cells (Brian2 RK4, {result['data']['noise_mV']} mV noise), "
             f"fitted gl, g_na, g_kd; load average at the start "
             f"{result['load_average'][0]:.2f}.", "",
             "| what | seconds |", "|---|---|",
             f"| population run, one process (cold compilation cache), whole | "
             f"{pop['wall_s']:.1f} |",
             f"| ... per cell | {pop['per_cell_s']:.2f} |",
             f"| ... per cell inside the run (cells.csv wall_s, median) | "
             f"{np.median(pop['in_process_cell_s']):.2f} |"]
    if single:
        lines += [f"| single-cell script, per run (median of {single['cells_timed']}) | "
                  f"{np.median(single['walls_s']):.1f} |",
                  f"| single-cell script x {n} cells | {single['total_s']:.1f} |"]
    if b2:
        lines += [f"| Brian2 + DE to the noise floor, per cell (mean of {b2['cells_timed']}) | "
                  f"{b2['per_cell_s']:.1f} |",
                  f"| Brian2 + DE to the noise floor x {n} cells | {b2['total_s']:.1f} |"]
    lines += ["", "| bar | measured | target | result |", "|---|---|---|---|"]
    for b in result["bars"]:
        lines.append(f"| {b['bar']} | {_num(b['value'], '.4g')} | {b['target']} | {_verdict(b)} |")
    cells = sorted(result["cells"], key=lambda c: -1.0 if c["max_rel_err"] is None
                   else -c["max_rel_err"])
    lines += ["", f"Cells by largest parameter error ({min(len(cells), 10)} of {n}):", "",
              "| cell | status | RMSE / noise | " + " | ".join(f"{p} err" for p in FREE)
              + " | s in run | ours vs Brian2 at truth, RMS mV |",
              "|---|---|---|" + "---|" * len(FREE) + "---|---|"]
    for c in cells[:10]:
        lines.append(f"| {c['cell']} | {c['status']} | {_num(c['rmse_over_noise'], '.4f')} | "
                     + " | ".join(_num(None if c["rel_err"][p] is None else 100 * c["rel_err"][p],
                                       '.2f') + "%" for p in FREE)
                     + f" | {_num(c['wall_s'], '.2f')} "
                     f"| {_num(c['ours_vs_brian2_at_truth_rms_mV'], '.3f')} |")
    if b2:
        lines += ["", "| Brian2 + DE cell | reached floor | s to floor | whole s | sims | "
                  "RMSE / noise | max param err |", "|---|---|---|---|---|---|---|"]
        for r in b2["runs"]:
            lines.append(f"| {r['cell']} | {'yes' if r['reached'] else 'no'} | "
                         f"{_num(r['to_floor_s'], '.1f')} | {r['whole_s']:.1f} | {r['n_evals']} "
                         f"| {r['rmse_over_noise']:.4f} | {100 * r['max_rel_err']:.2f}% |")
    notes = [single["how"]] if single else []
    notes += [b2["how"]] if b2 else []
    return "\n".join(lines + [""] + [f"- {t}" for t in notes])
