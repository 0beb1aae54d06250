"""Fixtures shared by the tests (helpers live in tests/training_helpers.py). `tests` is a
regular package, so that it wins the import over any `tests` in site-packages (jaxley 0.14
installs one)."""
from __future__ import annotations

import pytest

from tests.training_helpers import run
from utils.training.task import TASKS, make_task


@pytest.fixture(scope="session")
def tiny_task():
    """The short evidence-accumulation task (dt 1 ms, 50 ms delay, 1 cue), one instance for
    the whole session."""
    return make_task("evidence_accumulation", 1.0, 50.0, 1)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One tiny training run (4 batches, last.npz after every batch) shared by the tests that
    read its outputs (copy a file before changing it); counts the task instances it creates."""
    created = []
    real = TASKS["evidence_accumulation"]

    def counting(**kw):
        created.append(kw)
        return real(**kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(TASKS, "evidence_accumulation", counting)
        out, metrics = run(tmp_path_factory.mktemp("trained"), "run", "--epochs", "4",
                           "--save_every", "1")
    return out, metrics, created
