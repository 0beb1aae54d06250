"""Helpers shared by the training tests (import as `from tests.training_helpers import ...`)."""
from __future__ import annotations

from typing import Any, Tuple

import task_training
from utils.training.task import trial_seed
from utils.training.trainer import TrainConfig, Trainer, make_trainer


def train_briefly(config: TrainConfig, task: Any, n_batches: int = 12) -> Tuple[Trainer, float, float]:
    """Build the trainer for `config`, train `n_batches` batches of config.batch_size and
    return (trainer, validation loss before, validation loss after) on 32 held-out trials."""
    trainer = make_trainer(config, task)
    val = task.sample(32, trial_seed(0, 1, 0))
    loss0, _ = trainer.evaluate(val)
    for ep in range(n_batches):
        trainer.train_step(task.sample(config.batch_size, trial_seed(0, 0, ep)))
    loss1, _ = trainer.evaluate(val)
    return trainer, loss0, loss1


# a tiny network on a short task: the command line and the same as a TrainConfig
TINY = ["--n_rec", "40", "--t_delay", "50", "--num_cue", "1", "--batch_size", "8",
        "--n_val", "16", "--n_test", "16", "--n_sim", "4", "--eval_every", "2"]
TINY_CONFIG = TrainConfig.make(n_rec=40, t_delay=50.0, num_cue=1, batch_size=8,
                               n_val=16, n_test=16, eval_every=2)


def run(tmp_path, name: str, *extra: str) -> tuple:
    """task_training.main on the TINY network into tmp_path/name; (run folder, metrics)."""
    out = tmp_path / name
    metrics = task_training.main(TINY + ["--out_dir", str(out), *extra])
    return out, metrics
