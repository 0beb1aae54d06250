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

from typing import Any, Dict, Iterator, Optional

import jax
import numpy as np

from utils.training.config import TASKS

__all__ = ["TASKS", "make_task", "TaskData", "SeededTrials", "BrainpyTask",
           "EvidenceAccumulationTask", "DelayComparisonTask", "DelayMatchSampleTask",
           "trial_seed",
           "ce_per_step", "recall_loss", "recall_sum", "recall_correct"]


class TaskData:
    """A batch of trials, time-major: X (T, n, n_in) bool spikes, y (n,) int32 labels, recall
    (T,) bool (the steps with loss: the task's decision period); optional delay (T,) bool (the
    task's delay period) and stimulus (n,) int (what the delay must hold: the label, the first
    frequency, the sample direction)."""

    def __init__(self, X: np.ndarray, y: np.ndarray, recall: np.ndarray,
                 delay: Optional[np.ndarray] = None, stimulus: Optional[np.ndarray] = None):
        self.X, self.y, self.recall, self.delay, self.stimulus = X, y, recall, delay, stimulus

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def take(self, idx: np.ndarray) -> "TaskData":
        """Trials `idx` (may repeat, for padding)."""
        return TaskData(self.X[:, idx], self.y[idx], self.recall, self.delay,
                        None if self.stimulus is None else self.stimulus[idx])


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
        stim = None if parts[0].stimulus is None else \
            np.concatenate([d.stimulus for d in parts])[:k]
        return TaskData(X, y, parts[0].recall, parts[0].delay, stim)


class _DrawLog:
    """A numpy RandomState that remembers what `choice` and `randint` drew (in order), so a
    task's hidden stimulus (e.g. the first frequency) can be read back exactly."""

    def __init__(self, seed: int):
        self._rng, self.drawn = np.random.RandomState(seed), []

    def choice(self, *args: Any, **kwargs: Any) -> Any:
        self.drawn.append(self._rng.choice(*args, **kwargs))
        return self.drawn[-1]

    def randint(self, *args: Any, **kwargs: Any) -> Any:
        self.drawn.append(self._rng.randint(*args, **kwargs))
        return self.drawn[-1]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rng, name)


class BrainpyTask:
    """A spiking-mode task of brainpy_datasets.cognitive (`self._dataset`), its trials drawn
    one by one with `sample_a_trial`. Subclasses say how a trial's (X, Y, periods, draws) give
    its label and stimulus, which period is the delay and which steps carry the loss."""

    delay_period: str = "delay"

    @property
    def num_inputs(self) -> int:
        return int(self._dataset.num_inputs)

    def input_groups(self) -> Dict[str, slice]:
        """Input-channel slices by feature name."""
        return {name: self._dataset.features[name].i for name in self.groups}

    def periods(self, periods: Any) -> np.ndarray:
        """(T,) int, the index of each step's period in `self.period_names`."""
        return np.asarray(periods)

    def sample(self, n: int, seed: int) -> TaskData:
        """n trials drawn with a fresh RandomState(seed) (reproducible, independent).

        The dataset object belongs to this task and reads its generator from `.rng`; it is
        re-seeded here at every call, so the trials depend on (n, seed) only.
        """
        xs, ys, stims, per = [], [], [], None
        for i in range(n):
            self._dataset.rng = log = _DrawLog(seed) if i == 0 else self._dataset.rng
            start = len(log.drawn)
            X, Y, periods = self._dataset.sample_a_trial(i)
            xs.append(np.asarray(X) > 0.5)
            label, stim = self.label_and_stimulus(np.asarray(Y), log.drawn[start:])
            ys.append(label)
            stims.append(stim)
            per = self.periods(periods)
        names = self.period_names
        return TaskData(np.stack(xs, axis=1), np.asarray(ys, dtype=np.int32),
                        per == names.index(self.decision_period),
                        per == names.index(self.delay_period), np.asarray(stims, dtype=np.int32))


