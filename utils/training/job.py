"""One run of task_training.py once its flags are read: reconcile them with a run to resume
or a checkpoint to simulate, make the run folder, then train or simulate there."""
from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import jax
from jax.experimental import multihost_utils

from models.networks import NetConfig
from models.networks.anatomy import CONNECTOMES, make_connectome
from models.networks.connectome import CELLS_FILE, EDGES_FILE, write_connectome
from utils.run import (RunStatus, UserError, check_out_dir, make_out_dir, write_config,
                       write_metrics)
from utils.training.checkpoint import load_checkpoint, upgrade_config
from utils.training.config import TrainConfig, TrainingJob
from utils.training.figures import show_pngs
from utils.training.memory import check_memory
from utils.training.parallel import first_line, init_distributed, is_main_process, lost_peer
from utils.training.runs import simulate_run, train
from utils.training.task import make_task

__all__ = ["run_job", "RESUME_FREE"]

SCRIPT = "task_training"
# flags that may differ from the saved configuration when resuming
RESUME_FREE = {"batches", "show", "out_dir", "resume", "mode", "devices"}


def check_matches(saved: Dict[str, Any], values: Dict[str, Any], explicit: set,
                  keys: Sequence[str], what: str) -> None:
    """UserError if an explicitly given flag contradicts the saved configuration."""
    for k in keys:
        if k in explicit and k in saved and saved[k] != values[k]:
            raise UserError(f"{what} was made with --{k} {saved[k]}, but --{k} "
                            f"{values[k]} was given")


def resumed_values(values: Dict[str, Any], explicit: set) -> Dict[str, Any]:
    """The flag values of a --resume run: the saved run's, except RESUME_FREE flags (and
    --batches only when given); UserError if a given flag contradicts the saved run."""
    run_dir = Path(values["resume"])
    cfg_path = run_dir / "config.json"
    if not (run_dir / "last.npz").is_file() or not cfg_path.is_file():
        raise UserError(f"--resume {values['resume']}: no last.npz/config.json there")
    saved = upgrade_config(json.loads(cfg_path.read_text()))
    check_matches(saved, values, explicit, [k for k in saved if k not in RESUME_FREE],
                  f"run {values['resume']}")
    out = dict(values)
    for k, v in saved.items():
        if k in out and (k not in RESUME_FREE or (k == "batches" and k not in explicit)):
            out[k] = v
    if out["out_dir"] is None:
        out["out_dir"] = values["resume"]
    out["mode"] = "train"
    return out


def simulated_values(values: Dict[str, Any], explicit: set,
                     ckpt: Dict[str, Any]) -> Dict[str, Any]:
    """The flag values of --mode sim on a checkpoint: its network and seed (a given network
    flag must match), its task timing unless given."""
    saved, net_flags = ckpt["config"], NetConfig.flag_names()
    check_matches(saved, values, explicit, net_flags, f"checkpoint {ckpt['path']}")
    out = dict(values)
    for k in net_flags + ["seed"]:
        out[k] = saved.get(k, out[k])  # older checkpoints lack the other neuron's fields
    for k in ("t_delay", "num_cue"):
        if k not in explicit:
            out[k] = saved[k]
    return out


def connectome_values(values: Dict[str, Any], explicit: set) -> Dict[str, Any]:
    """The flag values with --n_rec set to the size of a data connectome (celegans, file);
    UserError if another --n_rec was given or the connectome cannot be read."""
    if values["connectome"] is not None and values["conn_method"] == "dense":
        values = dict(values, conn_method="file")  # the default: --connectome alone
    net = TrainingJob.from_flat(values).config.net
    try:
        size = net.data_size()
    except ValueError as err:  # models.networks.connectome.ConnectomeError: one line
        raise UserError(str(err)) from None
    if size is None:
        return values
    if "n_rec" in explicit and values["n_rec"] != size:
        raise UserError(f"--n_rec {values['n_rec']}: the {net.resolved().conn_method} "
                        f"connectome has {size} neurons; leave --n_rec out")
    return dict(values, n_rec=size)


