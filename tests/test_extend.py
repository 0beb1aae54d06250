"""Extending the network family (a neuron model is one class and one registry entry), and
the resources a run can run out of (memory, disk), each refused in one line."""
from __future__ import annotations

import errno
import json

import jax
import numpy as np
import pytest

import task_training
import utils.run
from models.networks import NEURONS, NeuronSpec
from models.networks.base import V_TH, EINetwork
from tests.training_helpers import TINY
from utils.run import UserError, atomic_write_json, cli
from utils.training.config import TrainConfig
from utils.training.memory import check_memory, estimate_bytes


class ToyLIF(EINetwork):
    """A leaky integrate-and-fire network: what a new neuron model has to write."""

    def get_spike(self) -> jax.Array:
        return self.spk_fun(self.V.value - V_TH)

    def update(self, x: jax.Array) -> jax.Array:
        V = self.V.value
        z = self.spk_fun(V - V_TH)
        g_e, g_i = self.conductances(x, z)
        drive = g_e * (self.E_EXC - V) + g_i * (self.E_INH - V)
        self.V.value = V + self.cfg.dt / self.cfg.tau_neu * (drive - V) - V_TH * z
        return self.readout(self.spk_fun(self.V.value - V_TH))


TOY = NeuronSpec("tests.test_extend:ToyLIF", {"tau_neu": 20.0, "ff_scale": 1.0,
                                              "rec_scale": 1.0, "lr": 1e-2, "lr_decay": 1.0},
                 "leaky IF (a test's toy)")


def test_a_registered_toy_neuron_is_offered_and_trains_a_batch(monkeypatch, tmp_path,
                                                                 unrendered_figures):
    monkeypatch.setitem(NEURONS, "toy", TOY)
    assert "leaky IF (a test's toy)" in task_training.build_parser().format_help()
    out = tmp_path / "toy"
    metrics = task_training.main(TINY + ["--neuron", "toy", "--method", "expsm_diag",
                                         "--batches", "1", "--out_dir", str(out)])
    assert metrics["neuron"] == "toy" and len(metrics["history"]) == 1
    assert np.isfinite(metrics["history"][0]["loss"]) and metrics["test_acc"] is not None
    config = json.loads((out / "config.json").read_text())
    assert config["neuron"] == "toy" and config["tau_neu"] == 20.0  # its own default


def test_a_network_too_large_for_memory_is_refused_before_allocating(capsys, tmp_path):
    code = cli(task_training.main, ["--n_rec", "60000", "--out_dir", str(tmp_path / "big")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "--n_rec 60000" in err and "GB" in err and "use --n_rec" in err
    assert not (tmp_path / "big").exists()


def test_memory_estimate_grows_with_the_network_and_suggests_sparse():
    small, large = (max(estimate_bytes(TrainConfig.make(n_rec=n))) for n in (200, 4000))
    assert 0 < small < large
    dense = TrainConfig.make(n_rec=4000, method="diag")
    with pytest.raises(UserError, match="--conn_method gaussian"):
        check_memory(dense, available=1.5e9)  # dense traces do not fit, gaussian ones do
    check_memory(TrainConfig(), available=24e9)


def test_a_full_disk_gives_one_line_and_keeps_the_file_already_written(monkeypatch, capsys,
                                                                         tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write_json(path, {"kept": True})

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    def main(argv):
        monkeypatch.setattr(utils.run.os, "chmod", disk_full)
        atomic_write_json(path, {"kept": False})

    assert cli(main, []) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left" in err and str(path) in err
    assert json.loads(path.read_text()) == {"kept": True}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left


def test_settings_refuse_an_unknown_name():
    with pytest.raises(TypeError, match="n_neurons"):
        TrainConfig.make(n_neurons=3)
    assert TrainConfig.make(n_rec=7).net.n_rec == 7
