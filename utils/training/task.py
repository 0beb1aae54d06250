"""Tasks the E/I network is trained on (registry: utils.training.config.TASKS), trial batches
(`TaskData`) and the recall-period losses.

A task is an object with `num_inputs`, `input_groups()` (name -> slice of input channels) and
`sample(n, seed) -> TaskData` (time-major trials that depend only on `n` and `seed`). Its
factory takes `(dt, t_delay, num_cue)`. To add one, write the class and add one entry to
utils.training.config.TASKS:

    TASKS["my_task"] = "my_package.my_module:MyTask"   # then: --task my_task

The caller creates the task once per run and passes it to whatever needs it.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator

import jax
import numpy as np

from utils.training.config import TASKS

__all__ = ["TASKS", "make_task", "TaskData", "SeededTrials", "EvidenceAccumulationTask",
           "trial_seed",
           "ce_per_step", "recall_loss", "recall_sum", "recall_correct"]


class TaskData:
    """A batch of trials, time-major: X (T, n, n_in) bool spikes, y (n,) int32, recall (T,) bool."""

    def __init__(self, X: np.ndarray, y: np.ndarray, recall: np.ndarray):
        self.X, self.y, self.recall = X, y, recall

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def take(self, idx: np.ndarray) -> "TaskData":
        """Trials `idx` (may repeat, for padding)."""
        return TaskData(self.X[:, idx], self.y[idx], self.recall)


def trial_seed(seed: int, stream: int, index: int) -> int:
    """Independent 32-bit seed for (run seed, stream, index); streams: 0 train, 1 val, 2 test,
    3 simulation."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


class SeededTrials:
    """`n` trials of `task` defined by `seed`, generated chunk by chunk (`chunk` trials, chunk
    k drawn with seed (seed, k)) each time they are used, so that holding them costs one chunk
    of memory whatever `n` and the trial length (validation and test sets of long trials)."""

    def __init__(self, task: Any, n: int, seed: int, chunk: int):
        if n < 1 or chunk < 1:
            raise ValueError(f"need n >= 1 and chunk >= 1, got {n}, {chunk}")
        self.task, self.n, self.seed, self.chunk = task, int(n), int(seed), int(chunk)

    def __len__(self) -> int:
        return self.n

    def chunks(self) -> Iterator[TaskData]:
        """The trials, in order, as TaskData chunks of at most `chunk` trials."""
        for k, start in enumerate(range(0, self.n, self.chunk)):
            seed = int(np.random.SeedSequence([self.seed, k]).generate_state(1)[0])
            yield self.task.sample(min(self.chunk, self.n - start), seed)

    def first(self, k: int) -> TaskData:
        """The first min(k, n) trials as one TaskData (e.g. the trials to plot)."""
        parts, have = [], 0
        for data in self.chunks():
            parts.append(data)
            have += len(data)
            if have >= k:
                break
        X = np.concatenate([d.X for d in parts], axis=1)[:, :k]
        y = np.concatenate([d.y for d in parts])[:k]
        return TaskData(X, y, parts[0].recall)


class EvidenceAccumulationTask:
    """brainpy-datasets' EvidenceAccumulation (spiking input: 25 left-cue, 25 right-cue,
    25 recall and 25 noise channels; label 1 <=> more left cues than right ones).

    brainpy-datasets 0.0.0.7 shares its default Feature objects between instances and shifts
    them at every construction, so a second default instance moves the channels of every
    instance (docs/NOTES.md S5). Each instance here gets its own Feature objects (same
    values as the defaults); tests/test_task_training.py checks the channel layout after
    creating a second instance.
    """

    def __init__(self, dt: float, t_delay: float, num_cue: int):
        # imported here: brainpy-datasets starts jax's backend at import, which in a
        # multi-process run must follow jax.distributed.initialize (parallel.init_distributed)
        from brainpy_datasets.cognitive import EvidenceAccumulation, Feature
        self._dataset = EvidenceAccumulation(
            dt=dt, t_delay=t_delay, num_cue=num_cue, mode="spiking",
            ft_left=Feature(1, 25, 40.), ft_right=Feature(1, 25, 40.),
            ft_recall=Feature(1, 25, 40.), ft_noise=Feature(1, 25, 10.))

    @property
    def num_inputs(self) -> int:
        return int(self._dataset.num_inputs)

    def input_groups(self) -> Dict[str, slice]:
        """Input-channel slices: cue_left, cue_right, recall, noise."""
        names = {"cue_left": "left", "cue_right": "right", "recall": "recall", "noise": "noise"}
        return {key: self._dataset.features[name].i for key, name in names.items()}

    def sample(self, n: int, seed: int) -> TaskData:
        """n trials drawn with a fresh RandomState(seed) (reproducible, independent).

        The dataset object belongs to this task and reads its generator from `.rng`; it is
        re-seeded here at every call, so the trials depend on (n, seed) only.
        """
        self._dataset.rng = np.random.RandomState(seed)
        xs, ys, periods = [], [], None
        for i in range(n):
            X, y, period = self._dataset.sample_a_trial(i)
            xs.append(np.asarray(X, dtype=bool))
            ys.append(int(y))
            periods = np.asarray(period)
        X = np.stack(xs, axis=1)
        recall = periods == periods.max()  # the last period is 'recall'
        return TaskData(X, np.asarray(ys, dtype=np.int32), recall)


def make_task(name: str, dt: float, t_delay: float, num_cue: int) -> Any:
    """A new instance of the registered task `name`."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {tuple(TASKS)}")
    return TASKS[name](dt=dt, t_delay=t_delay, num_cue=num_cue)


# ----------------------------------------------------------------------------- losses
def ce_per_step(outs: Any, labels: Any) -> Any:
    """Softmax cross-entropy of readout `outs` (..., B, 2) against integer labels (B,)."""
    logp = jax.nn.log_softmax(outs, axis=-1)
    onehot = jax.nn.one_hot(labels, outs.shape[-1], dtype=outs.dtype)
    return -(logp * onehot).sum(axis=-1)


def recall_loss(outs: Any, labels: Any, recall: Any, kind: str = "step") -> Any:
    """Cross-entropy during the recall period, averaged over the batch; outs (T, B, 2).

    kind 'step': mean over recall steps of the per-step cross-entropy (causal: usable online);
    'mean': cross-entropy of the readout averaged over the recall period (the quantity the
    accuracy is read from; needs the whole recall period, so BPTT only).
    """
    if kind == "mean":
        return ce_per_step(recall_sum(outs, recall) / recall.sum(), labels).mean()
    ce = ce_per_step(outs, labels).mean(axis=-1)  # (T,)
    return (ce * recall).sum() / recall.sum()


def recall_sum(outs: Any, recall: Any) -> Any:
    """Readout summed over the recall period: (T, B, 2) -> (B, 2)."""
    return (outs * recall[:, None, None]).sum(axis=0)


def recall_correct(outs: np.ndarray, labels: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """Per-trial correctness: argmax of the readout summed over the recall period."""
    summed = np.asarray(outs)[np.asarray(recall)].sum(axis=0)  # (B, 2)
    return np.argmax(summed, axis=-1) == np.asarray(labels)
