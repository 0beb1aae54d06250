"""Run folders: fresh folders only, clear errors for unusable paths, readable files, status."""
import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from utils.run import (RunStatus, UserError, atomic_write_json, cli, compilation_cache_dir,
                       in_background, make_out_dir)


def test_existing_run_folder_is_refused_unless_reused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    with pytest.raises(UserError, match="already holds files"):
        make_out_dir("script", str(run), reuse=False)
    assert make_out_dir("script", str(run), reuse=True) == run
    assert (run / "metrics.json").read_text() == "{}"


def test_empty_existing_folder_is_accepted(tmp_path):
    assert make_out_dir("script", str(tmp_path), reuse=False) == tmp_path


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_out_dir_on_a_file_is_one_line(tmp_path, where):
    target = tmp_path / "f.txt"
    target.write_text("keep")
    out = target if where == "file" else target / "run"
    with pytest.raises(UserError, match="f.txt"):
        make_out_dir("script", str(out), reuse=False)
    assert target.read_text() == "keep"


def test_uncreatable_out_dir_is_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    # root may write into a read-only folder, but nobody can make folders in /sys
    out = "/sys/run-folder" if os.geteuid() == 0 else str(ro / "run")
    with pytest.raises(UserError, match="cannot create|not writable"):
        make_out_dir("script", out, reuse=False)


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "m.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("error,state", [(None, "done"), (KeyboardInterrupt, "interrupted"),
                                         (ValueError, "failed")])
def test_status_records_how_the_run_ended(tmp_path, error, state):
    def work(argv):
        with RunStatus(tmp_path):
            assert json.loads((tmp_path / "status.json").read_text())["state"] == "running"
            if error is not None:
                raise error("boom\nsecond line")

    if error is ValueError:
        with pytest.raises(ValueError):
            work(None)
    else:
        assert cli(work) == (0 if error is None else 130)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == state
    if error is ValueError:
        assert status["message"] == "ValueError: boom"


def test_compilation_cache_keeps_compiled_functions_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "cache"))
    assert compilation_cache_dir() == tmp_path / "cache"
    code = ("import jax, jax.numpy as jnp; from utils.run import use_compilation_cache; "
            "use_compilation_cache(); print(jax.jit(lambda x: jnp.sin(x) * 2)(1.0))")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert any((tmp_path / "cache").iterdir())


def test_compilation_cache_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compilation_cache_dir() == tmp_path / "brain-modeling-jax"


def test_background_steps_run_in_order_and_a_failure_ends_them_quietly(capfd):
    done, failed = [], threading.Event()

    def fail():
        done.append("fail")
        failed.set()
        raise ValueError("a warm-up that fails")

    in_background(lambda: done.append("first"), fail, lambda: done.append("never"))
    assert failed.wait(10)
    time.sleep(0.3)  # time for the thread to go on, were it to
    assert done == ["first", "fail"]
    assert "a warm-up that fails" not in capfd.readouterr().err
