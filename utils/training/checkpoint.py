"""Checkpoints of a Trainer: weights, fixed structure, config, progress, optimizer state."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any, Dict

import jax
import jax.numpy as jnp
import numpy as np

from utils.run import UserError, atomic_write_bytes
from utils.training.trainer import Trainer

__all__ = ["save_checkpoint", "load_checkpoint", "restore_optimizer", "upgrade_config",
           "WEIGHT_NAMES"]

WEIGHT_NAMES = {"w_in", "w_e", "w_i", "w_out"}
LEGACY_NEURON = "alif"  # runs saved before --neuron existed used the adaptive-LIF network


def upgrade_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """A saved run configuration (config.json or a checkpoint's) in today's terms: one saved
    before --neuron existed was an adaptive-LIF run; --batches was saved as "epochs"."""
    config = dict(config)
    config.setdefault("neuron", LEGACY_NEURON)
    if "epochs" in config:
        config.setdefault("batches", config.pop("epochs"))
    return config


def save_checkpoint(path: Path, params: Dict[str, Any], structure: Dict[str, np.ndarray],
                    config: Dict[str, Any], state: Dict[str, Any],
                    opt_state: Any = None) -> Path:
    """Write weights (`Trainer.params()`), fixed structure, config, progress (and the
    optimizer state, if given) as one .npz, atomically."""
    arrays: Dict[str, np.ndarray] = {}
    for k, v in params.items():
        arrays[f"param/{k}"] = np.asarray(v["weight"])
    for k, v in structure.items():
        arrays[f"structure/{k}"] = np.asarray(v)
    if opt_state is not None:
        for i, leaf in enumerate(jax.tree.leaves(opt_state)):
            arrays[f"opt/{i:05d}"] = np.asarray(leaf)
    arrays["config"] = np.asarray(json.dumps(config))
    arrays["state"] = np.asarray(json.dumps(state))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """Read a checkpoint (a .npz, or a run folder's checkpoint.npz); UserError if missing or
    unreadable."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.npz"
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a checkpoint: not an .npz archive (empty, truncated "
                        "or another kind of file)")
    try:
        with np.load(path, allow_pickle=False) as z:
            files = {k: z[k] for k in z.files}
        out = {
            "params": {k[6:]: {"weight": v} for k, v in files.items() if k.startswith("param/")},
            "structure": {k[10:]: v for k, v in files.items() if k.startswith("structure/")},
            "opt": [files[k] for k in sorted(k for k in files if k.startswith("opt/"))],
            "config": upgrade_config(json.loads(str(files["config"]))),
            "state": json.loads(str(files["state"])),
            "path": str(path),
        }
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        # a damaged archive: CRC or zlib errors, truncated members, missing or garbled entries
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"cannot read checkpoint {path} (damaged?): {reason}") from None
    if set(out["params"]) != WEIGHT_NAMES:
        raise UserError(f"{path} is not a task_training checkpoint (weights missing)")
    for name in sorted(WEIGHT_NAMES - {"w_out"}):
        if (out["params"][name]["weight"] < 0).any():
            raise UserError(f"{path}: {name} holds negative weights; this network stores "
                            "non-negative conductances (Dale's law), so the checkpoint was "
                            "not written by task_training")
    return out


def restore_optimizer(trainer: Trainer, leaves: list) -> None:
    """Put saved optimizer leaves back into the trainer's optimizer-state structure."""
    treedef = jax.tree.structure(trainer.opt_state)
    if len(leaves) != treedef.num_leaves:
        raise UserError("checkpoint optimizer state does not match --opt (cannot resume)")
    trainer.opt_state = jax.tree.unflatten(treedef, [jnp.asarray(x) for x in leaves])
