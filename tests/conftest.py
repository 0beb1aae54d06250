"""Helpers shared by the network tests."""
from __future__ import annotations


def train_briefly(args, n_batches: int = 12) -> tuple:
    """Build the trainer for `args`, train `n_batches` batches of 16 and return
    (trainer, validation loss before, validation loss after)."""
    import task_training
    from utils.training import get_task, sample_trials, trial_seed

    task = get_task(args.dt, args.t_delay, args.num_cue)
    trainer = task_training.make_trainer(args)
    val = sample_trials(task, 32, trial_seed(0, 1, 0))
    loss0, _ = trainer.evaluate(val)
    for ep in range(n_batches):
        trainer.train_step(sample_trials(task, 16, trial_seed(0, 0, ep)))
    loss1, _ = trainer.evaluate(val)
    return trainer, loss0, loss1
