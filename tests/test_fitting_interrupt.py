"""Ctrl-C (SIGINT) on a real fitting process while the L-BFGS-B lockstep threads run: exit 130,
no traceback and no 'terminate called' abort, the finished method kept in metrics.json."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.fitting_helpers import python_sigint

ROOT = Path(__file__).resolve().parents[1]


def test_sigint_during_the_gradient_method(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "neuron_fitting_of_hh_model.py", "--methods", "DE,gradient",
           "--budget", "10", "--popsize", "10", "--n_starts", "30", "--maxiter", "500",
           "--out_dir", str(out)]
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    with python_sigint():  # the child's SIGINT: its default, whatever this process inherited
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    err, started = [], threading.Event()

    def read():
        for chunk in iter(lambda: proc.stderr.read(64), ""):
            err.append(chunk)
            if re.search(r"gradient: [1-9]\d*sim", "".join(err)):
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(60), "".join(err)  # the lockstep threads are evaluating
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGINT)
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    stderr = "".join(err)
    assert rc == 130, stderr
    assert "Traceback" not in stderr and "terminate" not in stderr, stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["interrupted"] is True and list(m["methods"]) == ["DE"]
    assert m["not_finished"] == ["gradient"]
    assert json.loads((out / "status.json").read_text())["state"] == "interrupted"
