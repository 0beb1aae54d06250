"""Helpers shared by the training tests (import as `from tests.training_helpers import ...`)."""
from __future__ import annotations

from typing import Any, Tuple

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
