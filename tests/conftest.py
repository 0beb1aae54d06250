"""Fixtures shared by the tests (helpers live in tests/training_helpers.py). `tests` is a
regular package, so that it wins the import over any `tests` in site-packages (jaxley 0.14
installs one)."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# One compilation cache for the session, in a fresh folder removed at exit: the many tiny
# runs compile the same programs again (each Trainer or fit jits its own functions), and a
# cached executable is the one XLA would compile. Set before any test compiles (JAX decides
# once per process whether to use the cache), and in the environment for the scripts the
# tests start as subprocesses, so they neither read nor fill the user's cache.
_CACHE = tempfile.mkdtemp(prefix="jax-cache-tests-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE

from utils.run import use_compilation_cache  # noqa: E402  (after the variable it reads)

use_compilation_cache()

from tests.training_helpers import run  # noqa: E402
from utils.training.task import TASKS, make_task  # noqa: E402


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


@pytest.fixture
def unrendered_figures(monkeypatch):
    """A training run's figures are made but not rendered to PNG nor written (rendering is a
    third of a tiny run): for the tests that check no figure. A test that looks for the files
    fails. The figures are rendered and checked in test_main_writes_config_metrics_checkpoint_
    and_figures (training) and test_sim_mode_from_checkpoint_and_fresh (--mode sim)."""
    import sys
    from pathlib import Path

    import utils.training.runs as runs

    def unrendered(fig, path, show=False, tight=True):
        if "matplotlib.pyplot" in sys.modules:  # as save_figure: pyplot keeps its figures
            sys.modules["matplotlib.pyplot"].close(fig)
        return Path(path)

    monkeypatch.setattr(runs, "save_figure", unrendered)
