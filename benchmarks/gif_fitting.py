"""GIF fitting benchmark: parameter recovery on the default problem (potential, spike, and
recordings with 0.5 mV noise), the two-stage gradient method against plain multi-start
L-BFGS-B, and the gradient method against each gradient-free method at the same simulation
budget: wall time for the gradient method to reach each one's best loss, side by side in one
run. Writes results/benchmarks/gif_fitting.json.

    python benchmarks/gif_fitting.py [--quick]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import problem_for, time_to  # noqa: E402
from neuron_fitting_of_gif_model import DEFAULTS  # noqa: E402
from utils.fitting import make_objectives, simulate_params  # noqa: E402
from utils.metrics import mean_gamma  # noqa: E402
from utils.optim import run_method  # noqa: E402
from utils.run import atomic_write_json  # noqa: E402


def run(problem, method: str, *, n_starts: int, budget: int, seed: int, presearch: bool = True,
        popsize: int = 50) -> dict:
    loss, vg, pre = make_objectives(problem)
    res = run_method(method, loss, vg, len(problem.free), n_starts=n_starts, budget=budget,
                     popsize=popsize, maxiter=200, seed=seed,
                     presearch=pre if presearch else None)
    params = dict(zip(problem.free, problem.box.to_params(res.z)))
    v, spikes = simulate_params(problem, params)
    rmse = float(np.sqrt(np.mean((v - problem.v_target) ** 2))) if problem.v_target is not None \
        else None
    out = {"loss": res.loss, "wall_s": res.wall_s, "n_evals": res.n_evals, "rmse_mV": rmse,
           "gamma": mean_gamma(spikes, problem.spikes_target, 2.0, problem.duration),
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
    p.add_argument("--n_starts", type=int, default=16, help="starts of the gradient method")
    p.add_argument("--out", default="results/benchmarks/gif_fitting.json", help="JSON output")
    args = p.parse_args(argv)
    n = 4 if args.quick else args.n_starts
    seed = ["--seed", str(args.seed)]
    result = {}
    print("potential target, noiseless:")
    pot = problem_for(DEFAULTS, seed)
    result["potential"] = {"gradient": run(pot, "gradient", n_starts=n, budget=0, seed=args.seed),
                           "gradient_no_presearch": run(pot, "gradient", n_starts=n, budget=0,
                                                        seed=args.seed, presearch=False)}
    print("spike target:")
    spk = problem_for(DEFAULTS, ["--target", "spike", *seed])
    result["spike"] = {"gradient": run(spk, "gradient", n_starts=n, budget=0, seed=args.seed)}
    print("recordings with 0.5 mV noise, gradient vs gradient-free at the same budget:")
    noisy = problem_for(DEFAULTS, ["--noise_mV", "0.5", *seed])
    grad = run(noisy, "gradient", n_starts=n, budget=0, seed=args.seed)
    rows = {"gradient": grad}
    for method in ["DE", "PSO", "TwoPointsDE", "bayesian"]:
        budget = min(grad["n_evals"], 100) if method == "bayesian" else grad["n_evals"]
        rows[method] = run(noisy, method, n_starts=n, budget=budget, seed=args.seed,
                           popsize=20 if method == "bayesian" else 100)
        rows[method]["gradient_time_to_this_loss_s"] = time_to(grad["history"],
                                                               rows[method]["loss"])
    result["noisy"] = {"noise_mV": 0.5, "methods": rows}
    report(result)
    for block in result.values():
        for row in block.get("methods", block).values():
            row.pop("history", None)
    atomic_write_json(args.out, result)
    return result


def report(r: dict) -> None:
    print("\nGIF, default problem (a, b, k1, k2 free)")
    for name in ["potential", "spike"]:
        for method, row in r[name].items():
            gam = f"{row['gamma']:.3f}" if row["gamma"] is not None else "-"
            print(f"{name:<10}{method:<24} max rel err {row['max_rel_err']:.4f}  gamma {gam}  "
                  f"loss {row['loss']:.3g}  {row['wall_s']:.1f} s  {row['n_evals']} sims")
    rows = r["noisy"]["methods"]
    print(f"\nRecordings with 0.5 mV noise: RMSE / noise and time for the gradient method to "
          f"reach each method's best loss")
    print(f"{'method':<12}{'RMSE/noise':>11}{'max rel err':>13}{'wall s':>9}{'sims':>7}"
          f"{'grad s to same loss':>21}{'speed-up':>10}")
    for m, row in rows.items():
        t = row.get("gradient_time_to_this_loss_s")
        speed = f"{row['wall_s'] / t:.1f}x" if t else ("-" if m == "gradient" else "n/a")
        print(f"{m:<12}{row['rmse_mV'] / 0.5:>11.3f}{row['max_rel_err']:>13.4f}"
              f"{row['wall_s']:>9.1f}{row['n_evals']:>7d}"
              f"{(f'{t:.1f}' if t else '-'):>21}{speed:>10}")


if __name__ == "__main__":
    main()
