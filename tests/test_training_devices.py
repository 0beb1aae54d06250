"""Data parallel training: 4 forced host devices give the 1-device losses and gradients, the
batch really is split, and bad device counts get one line. Runs in a subprocess (the device
count must be set before jax starts)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import task_training
from utils.run import cli

ROOT = Path(__file__).resolve().parents[1]
FOUR = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}

PROBE = """
import json, numpy as np
from utils.training.parallel import shard_batch
from utils.training.task import make_task, trial_seed
from utils.training.trainer import TrainConfig, _arrays, make_trainer
cfg = TrainConfig.make(n_rec=40, t_delay=50.0, num_cue=1, batch_size=8)
task = make_task(cfg.task, cfg.net.dt, cfg.t_delay, cfg.num_cue)
out = {}
for n in (1, 4):
    tr = make_trainer(cfg.replace(devices=n), task)
    grads = tr.gradients(task.sample(8, 99))
    out[n] = {"losses": [tr.train_step(task.sample(8, trial_seed(0, 0, ep)))[0]
                         for ep in range(4)],
              "grads": {k: v.tolist() for k, v in grads.items()}}
    if n == 4:
        xs, ys, _ = shard_batch(*_arrays(task.sample(8, 1)), tr.mesh)
        out["x_shards"] = [s.data.shape[1] for s in xs.addressable_shards]
        out["w_devices"] = len(tr.weights["w_out"].value["weight"].sharding.device_set)
print(json.dumps(out))
"""


@pytest.mark.slow  # 8-16 s; the default run stays under 5 minutes
def test_four_devices_train_like_one():
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=FOUR, check=True,
                          capture_output=True, text=True)
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert r["x_shards"] == [2, 2, 2, 2] and r["w_devices"] == 4
    one, four = np.asarray(r["1"]["losses"]), np.asarray(r["4"]["losses"])
    assert abs(four[0] / one[0] - 1) < 1e-5          # the first batch's loss
    assert np.max(np.abs(four / one - 1)) < 1e-3     # every batch of the 4-batch run
    for k, g1 in r["1"]["grads"].items():
        g1, g4 = np.asarray(g1), np.asarray(r["4"]["grads"][k])
        assert np.max(np.abs(g4 - g1)) <= 1e-4 * np.max(np.abs(g1)), k


def test_more_devices_than_present_is_one_line(tmp_path, capsys):
    code = cli(task_training.main, ["--devices", "64", "--out_dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "--devices 64" in err[0]
    assert not (tmp_path / "run").exists()


def test_batch_not_divisible_by_the_devices_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "task_training.py", "--n_rec", "20", "--t_delay",
                           "40", "--num_cue", "1", "--batch_size", "6", "--devices", "4",
                           "--epochs", "1", "--out_dir", str(tmp_path / "run")],
                          cwd=ROOT, env=FOUR, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: --batch_size 6 does not split")
    assert "Traceback" not in done.stderr and not (tmp_path / "run").exists()
