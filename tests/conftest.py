"""Fixtures shared by the tests (helpers live in tests/training_helpers.py)."""
from __future__ import annotations

import pytest

from utils.training.task import make_task


@pytest.fixture(scope="session")
def tiny_task():
    """The short evidence-accumulation task (dt 1 ms, 50 ms delay, 1 cue), one instance for
    the whole session."""
    return make_task("evidence_accumulation", 1.0, 50.0, 1)
