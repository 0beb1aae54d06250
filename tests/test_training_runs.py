"""task_training.py run folders: never overwrite another run, write nothing on refused input,
survive interrupts (resume equals an uninterrupted run), refuse damaged checkpoints."""
import json
import os
import signal

import numpy as np
import pytest

import task_training
from tests.training_helpers import TINY
from utils.run import cli
from utils.training.trainer import Trainer


def snapshot(folder):
    """Every file of a folder and its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def one_line_error(capsys, *words):
    """The run printed one error line (besides progress bars) naming `words`."""
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "it/s]" not in line]
    assert len(err) == 1 and err[0].startswith("error:"), err
    for w in words:
        assert w in err[0], (w, err[0])


def test_sim_into_a_training_run_folder_is_refused_and_changes_nothing(trained, capsys):
    out, _, _ = trained
    before = snapshot(out)
    argv = ["--mode", "sim", "--checkpoint", str(out), "--out_dir", str(out)]
    assert cli(task_training.main, argv) == 1
    one_line_error(capsys, "already holds files")
    assert snapshot(out) == before


def test_refused_run_into_an_existing_folder_writes_nothing(trained, capsys):
    out, _, _ = trained
    before = snapshot(out)
    assert cli(task_training.main, TINY + ["--n_rec", "3", "--out_dir", str(out)]) == 1
    assert cli(task_training.main, TINY + ["--epochs", "1", "--out_dir", str(out)]) == 1
    assert snapshot(out) == before


def damage(path, how):
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "bitflip":  # a byte inside the first stored array: the zip CRC catches it
        pos = data.index(b"param/") + 200
        path.write_bytes(data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:])
    else:
        path.write_bytes(np.random.default_rng(0).bytes(len(data)))


@pytest.mark.parametrize("how", ["empty", "truncated", "bitflip", "random"])
def test_damaged_last_state_is_one_line_and_the_run_is_left_alone(trained, tmp_path, capsys,
                                                                  how):
    src, _, _ = trained
    out = tmp_path / "copy"
    out.mkdir()
    for f in src.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    damage(out / "last.npz", how)
    before = snapshot(out)
    assert cli(task_training.main, ["--resume", str(out), "--epochs", "6"]) == 1
    one_line_error(capsys, "last.npz")
    assert "allow_pickle" not in capsys.readouterr().err
    assert snapshot(out) == before
    damage(out / "checkpoint.npz", how)
    argv = ["--mode", "sim", "--checkpoint", str(out), "--out_dir", str(tmp_path / "sim")]
    assert cli(task_training.main, argv) == 1
    one_line_error(capsys, "checkpoint.npz")
    assert not (tmp_path / "sim").exists()


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_out_dir_on_a_file_is_one_line(tmp_path, capsys, where):
    f = tmp_path / "results.txt"
    f.write_text("keep")
    out = f if where == "file" else f / "run"
    assert cli(task_training.main, TINY + ["--epochs", "1", "--out_dir", str(out)]) == 1
    one_line_error(capsys, "results.txt")
    assert f.read_text() == "keep"


def interrupt_at(monkeypatch, batch, hard=False):
    """Ctrl-C during batch `batch` (1-based): a signal after its step (graceful), or a
    KeyboardInterrupt raised after the weights changed but before the batch was recorded."""
    real = Trainer.train_step
    calls = []

    def step(self, data):
        out = real(self, data)
        calls.append(1)
        if len(calls) == batch:
            if hard:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(Trainer, "train_step", step)


@pytest.mark.parametrize("hard", [False, True])
def test_interrupted_then_resumed_equals_uninterrupted(trained, tmp_path, monkeypatch, capsys,
                                                       unrendered_figures, hard):
    _, full, _ = trained
    out = tmp_path / "run"
    with monkeypatch.context() as mp:
        interrupt_at(mp, 3, hard=hard)
        assert cli(task_training.main, TINY + ["--epochs", "4", "--out_dir", str(out)]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--resume" in err
    done = 3 if not hard else 2  # a graceful stop finishes batch 3; a hard one discards it
    assert f"interrupted after batch {done}" in err
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["interrupted"] and [h["epoch"] for h in saved["history"]] == list(
        range(1, done + 1))
    assert json.loads((out / "status.json").read_text())["state"] == "interrupted"
    resumed = task_training.main(["--resume", str(out)])
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in full["history"]]
    assert resumed["test_acc"] == full["test_acc"]
    assert json.loads((out / "status.json").read_text())["state"] == "done"


def test_interrupt_during_final_evaluation_keeps_the_history(tmp_path, monkeypatch, capsys):
    def interrupted_evaluation(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("utils.training.runs.evaluate_and_plot", interrupted_evaluation)
    out = tmp_path / "run"
    assert cli(task_training.main, TINY + ["--epochs", "2", "--out_dir", str(out)]) == 130
    assert "training state is in" in capsys.readouterr().err
    saved = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in saved["history"]] == [1, 2] and saved["test_acc"] is None
    assert json.loads((out / "status.json").read_text())["state"] == "interrupted"


def test_failed_run_is_marked_failed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(Trainer, "train_step", lambda self, data: (float("nan"), 0.5))
    out = tmp_path / "run"
    assert cli(task_training.main, TINY + ["--epochs", "2", "--out_dir", str(out)]) == 1
    one_line_error(capsys, "diverged")
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "diverged" in status["message"]