def run_job(values: Dict[str, Any], explicit: set) -> Dict[str, Any]:
    """Train or simulate as the flag `values` say (`explicit`: the flags given); returns the
    metrics written."""
    init_distributed()  # a multi-process run, if its environment variables are set
    if values["resume"] is not None:
        values = resumed_values(values, explicit)
    ckpt = None
    if values["checkpoint"] is not None:
        ckpt = load_checkpoint(Path(values["checkpoint"]))
        if values["mode"] == "sim":
            values = simulated_values(values, explicit, ckpt)
        else:
            check_matches(ckpt["config"], values, explicit | {"n_rec", "conn_method", "neuron"},
                          ("n_rec", "conn_method", "neuron"), f"checkpoint {ckpt['path']}")
    if ckpt is None or values["mode"] != "sim":  # a checkpoint holds its connectome
        values = connectome_values(values, explicit)
    job = TrainingJob.from_flat(values)
    job.config.validate()
    if job.run.mode == "connectome" and job.config.net.resolved().conn_method not in CONNECTOMES:
        raise UserError(f"--mode connectome writes a connectome: use --conn_method "
                        f"{', '.join(CONNECTOMES)}, not {job.config.net.conn_method}")
    check_memory(job.config)
    run = job.run
    resume = load_checkpoint(Path(run.resume) / "last.npz") if run.resume else None
    # everything is read and checked: only now is the run folder made and written
    continuing = run.resume is not None and (
        Path(run.out_dir).resolve() == Path(run.resume).resolve())
    with contextlib.ExitStack() as scratch:
        try:
            out_dir = run_folder(run.out_dir, continuing, scratch)
            metrics, figures = run_in(out_dir, job, ckpt, resume)
        except jax.errors.JaxRuntimeError as err:
            if not lost_peer(err):
                raise
            raise UserError(f"process {jax.process_index()} lost the other processes of the "
                            f"run (one of them stopped?): {first_line(err)}") from None
    if run.show and is_main_process():
        show_pngs(figures)
    return metrics


def run_folder(out_dir: Optional[str], continuing: bool, scratch: contextlib.ExitStack) -> Path:
    """The run folder, made fresh (or reused when continuing). In a multi-process run every
    process checks it before process 0 makes it (so all refuse the same folder), and the
    other processes, which compute the same, write their copies into a temporary folder that
    `scratch` removes."""
    if jax.process_count() > 1:
        if out_dir is not None:
            check_out_dir(Path(out_dir), reuse=continuing)
        multihost_utils.sync_global_devices("run folder checked")
        if not is_main_process():
            return Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix=SCRIPT)))
    return make_out_dir(SCRIPT, out_dir, reuse=continuing)


def export_connectome(config: TrainConfig, out_dir: Path) -> Dict[str, Any]:
    """Write the connectome of `config`'s network (as drawn from --seed) into `out_dir`;
    the metrics written."""
    conn = make_connectome(config.net.resolved(), config.seed)
    write_connectome(conn, out_dir)
    metrics = {"mode": "connectome", "conn_method": config.net.resolved().conn_method,
               "n_rec": conn.n, "n_exc": conn.n_exc, "n_inh": conn.n_inh,
               "n_edges": int(conn.pre.size), "populations": conn.populations(),
               "input_cells": int(conn.input.sum()), "readout_cells": int(conn.readout.sum())}
    write_metrics(out_dir, metrics)
    print(f"wrote {CELLS_FILE} and {EDGES_FILE} ({conn.n} cells, {conn.pre.size} edges) to "
          f"{out_dir}; train it with --connectome {out_dir}")
    return metrics


def run_in(out_dir: Path, job: TrainingJob, ckpt: Optional[Dict[str, Any]],
           resume: Optional[Dict[str, Any]]) -> tuple[Dict[str, Any], list]:
    """Write the configuration into `out_dir`, then train or simulate there; (metrics,
    figure paths)."""
    config, run = job.config, job.run
    # the neuron's defaults filled in: the run records the values it used
    saved_config = job.replace(**config.resolved().to_flat()).to_flat()
    write_config(out_dir, saved_config)
    # The one task of this run, passed to everything that needs it.
    task = make_task(config.task, config.net.dt, config.t_delay, config.num_cue)
    with RunStatus(out_dir):
        if run.mode == "connectome":
            return export_connectome(config, out_dir), []
        if run.mode == "sim":
            if ckpt is None:
                print("no --checkpoint given: simulating freshly initialised weights",
                      file=sys.stderr)
            metrics, figures = simulate_run(config, task, out_dir, run.n_sim, ckpt)
        else:
            metrics, figures = train(config, task, out_dir, saved_config, init=ckpt,
                                     resume=resume)
    return metrics, figures
