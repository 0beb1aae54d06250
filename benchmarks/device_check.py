"""The device check's timed steps, each in a fresh process, within one time budget.

BPTT and ES-D-RTRL (expsm_diag) seconds per batch, dense and gaussian connectivity, on the
default task (benchmarks/kit/training.py's run_isolated, as benchmarks/rule_speed.py measures
them), and one HH fit (neuron_fitting_of_hh_model.py --methods gradient). The smallest
network comes first, then the fit, then the larger networks, so that a budget running out
leaves the cheap answers. Each step may take at most its own timeout and what is left of
--budget; a step that would start with under MIN_STEP_S left is skipped. Writes
device_check.json (after every step) and device_check.md into OUT; exits with status 1 if a
step has no result.

    python -m benchmarks.device_check OUT [--cpu] [--budget SECONDS]

Run through benchmarks/device_check.sh, which installs the wheels and reports the devices.
--cpu runs the same steps at tiny sizes (n_rec 40 and 80, 4 trials of a short task, a fit
of 2 starts x 5 iterations) on JAX's CPU backend with brainevent's jax_raw kernels.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.kit.base import ROOT, result_path, write_result
from benchmarks.kit.training import run_isolated, speed_bars
from utils.run import atomic_write_json, positive_float

METHODS = ("bptt", "expsm_diag")
CONNECTIVITIES = ("dense", "gaussian")
MIN_STEP_S = 20.0  # a step needs at least this long to start JAX and compile


@dataclass(frozen=True)
class Plan:
    """Sizes and limits of one mode of the check."""
    sizes: tuple
    batch_size: int
    t_delay: float
    num_cue: int
    steps: int
    step_timeout: float
    hh_args: tuple
    hh_timeout: float
    budget: float
    backend: str | None


PLANS = {
    # one H200: 12 training configurations and the fit in about 7 minutes at most
    "gpu": Plan(sizes=(200, 1000, 4000), batch_size=32, t_delay=1000.0, num_cue=7, steps=2,
                step_timeout=90.0, hh_args=(), hh_timeout=150.0, budget=420.0, backend=None),
    # any CPU: every step at a tiny size; brainevent's CPU kernels without numba
    "cpu": Plan(sizes=(40, 80), batch_size=4, t_delay=200.0, num_cue=3, steps=2,
                step_timeout=300.0, hh_args=("--n_starts", "2", "--maxiter", "5"),
                hh_timeout=300.0, budget=1500.0, backend="jax_raw"),
}


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("out_dir", help="output folder (made if missing)")
    p.add_argument("--cpu", action="store_true", help="tiny sizes, for a machine without GPU")
    p.add_argument("--budget", type=positive_float, default=None,
                   help="seconds for all steps (default: 420, or 1500 with --cpu)")
    return p


def steps(plan: Plan) -> list:
    """The steps in running order: ('train', spec) for each configuration, ('hh', None)."""
    def train(n):
        return [("train", {"method": m, "conn_method": c, "n_rec": n,
                           "batch_size": plan.batch_size, "t_delay": plan.t_delay,
                           "num_cue": plan.num_cue, "steps": plan.steps, "xla_memory": False,
                           "backend": plan.backend})
                for c in CONNECTIVITIES for m in METHODS]
    first, *rest = plan.sizes
    return train(first) + [("hh", None)] + [s for n in rest for s in train(n)]


def hh_fit(plan: Plan, out_dir: Path, timeout: float) -> dict:
    """One gradient fit of the HH model in a fresh process, compiling from scratch (an empty
    compilation cache of its own); its metrics or an error."""
    fit_dir = out_dir / "hh_fit"
    cmd = [sys.executable, "neuron_fitting_of_hh_model.py", "--methods", "gradient",
           "--out_dir", str(fit_dir), *plan.hh_args]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": cache}
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
    row = {"process_s": time.perf_counter() - t0}
    (out_dir / "hh_fit.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {**row, "error": f"exit {proc.returncode}: {tail[0][:300]}"}
    fit = json.loads((fit_dir / "metrics.json").read_text())["methods"]["gradient"]
    return {**row, **{k: fit[k] for k in ("loss", "rmse_mV", "wall_s", "n_evals")},
            "params": fit["params"], "rel_err": fit["rel_err"]}


def run_steps(plan: Plan, out_dir: Path, budget: float) -> dict:
    """Run every step within the budget, writing device_check.json after each."""
    deadline = time.monotonic() + budget
    result = {"plan": asdict(plan), "budget_s": budget, "train": [], "hh_fit": None}
    for kind, spec in steps(plan):
        left = deadline - time.monotonic()
        timeout = min(plan.hh_timeout if kind == "hh" else plan.step_timeout, left)
        if kind == "hh":
            row = hh_fit(plan, out_dir, timeout) if left >= MIN_STEP_S else \
                {"error": "skipped: out of time"}
            result["hh_fit"] = row
            print(f"HH fit: {row['error']}" if "error" in row else
                  f"HH fit: loss {row['loss']:.4g}, RMSE {row['rmse_mV']:.3g} mV, "
                  f"{row['wall_s']:.1f} s fitting", flush=True)
        else:
            row = run_isolated(spec, timeout=timeout) if left >= MIN_STEP_S else \
                {**spec, "error": "skipped: out of time"}
            result["train"].append(row)
            what = f"n_rec {spec['n_rec']:>5} {spec['conn_method']:>8} {spec['method']:>10}"
            print(f"{what}: {row['error']}" if "error" in row else
                  f"{what}: {row['s_per_batch']:.3f} s/batch (first {row['first_step_s']:.1f} s,"
                  f" peak RSS {row['peak_rss_mb']:.0f} MB)", flush=True)
        atomic_write_json(result_path("device_check", out_dir), result)
    result["checks"] = [f"{c}: {line}" for c in CONNECTIVITIES
                        for line in speed_bars([r for r in result["train"]
                                                if r["conn_method"] == c])]
    write_result("device_check", result, out_dir)
    return result


def markdown(result: dict, environment: dict | None) -> str:
    """The tables of device_check.md."""
    lines = ["# Device check", ""]
    if environment:
        lines += [f"- {k}: {v}" for k, v in environment.items() if k != "packages"]
        lines += ["- packages: " + ", ".join(f"{k} {v}" for k, v in
                                             environment["packages"].items() if v), ""]
    plan = result["plan"]
    lines += [f"Training: batch {plan['batch_size']}, t_delay {plan['t_delay']:g} ms, "
              f"{plan['num_cue']} cues; median of {plan['steps']} batches after one warm-up "
              f"batch; each configuration in a fresh process.", "",
              "| n_rec | connectivity | method | s/batch | first batch s | peak RSS MB |",
              "|---:|---|---|---:|---:|---:|"]
    for r in result["train"]:
        cells = ([r["error"], "", ""] if "error" in r else
                 [f"{r['s_per_batch']:.3f}", f"{r['first_step_s']:.1f}",
                  f"{r['peak_rss_mb']:.0f}"])
        lines.append(f"| {r['n_rec']} | {r['conn_method']} | {r['method']} | "
                     + " | ".join(cells) + " |")
    lines += [""] + [f"- {c}" for c in result.get("checks", [])]
    hh = result["hh_fit"]
    lines += ["", "HH fit (neuron_fitting_of_hh_model.py --methods gradient "
              + " ".join(plan["hh_args"]) + "):", ""]
    if hh is None or "error" in hh:
        lines.append(f"- {'not run' if hh is None else hh['error']}")
    else:
        lines += ["| loss | RMSE mV | fitting s | process s | simulations |",
                  "|---:|---:|---:|---:|---:|",
                  f"| {hh['loss']:.4g} | {hh['rmse_mV']:.3g} | {hh['wall_s']:.1f} | "
                  f"{hh['process_s']:.1f} | {hh['n_evals']} |"]
    return "\n".join(lines) + "\n"


def failures(result: dict) -> list:
    """One line for each step that failed, timed out or was skipped."""
    rows = [(f"n_rec {r['n_rec']} {r['conn_method']} {r['method']}", r) for r in result["train"]]
    rows.append(("HH fit", result["hh_fit"] or {"error": "not run"}))
    return [f"{name}: {r['error']}" for name, r in rows if "error" in r]


def main(argv=None) -> dict:
    """Run the steps, write device_check.json and device_check.md, print the tables."""
    args = build_parser().parse_args(argv)
    plan = PLANS["cpu" if args.cpu else "gpu"]
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = run_steps(plan, out_dir, args.budget or plan.budget)
    env_file = out_dir / "environment.json"
    environment = json.loads(env_file.read_text()) if env_file.exists() else None
    text = markdown(result, environment)
    (out_dir / "device_check.md").write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    failed = failures(main())
    if failed:
        sys.exit(f"device_check: {len(failed)} step(s) without a result: " + "; ".join(failed))
