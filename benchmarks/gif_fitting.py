"""GIF fitting benchmark: parameter recovery on the default problem (potential, spike, and
recordings with 0.5 mV noise) by the gradient-based methods (staged L-BFGS-B and
Levenberg-Marquardt; plain multi-start L-BFGS-B for contrast), and each gradient-free method
at each gradient-based method's simulation count: the wall time each gradient-based method
needed to reach each one's best loss, side by side in one run.
Writes results/benchmarks/gif_fitting.json (--out_dir: elsewhere).

    python -m benchmarks.gif_fitting [--quick]
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from benchmarks.kit.base import time_to, write_result
from neuron_fitting_of_gif_model import DEFAULTS
from utils.fitting import (make_objectives, method_names, problem_from_flags, run_method,
                           traces_of)
from utils.fitting.metrics import mean_gamma

GRADIENT_BASED = method_names("gradient-based")  # each one is run with its starts below
GRADIENT_FREE = method_names("gradient-free")
BAYES_BUDGET = 100   # the authors' budget; a Gaussian-process refit per point makes more slow


def run(problem, method: str, *, n_starts: int, budget: int, seed: int, presearch: bool = True,
        popsize: int = 50) -> dict:
    obj = make_objectives(problem)
    if not presearch:
        obj = replace(obj, stages=(obj.real,))
    res, = run_method(method, obj, len(problem.free), n_starts=n_starts, budget=budget,
                     popsize=popsize, maxiter=200, seed=seed)
    params = dict(zip(problem.free, problem.box.to_params(res.z)))
    v, spikes = traces_of(problem, params)
    rmse = float(np.sqrt(np.mean((v - problem.v_target) ** 2))) if problem.v_target is not None \
        else None
    out = {"loss": res.loss, "wall_s": res.wall_s, "n_evals": res.n_evals, "rmse_mV": rmse,
           "gamma": mean_gamma(spikes, problem.spikes_target, problem.gamma_window,
                               problem.duration),
           "max_rel_err": max(abs(params[n] - problem.truth[n]) / problem.truth[n]
                              for n in problem.free),
           "params": params, "history": res.history}
    print(f"  {method}{'' if presearch else ' (no presearch)'}: loss {res.loss:.4g}, "
          f"{res.wall_s:.1f} s, {res.n_evals} sims, max rel err {out['max_rel_err']:.4f}",
          flush=True)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer starts and smaller budgets")
    p.add_argument("--seed", type=int, default=0, help="seed of starts, noise and optimizers")
    p.add_argument("--n_starts", type=int, default=16, help="starts of L-BFGS-B (gradient)")
    p.add_argument("--lm_starts", type=int, default=4,
                   help="starts of Levenberg-Marquardt (its presearch ends in one basin from "
                        "nearly every start, so few are needed)")
    p.add_argument("--parts", nargs="+", default=["potential", "spike", "noisy"],
                   choices=["potential", "spike", "noisy"], help="which problems to run")
    p.add_argument("--out_dir", default=None,
                   help="folder of gif_fitting.json (default results/benchmarks/)")
    args = p.parse_args(argv)
    starts = {"gradient": 4 if args.quick else args.n_starts, "lm": args.lm_starts}
    n = starts["gradient"]
    seed = ["--seed", str(args.seed)]
    result = {}
    if "potential" in args.parts:
        print("potential target, noiseless:")
        pot = problem_from_flags(DEFAULTS, seed)
        result["potential"] = {m: run(pot, m, n_starts=starts[m], budget=0, seed=args.seed)
                               for m in GRADIENT_BASED}
        result["potential"]["gradient_no_presearch"] = run(pot, "gradient", n_starts=n,
                                                           budget=0, seed=args.seed,
                                                           presearch=False)
    if "spike" in args.parts:
        print("spike target:")
        spk = problem_from_flags(DEFAULTS, ["--target", "spike", *seed])
        result["spike"] = {m: run(spk, m, n_starts=starts[m], budget=0, seed=args.seed)
                           for m in GRADIENT_BASED}
    if "noisy" in args.parts:
        result["noisy"] = noisy_comparison(args, starts, seed)
    report(result)
    for block in result.values():
        for row in block.get("methods", block).values():
            row.pop("history", None)
    write_result("gif_fitting", result, args.out_dir)
    return result


def noisy_comparison(args, starts: dict, seed: list) -> dict:
    """Recordings with 0.5 mV noise: both gradient-based methods, then each gradient-free
    method with the simulation count of each gradient-based run (bayesian: BAYES_BUDGET)."""
    print("recordings with 0.5 mV noise, gradient-based vs gradient-free:")
    noisy = problem_from_flags(DEFAULTS, ["--noise_mV", "0.5", *seed])
    grads = {m: run(noisy, m, n_starts=starts[m], budget=0, seed=args.seed)
             for m in GRADIENT_BASED}
    rows = dict(grads)
    for method in GRADIENT_FREE:
        budgets = ([BAYES_BUDGET] if method == "bayesian"
                   else sorted({row["n_evals"] for row in grads.values()}))
        for budget in budgets:
            row = run(noisy, method, n_starts=1, budget=budget, seed=args.seed,
                      popsize=20 if method == "bayesian" else 100)
            row["time_to_this_loss_s"] = {g: time_to(grads[g]["history"], row["loss"])
                                          for g in grads}
            rows[f"{method} ({budget} sims)"] = row
    return {"noise_mV": 0.5, "starts": starts, "methods": rows}


def report(r: dict) -> None:
    print("\nGIF, default problem (a, b, k1, k2 free)")
    for name in [k for k in ("potential", "spike") if k in r]:
        for method, row in r[name].items():
            gam = f"{row['gamma']:.3f}" if row["gamma"] is not None else "-"
            print(f"{name:<10}{method:<24} max rel err {row['max_rel_err']:.4f}  gamma {gam}  "
                  f"loss {row['loss']:.3g}  {row['wall_s']:.1f} s  {row['n_evals']} sims")
    if "noisy" not in r:
        return
    rows = r["noisy"]["methods"]
    print("\nRecordings with 0.5 mV noise. For each gradient-free run: the time each "
          "gradient-based method needed to reach its best loss, and the speed-up (its wall "
          "time / that time); compilation included")
    print(f"{'method':<26}{'RMSE/noise':>11}{'max rel err':>13}{'wall s':>9}{'sims':>7}"
          + "".join(f"{g + ' s':>12}{'speed-up':>10}" for g in GRADIENT_BASED))
    for m, row in rows.items():
        line = (f"{m:<26}{row['rmse_mV'] / 0.5:>11.3f}{row['max_rel_err']:>13.4f}"
                f"{row['wall_s']:>9.1f}{row['n_evals']:>7d}")
        for g in GRADIENT_BASED:
            t = row.get("time_to_this_loss_s", {}).get(g)
            speed = f"{row['wall_s'] / t:.1f}x" if t else "-"
            line += f"{(f'{t:.1f}' if t else '-'):>12}{speed:>10}"
        print(line)
    for g in GRADIENT_BASED:
        print(f"{g}: slowest speed-up against the gradient-free runs with its own "
              f"{rows[g]['n_evals']} simulations (bayesian: {BAYES_BUDGET}): "
              f"{same_budget_speedup(rows, g):.2f}x (above 1: it reached every one's best "
              "loss sooner)")


def same_budget_speedup(rows: dict, g: str) -> float:
    """Smallest (gradient-free run's wall time / time gradient method g needed to reach that
    run's best loss) over the runs given g's simulation count, and bayesian (0 if g never
    reached one)."""
    ratios = [row["wall_s"] / (row["time_to_this_loss_s"][g] or np.inf)
              for row in rows.values() if "time_to_this_loss_s" in row
              and row["n_evals"] in (rows[g]["n_evals"], BAYES_BUDGET)]
    return min(ratios)


if __name__ == "__main__":
    main()
