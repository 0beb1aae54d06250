"""Training across processes: two local processes joined by jax.distributed (CPU collectives,
gloo, on 127.0.0.1) train like one process; a missing coordinator, a missing variable and a
batch that does not split over the processes get one line each and write nothing."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest

import task_training
from tests.process_helpers import ROOT, free_port, process_env
from utils.run import UserError, cli
from utils.training import parallel

TINY_RUN = ["--n_rec", "20", "--t_delay", "60", "--num_cue", "1", "--batch_size", "4",
            "--epochs", "2", "--eval_every", "1", "--n_val", "4", "--n_test", "4",
            "--seed", "3"]


def history(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow  # 8-16 s; the default run stays under 5 minutes
def test_two_processes_train_like_one(tmp_path, unrendered_figures):
    port, out = free_port(), tmp_path / "two"
    procs = [subprocess.Popen([sys.executable, "task_training.py", *TINY_RUN,
                               "--out_dir", str(out)], cwd=ROOT, env=process_env(port, pid),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for pid in (0, 1)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-2000:] for r in results]
    assert cli(task_training.main, [*TINY_RUN, "--devices", "1",
                                    "--out_dir", str(tmp_path / "one")]) == 0
    two, one = history(out), history(tmp_path / "one")
    assert (two["processes"], two["devices"]) == (2, 2)
    assert (one["processes"], one["devices"]) == (1, 1)
    loss2 = np.array([h["loss"] for h in two["history"]])
    loss1 = np.array([h["loss"] for h in one["history"]])
    assert np.max(np.abs(loss2 / loss1 - 1)) < 1e-5
    for key in ("acc", "val_acc"):
        assert [h[key] for h in two["history"]] == [h[key] for h in one["history"]]
    assert two["test_acc"] == one["test_acc"]
    # process 1 wrote nothing of its own: one run folder, printed by process 0 only
    assert "results in" in results[0][0] and "results in" not in results[1][0]


def test_absent_coordinator_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "task_training.py", *TINY_RUN,
                           "--out_dir", str(tmp_path / "run")], cwd=ROOT,
                          env=process_env(free_port(), 1, timeout=2),
                          capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith("error: no coordinator answers at 127.0.0.1:")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("env, message", [
    ({"JAX_PROCESS_ID": "0"}, "JAX_NUM_PROCESSES is not"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}, "JAX_PROCESS_ID 2 must be in"),
    ({"JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"}, "JAX_NUM_PROCESSES must be an integer"),
])
def test_bad_distributed_variables_are_one_line(tmp_path, monkeypatch, capsys, env, message):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1")
    for k in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert cli(task_training.main, [*TINY_RUN, "--out_dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "run").exists()


def _two_processes(monkeypatch, per_process):
    """jax seen as `len(per_process)` processes with these device counts."""
    devices = [SimpleNamespace(process_index=p, id=1000 * p + k)
               for p, n in enumerate(per_process) for k in range(n)]
    monkeypatch.setattr(jax, "process_count", lambda: len(per_process))
    monkeypatch.setattr(jax, "devices", lambda: devices)


def test_batch_must_split_over_every_process(monkeypatch):
    _two_processes(monkeypatch, [1, 1])
    with pytest.raises(UserError, match=r"--batch_size 3 does not split over 2 devices \(1 in "
                                        r"each of 2 processes\)"):
        parallel.data_mesh(1, 3)


def test_processes_with_unequal_devices_are_refused(monkeypatch):
    _two_processes(monkeypatch, [1, 2])
    with pytest.raises(UserError, match=r"different numbers of devices \(\[1, 2\]\): give "
                                        r"--devices"):
        parallel.data_mesh(None, 4)


def test_a_refused_run_folder_is_refused_by_every_process(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "other_run.txt").write_text("x")
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "task_training.py", *TINY_RUN,
                               "--out_dir", str(out)], cwd=ROOT, env=process_env(port, pid),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for pid in (0, 1)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [1, 1]
    for err in errors:
        assert err.strip().splitlines()[-1].startswith(f"error: --out_dir {out} already holds")
    assert sorted(p.name for p in out.iterdir()) == ["other_run.txt"]


@pytest.mark.slow  # 8-16 s; the default run stays under 5 minutes
def test_ctrl_c_to_one_process_stops_both_after_the_same_batch(tmp_path):
    port, out = free_port(), tmp_path / "run"
    argv = [*TINY_RUN[:TINY_RUN.index("--epochs")], "--epochs", "100000", "--eval_every",
            "1000", "--save_every", "1", "--n_val", "4", "--n_test", "4"]
    procs = [subprocess.Popen([sys.executable, "task_training.py", *argv, "--out_dir", str(out)],
                              cwd=ROOT, env=process_env(port, pid), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for pid in (0, 1)]
    deadline = time.monotonic() + 240
    while not (out / "last.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # training runs: the first batch is saved
    procs[1].send_signal(signal.SIGINT)
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [130, 130], [r[1][-1500:] for r in results]
    metrics = history(out)
    assert metrics["interrupted"] and 0 < metrics["epochs_run"] < 100000
    assert (out / "last.npz").exists()
