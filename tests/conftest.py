"""Fixtures shared by the tests (helpers live in tests/training_helpers.py)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# `tests` names this folder (a namespace package: `from tests.training_helpers import ...`).
# A regular package called `tests` in site-packages (jaxley 0.14 installs one) would win the
# import over a namespace package, whatever sys.path says; bind the name to this folder.
_HERE = Path(__file__).resolve().parent
if [Path(p).resolve() for p in getattr(sys.modules.get("tests"), "__path__", [])] != [_HERE]:
    _spec = importlib.util.spec_from_loader("tests", loader=None, is_package=True)
    _pkg = importlib.util.module_from_spec(_spec)
    _pkg.__path__ = [str(_HERE)]
    sys.modules["tests"] = _pkg

from utils.training.task import make_task


@pytest.fixture(scope="session")
def tiny_task():
    """The short evidence-accumulation task (dt 1 ms, 50 ms delay, 1 cue), one instance for
    the whole session."""
    return make_task("evidence_accumulation", 1.0, 50.0, 1)
