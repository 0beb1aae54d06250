"""HH fitting benchmark: time to reach the noise floor on noisy recordings, method by method,
and spike-target fitting by gradient against best-of-random-starts. Prints ratios measured
side by side in one run; writes results/benchmarks/hh_fitting.json (--out_dir: elsewhere).

    python -m benchmarks.hh_fitting [--quick]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.kit.base import time_to, write_result
from benchmarks.kit.hh import FLOOR
from benchmarks.kit.optim import lbfgsb_sequential
from neuron_fitting_of_hh_model import DEFAULTS
from utils.fitting import make_objectives, method_names, problem_from_flags, traces_of
from utils.fitting.metrics import mean_gamma
from utils.fitting.multistart import lbfgsb_multistart, run_method


def problem_for(argv: list[str]):
    return problem_from_flags(DEFAULTS, argv)


def noisy_recordings(quick: bool, seed: int) -> dict:
    noise = 1.0
    problem = problem_for(["--fit", "gl,g_na,g_kd", "--noise_mV", str(noise), "--seed", str(seed)])
    level = (FLOOR * noise) ** 2  # RMSE within 3% of the noise level
    budget = 300 if quick else 2000
    rows = {}
    for method in method_names():
        obj = make_objectives(problem)
        bayes = method == "bayesian"  # a GP refit per asked point: its cost grows fast
        res, = run_method(method, obj, 3, n_starts=4, maxiter=100, seed=seed,
                         budget=100 if bayes else budget, popsize=20 if bayes else 100)
        print(f"  {method}: {res.wall_s:.1f} s", flush=True)
        x = problem.box.to_params(res.z)
        rel = {n: abs(v - problem.truth[n]) / problem.truth[n] for n, v in zip(problem.free, x)}
        rows[method] = {"time_to_noise_floor_s": time_to(res.history, level),
                        "rmse_mV": float(np.sqrt(res.loss)), "wall_s": res.wall_s,
                        "n_evals": res.n_evals, "max_rel_err": max(rel.values()), "rel_err": rel}
    return {"noise_mV": noise, "target_rmse_mV": FLOOR * noise, "methods": rows}


def lockstep_vs_loop(seed: int) -> dict:
    problem = problem_for(["--fit", "gl,g_na,g_kd,vth"])
    starts = np.random.default_rng(seed).uniform(size=(8, 4))
    out = {}
    runs = [("lockstep_batched", lambda vg: lbfgsb_multistart(vg, [starts], maxiter=100)[0]),
            ("sequential_loop", lambda vg: lbfgsb_sequential(vg, starts, maxiter=100))]
    for name, run in runs:
        vg = make_objectives(problem).real.value_and_grad
        t0 = time.perf_counter()
        res = run(vg)
        out[name] = {"wall_s": time.perf_counter() - t0, "loss": res.loss, "n_evals": res.n_evals}
    return out


def spike_target(quick: bool, seed: int) -> dict:
    problem = problem_for(["--target", "spike"])
    obj = make_objectives(problem)
    loss = obj.loss  # a cohort of one: the calls take Z alone
    res, = run_method("gradient", obj, 4, n_starts=10, maxiter=100 if quick else 200,
                     seed=seed, budget=1, popsize=1)
    rng = np.random.default_rng(seed + 1)
    z = rng.uniform(size=(res.n_evals, 4))
    rand_loss = np.concatenate([loss(chunk) for chunk in np.array_split(z, max(1, len(z) // 50))])
    out = {}
    for name, zz, l in [("gradient", res.z, res.loss),
                        ("best_of_random", z[np.argmin(rand_loss)], rand_loss.min())]:
        params = dict(zip(problem.free, problem.box.to_params(zz)))
        _, spikes = traces_of(problem, params)
        out[name] = {"loss": float(l), "n_evals": res.n_evals,
                     "gamma": mean_gamma(spikes, problem.spikes_target, problem.gamma_window,
                                         problem.duration),
                     "rel_err": {n: abs(params[n] - problem.truth[n]) / abs(problem.truth[n])
                                 for n in problem.free}}
    return {"gamma_window_ms": problem.gamma_window, "methods": out}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small budgets (a smoke run)")
    p.add_argument("--seed", type=int, default=0, help="seed of starts, noise and optimizers")
    p.add_argument("--out_dir", default=None,
                   help="folder of hh_fitting.json (default results/benchmarks/)")
    args = p.parse_args(argv)
    result = {"noisy_recordings": noisy_recordings(args.quick, args.seed),
              "lockstep_vs_loop": lockstep_vs_loop(args.seed),
              "spike_target": spike_target(args.quick, args.seed)}
    report(result)
    write_result("hh_fitting", result, args.out_dir)
    return result


def report(r: dict) -> None:
    nr = r["noisy_recordings"]
    print(f"\nNoisy recordings (1 mV noise, gl, g_na, g_kd free): time to RMSE <= "
          f"{nr['target_rmse_mV']:.2f} mV, compilation included")
    g = nr["methods"]["gradient"]["time_to_noise_floor_s"]
    print(f"{'method':<12}{'to floor s':>11}{'ratio':>8}{'RMSE':>8}{'max rel err':>13}{'sims':>7}")
    for m, row in nr["methods"].items():
        t = row["time_to_noise_floor_s"]
        ratio = f"{t / g:.1f}x" if (t and g) else "never"
        print(f"{m:<12}{(f'{t:.2f}' if t else 'never'):>11}{ratio:>8}{row['rmse_mV']:>8.3f}"
              f"{row['max_rel_err']:>13.4f}{row['n_evals']:>7d}")
    print("(against Brian2 and jaxley on the same recordings: python -m benchmarks.hh_peers)")
    ls = r["lockstep_vs_loop"]
    print(f"\nL-BFGS-B, 8 starts: lockstep batched {ls['lockstep_batched']['wall_s']:.2f} s vs "
          f"sequential loop {ls['sequential_loop']['wall_s']:.2f} s "
          f"({ls['sequential_loop']['wall_s'] / ls['lockstep_batched']['wall_s']:.1f}x)")
    st = r["spike_target"]
    print(f"\nSpike target (van Rossum loss; gamma factor, {st['gamma_window_ms']:g} ms window), "
          "same simulations:")
    for m, row in st["methods"].items():
        rel = max(row["rel_err"].values())
        gam = f"{row['gamma']:.3f}" if row["gamma"] is not None else "undefined"
        print(f"{m:<16} loss {row['loss']:.3g}  gamma {gam}  max rel err {rel:.3f}"
              f"  sims {row['n_evals']}")


if __name__ == "__main__":
    main()
