"""benchmarks/online_credit.py: per-group gradient agreement of the online methods with BPTT."""
import json

import numpy as np
import pytest

from benchmarks import online_credit
from utils.run import cli

TINY = ["--n_rec", "40", "--t_delay", "50", "--num_cue", "1", "--batch_size", "8"]


def test_cosine_and_groups():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert online_credit.cosine(a, a) == pytest.approx(1.0)
    assert online_credit.cosine(a, -a) == pytest.approx(-1.0)
    assert online_credit.cosine(a, np.zeros_like(a)) == 0.0
    g = {"w_in": np.arange(200.0).reshape(100, 2), "w_e": np.ones(3), "w_i": np.ones(3),
         "w_out": np.ones(2)}
    ref = dict(g, w_in=g["w_in"].copy())
    ref["w_in"][:25] *= -1  # flip the left-cue rows only
    channels = {"cue_left": slice(0, 25), "cue_right": slice(25, 50), "recall": slice(50, 75),
                "noise": slice(75, 100)}
    cos = online_credit.group_cosines(g, ref, channels)
    assert cos["cue_left"] == pytest.approx(-1.0)
    assert all(cos[k] == pytest.approx(1.0) for k in cos if k != "cue_left")


def test_expsm_diag_cue_credit_points_against_bptt(tmp_path):
    """The documented limitation (README, "Online learning"): ES-D-RTRL's gradient for the
    cue-input weights points against BPTT's (measured -0.3 to -0.8 on this tiny task for
    seeds 0-2; -0.65 on the 40-neuron, 3-cue task) while every other group agrees. Fails
    when a braintrace or model change fixes (or moves) this: re-measure and update the README."""
    res = online_credit.main(TINY + ["--batches", "1", "--every", "1", "--seed", "0",
                                     "--out_dir", str(tmp_path)])
    cos = res["rows"][0]["cos"]
    assert cos["cue_left"] + cos["cue_right"] < -0.4, cos
    assert min(cos[k] for k in ("recall", "noise", "w_e", "w_i")) > 0.4, cos
    assert cos["w_out"] > 0.9, cos
    saved = json.loads((tmp_path / "online_credit.json").read_text())
    assert [r["batch"] for r in saved["rows"]] == [0, 1]
    assert (tmp_path / "online_credit.png").stat().st_size > 0


@pytest.mark.parametrize("value", ["0", "1", "1.5"])
def test_bad_decay_refused(value, capsys, tmp_path):
    code = cli(online_credit.main, ["--etrace_decay", value, "--out_dir", str(tmp_path)])
    assert code == 1 and "--etrace_decay" in capsys.readouterr().err
    assert not (tmp_path / "online_credit.json").exists()


def test_markdown_table_has_a_row_per_comparison():
    rows = [{"batch": b, "acc": 0.5, "cos": {k: -0.5 if k.startswith("cue") else 0.8
                                             for k in online_credit.GROUPS}} for b in (0, 10)]
    lines = online_credit.markdown_table(rows).splitlines()
    assert len(lines) == 4 and lines[0].count("|") == len(online_credit.GROUPS) + 3
    assert lines[3].startswith("| 10 | 0.50 | -0.50 | -0.50 | +0.80")
