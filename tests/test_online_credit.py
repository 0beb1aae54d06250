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


def test_expsm_diag_cue_credit_agrees_with_bptt_on_the_gif_network(tmp_path):
    """On the GIF network (the default) ES-D-RTRL's cue-input credit points with BPTT's
    (measured +0.21 left, +0.29 right at seed 0 on this tiny task; every group +0.1 to +0.35,
    the readout +0.82: its trace is smoothed with the trace decay, not the readout's), the
    reason it learns the task there."""
    res = online_credit.main(TINY + ["--batches", "1", "--every", "1", "--seed", "0",
                                     "--out_dir", str(tmp_path)])
    cos = res["rows"][0]["cos"]
    assert cos["cue_left"] > 0.1 and cos["cue_right"] > 0.1, cos
    assert min(cos.values()) > 0.05 and cos["w_out"] > 0.7, cos


def test_expsm_diag_cue_credit_points_against_bptt_on_the_alif_network(tmp_path):
    """The documented limitation of the adaptive-LIF network (docs/NOTES.md, "Where
    ES-D-RTRL's credit goes"): ES-D-RTRL's gradient for the cue-input weights points against
    BPTT's (measured -0.3 to -0.8 on this tiny task for seeds 0-2; -0.65 on the 40-neuron,
    3-cue task) while every other group agrees. Fails when a braintrace or model change fixes
    (or moves) this: re-measure and update the docs."""
    res = online_credit.main(TINY + ["--neuron", "alif", "--batches", "1", "--every", "1",
                                     "--seed", "0", "--out_dir", str(tmp_path)])
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