class EvidenceAccumulationTask(BrainpyTask):
    """brainpy-datasets' EvidenceAccumulation (spiking input: 25 left-cue, 25 right-cue,
    25 recall and 25 noise channels; label 1 <=> more left cues than right ones; loss in the
    recall period).

    brainpy-datasets 0.0.0.7 shares its default Feature objects between instances and shifts
    them at every construction, so a second default instance moves the channels of every
    instance (docs/NOTES.md S5). Each instance here gets its own Feature objects (same
    values as the defaults); tests/test_task_training.py checks the channel layout after
    creating a second instance.
    """

    groups = {"cue_left": "left", "cue_right": "right", "recall": "recall", "noise": "noise"}
    decision_period = "recall"

    def __init__(self, dt: float, t_delay: float, num_cue: int):
        # imported here: brainpy-datasets starts jax's backend at import, which in a
        # multi-process run must follow jax.distributed.initialize (parallel.init_distributed)
        from brainpy_datasets.cognitive import EvidenceAccumulation, Feature
        self._dataset = EvidenceAccumulation(
            dt=dt, t_delay=t_delay, num_cue=num_cue, mode="spiking",
            ft_left=Feature(1, 25, 40.), ft_right=Feature(1, 25, 40.),
            ft_recall=Feature(1, 25, 40.), ft_noise=Feature(1, 25, 10.))
        self.period_names = list(self._dataset.periods)

    def input_groups(self) -> Dict[str, slice]:
        """Input-channel slices: cue_left, cue_right, recall, noise."""
        return {key: self._dataset.features[name].i for key, name in self.groups.items()}

    @staticmethod
    def label_and_stimulus(Y: Any, drawn: list) -> tuple[int, int]:
        """The label (more left cues) is also what the delay holds."""
        return int(Y), int(Y)


class DelayComparisonTask(BrainpyTask):
    """brainpy-datasets' DelayComparison in spiking mode (Romo et al.'s parametric working
    memory: frequency f1 on 20 'choice' channels, a delay, then f2; 20 'fixation' channels
    throughout, 20 'recall' channels in the decision period). Label 1 <=> f1 > f2; loss in the
    decision period (100 ms); the stimulus held in the delay is f1's index among the ten
    frequencies."""

    groups = ("fixation", "choice", "recall")
    period_names = ["fixation", "stimulus1", "delay", "stimulus2", "decision"]
    decision_period = "decision"

    def __init__(self, dt: float, t_delay: float, num_cue: int):
        from brainpy_datasets.cognitive import DelayComparison, Feature
        self._dataset = DelayComparison(
            dt=dt, t_delay=t_delay, mode="spiking", ft_fixation=Feature(1, 20, 100.),
            ft_choice=Feature(1, 20, 100.), ft_recall=Feature(1, 20, 100.))

    def label_and_stimulus(self, Y: Any, drawn: list) -> tuple[int, int]:
        """Y is 1 (f1 bigger) or 2 in the decision period; drawn[0] is (f1, f2)."""
        f1 = drawn[0][0]
        return int(Y[-1] == 1), int(np.argmin(np.abs(self._dataset.stimuli - f1)))


class DelayMatchSampleTask(BrainpyTask):
    """brainpy-datasets' CircleFeatDMS in spiking mode (delayed match-to-sample of a
    direction: 100 direction-tuned channels, von Mises tuning, 40 Hz peak, 1 Hz background;
    fixation 500 ms, sample 500 ms, delay, test 500 ms). Label 1 <=> the test direction matches
    the sample's; loss in the test period (the task's decision period: there is no separate
    response period); the stimulus held in the delay is the sample direction (0-7)."""

    period_names = ["fixation", "sample", "delay", "test"]
    decision_period = "test"

    def __init__(self, dt: float, t_delay: float, num_cue: int):
        from brainpy_datasets.cognitive import CircleFeatDMS, Feature
        self._dataset = CircleFeatDMS(dt=dt, t_delay=t_delay, mode="spiking",
                                      ft_motion=Feature(24, 100, 40.))

    def input_groups(self) -> Dict[str, slice]:
        return {"motion": slice(0, self.num_inputs)}

    def periods(self, periods: Any) -> np.ndarray:
        return np.asarray(periods["times"])

    @staticmethod
    def label_and_stimulus(Y: Any, drawn: list) -> tuple[int, int]:
        """Y (T, 3) one-hot, column 2 'match' in the test period; drawn[:2] are (match,
        sample direction)."""
        return int(Y[-1, 2] == 1), int(drawn[1])


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
