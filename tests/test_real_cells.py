"""Fitting recorded cells: what is read from a recording before the fit (spikes, noise,
passive properties, threshold), starts placed by it, the spike-aware objective and its
gradient, held-out sweeps, and a failed fit that says so."""
import csv
import json
import subprocess
import sys

import jax
import numpy as np
import pytest

import neuron_fitting_of_hh_model as hh
from models import NEURON_MODELS
from models.hh import HH_DEFAULTS, hh_starts_from
from tests.fitting_helpers import write_csv
from tests.process_helpers import ROOT
from utils.fitting.features import (baseline_noise, depolarizing_epochs, estimate_cell,
                                    recorded_spike_times, stimulus_kind, subthreshold_mask)
from utils.fitting.efeatures import compare_features
from utils.fitting.starts import ANCHOR_SPREAD, draw_starts
from utils.fitting import objectives
from utils.fitting.objectives import make_objectives
from utils.fitting.pipeline import problem_from_flags
from utils.fitting.problem import simulate_cell
from utils.fitting.recorded import gamma_window
from utils.fitting.rows import TEST_COLUMNS, cell_row, format_test, write_cells_csv
from utils.fitting.verdict import judge, score_sweeps
from utils.run import cli

DT = 0.05


def rc_cell(r_in=150.0, tau=20.0, v_rest=-65.0, noise=0.2, seed=0):
    """A passive RC membrane's exact step responses (not our models): steps of -50 and -100 pA
    from 20 to 120 ms, sampled every DT ms, with white noise."""
    t = np.arange(int(200 / DT)) * DT
    on, after = (t >= 20) & (t < 120), t >= 120
    current = np.zeros((2, t.size))
    v = np.full((2, t.size), v_rest)
    for k, amp in enumerate((-0.05, -0.1)):
        current[k, on] = amp
        v[k, on] += amp * r_in * (1 - np.exp(-(t[on] - 20) / tau))
        v[k, after] += amp * r_in * (1 - np.exp(-100 / tau)) * np.exp(-(t[after] - 120) / tau)
    return current, v + np.random.default_rng(seed).normal(0, noise, v.shape)


def test_passive_properties_of_an_rc_membrane_are_recovered():
    current, v = rc_cell()
    est = estimate_cell(current, v, DT)
    assert est.r_in == pytest.approx(150.0, rel=0.03)
    assert est.tau == pytest.approx(20.0, rel=0.05)
    assert est.v_rest == pytest.approx(-65.0, abs=0.1)
    assert est.noise == pytest.approx(0.2, rel=0.1)
    assert est.v_threshold is None and est.n_spikes == 0


def test_hh_starts_from_its_own_recording_land_near_its_parameters():
    model = NEURON_MODELS["hh"]()
    current = np.zeros((3, 8000))
    current[0, 2000:6000], current[1, 2000:6000], current[2, 2000:6000] = 0.1, 0.3, -0.1
    truth = {**HH_DEFAULTS, "vth": -58.0}
    v, _ = simulate_cell(model, truth, current, DT)
    starts = hh_starts_from(estimate_cell(current, v, DT).as_dict())
    assert starts["gl"] == pytest.approx(truth["gl"], rel=0.1)
    assert starts["C"] == pytest.approx(truth["C"], rel=0.1)
    assert starts["vth"] == pytest.approx(truth["vth"], abs=3.0)
    assert starts["EL"] == pytest.approx(truth["EL"], abs=1.0)


def test_an_action_potential_with_noise_at_the_crossing_counts_once():
    v = np.full((1, 100), -60.0)
    v[0, 10:14] = [-21.0, -19.0, -21.0, -19.5]   # noise around -20 mV: one spike
    v[0, 14:18] = [10.0, 20.0, -10.0, -25.0]
    v[0, 40:43] = [-10.0, 20.0, -70.0]           # after falling below -30 mV: a second
    spikes = recorded_spike_times(v, 0.1)[0]
    assert len(spikes) == 2
    assert spikes[0] == pytest.approx(1.05) and 3.9 < spikes[1] < 4.0


def test_the_subthreshold_mask_leaves_out_each_spikes_window():
    mask = subthreshold_mask([np.array([5.0])], 100, 0.1)[0]
    assert not mask[40:91].any() and mask[:40].all() and mask[91:].all()


def test_noise_is_read_from_the_baseline_despite_drift():
    t = np.arange(4000) * DT
    v = -60 + 0.02 * t + np.random.default_rng(1).normal(0, 0.5, t.size)
    current = np.where(t > 150, 0.1, 0.0)
    assert baseline_noise(v[None], current[None], DT) == pytest.approx(0.5, rel=0.1)


def test_starts_sit_around_the_anchor_and_are_uniform_without_one():
    plain = draw_starts(6, 3, seed=4)
    assert np.array_equal(plain, np.random.default_rng(4).uniform(size=(6, 3)))
    anchored = draw_starts(6, 3, seed=4, anchor=np.array([0.3, np.nan, 0.95]))
    assert np.array_equal(anchored[0, [0, 2]], [0.3, 0.95])
    assert np.all(np.abs(anchored[:, 0] - 0.3) <= ANCHOR_SPREAD)
    assert np.all(anchored[:, 2] <= 1.0) and np.array_equal(anchored[:, 1], plain[:, 1])


def spiking_recordings(tmp_path, g_na_scale=1.0, rows=3):
    """HH sweeps at 20 kHz written as CSV: 120 ms, a -0.1 nA step then a spiking step."""
    model = NEURON_MODELS["hh"]()
    current = np.zeros((rows, 2400))
    current[:, 400:1200] = -0.1
    current[:, 1600:2200] = np.linspace(0.3, 0.6, rows)[:, None]
    params = {**HH_DEFAULTS, "g_na": HH_DEFAULTS["g_na"] * g_na_scale}
    v, _ = simulate_cell(model, params, current, DT)
    return (write_csv(tmp_path / "I.csv", current), write_csv(tmp_path / "V.csv", v))


def recorded_flags(paths, *extra):
    return ["--data_current", paths[0], "--data_voltage", paths[1], "--dt", str(DT), *extra]


def test_recordings_with_spikes_get_the_spike_aware_loss_whose_gradient_is_exact(tmp_path):
    flags = recorded_flags(spiking_recordings(tmp_path), "--fit", "gl,g_na,vth")
    problem = problem_from_flags(hh.DEFAULTS, flags)
    # 2 spikes in the 30 ms depolarizing step: a quarter interval 3.75 ms, below 4 ms
    assert problem.spike_weight == 2e4 and problem.gamma_window == pytest.approx(3.75)
    assert problem.anchor is not None and set(problem.anchor) == {"gl", "vth"}
    plain = problem_from_flags(hh.DEFAULTS, flags + ["--spike_weight", "0"])
    assert plain.spike_weight == 0.0
    obj = make_objectives(problem)
    assert obj.screen > 0 and make_objectives(plain).screen == 0
    z = np.array([[0.55, 0.6, 0.45]])
    loss, grad = obj.real.value_and_grad(z)
    assert np.isfinite(loss[0]) and loss[0] == pytest.approx(obj.loss(z)[0], rel=1e-12)
    step = 1e-6
    for k in range(3):
        dz = np.zeros_like(z)
        dz[0, k] = step
        fd = (obj.loss(z + dz)[0] - obj.loss(z - dz)[0]) / (2 * step)
        assert grad[0, k] == pytest.approx(fd, rel=1e-4, abs=1e-6 * np.abs(grad).max())


def test_a_silent_model_pays_the_spike_weight(tmp_path):
    problem = problem_from_flags(hh.DEFAULTS, recorded_flags(
        spiking_recordings(tmp_path), "--fit", "g_na", "--spike_weight", "300"))
    data = {k: np.asarray(v) for k, v in objectives._cell_data(problem).items()}
    with jax.enable_x64(True):
        residuals = objectives.real_residuals(problem)
        r = np.asarray(residuals(np.zeros((1, 1)), data))[0]  # g_na 0.01 uS
    spikes = r[problem.current.size:]
    assert np.sum(spikes ** 2) == pytest.approx(300.0, rel=1e-3)


def test_held_out_sweeps_are_scored_and_drawn(tmp_path, capsys):
    out = tmp_path / "run"
    paths = spiking_recordings(tmp_path)
    metrics = hh.main(recorded_flags(paths, "--fit", "gl,g_na", "--test_sweeps", "2",
                                     "--methods", "gradient", "--n_starts", "2", "--maxiter",
                                     "20", "--out_dir", str(out)))
    entry = metrics["methods"]["gradient"]
    (test,) = entry["test"]["sweeps"]
    assert test["sweep"] == 2 and test["spikes_cell"] > 0
    assert set(test) == {"sweep", "stimulus", "spikes_cell_evoked", "spikes_model_evoked",
                         "gamma_evoked", "spikes_cell", "spikes_model", "latency_cell_ms",
                         "latency_model_ms", "gamma", "subthreshold_rmse_mV"}
    assert test["stimulus"] == "depolarizing"
    assert 0 < test["spikes_cell_evoked"] <= test["spikes_cell"]
    assert entry["test"]["evoked_sweeps"] == 1
    assert entry["test"]["median_gamma_evoked"] == test["gamma_evoked"]
    assert entry["test"]["median_gamma"] == test["gamma"]
    assert entry["fitted_sweeps"]["spikes_cell"] > 0 and entry["status"] in ("fitted", "poor")
    on_disk = json.loads((out / "metrics.json").read_text())
    assert [r["sweep"] for r in on_disk["features"]["fitted_sweeps"]] == [0, 1]
    assert on_disk["features"]["test_sweeps"][0]["cell"]["spike_count_stimint"] > 0
    assert (out / "test_sweeps.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "held-out sweeps: 1, 1 with a depolarizing step" in printed
    assert "evoked: inside the depolarizing steps" in printed and "all: every spike" in printed


def test_a_reset_models_spikes_are_counted_by_efel_without_waveform_features():
    """GIF's voltage holds no action potential: its spike times are marked for eFEL, which
    then counts them; AP amplitude and width are not reported for it."""
    gif = NEURON_MODELS["gif"]()
    current = np.zeros((1, 4000))
    current[0, 1000:3000] = 1.5  # nA: 30 mV above rest through 20 MOhm
    v, s = simulate_cell(gif, gif.defaults, current, 0.1)
    spikes = gif.spikes_of(v, s, 0.1)
    assert len(spikes[0]) >= 3 and np.max(v) < -20.0  # spikes, but no waveform to detect
    (plain,) = compare_features(current, v, v, 0.1, [0])
    (marked,) = compare_features(current, v, v, 0.1, [0], spikes)
    assert plain["model"]["spike_count_stimint"] == 0
    assert marked["model"]["spike_count_stimint"] == len(spikes[0])
    assert marked["model"]["AP_amplitude"] is None and marked["model"]["ISI_CV"] is not None
    assert marked["model"]["voltage_base"] == pytest.approx(plain["model"]["voltage_base"])


def test_a_spikeless_fit_of_a_spiking_cell_is_poor_and_says_why(tmp_path, capsys):
    out = tmp_path / "run"
    paths = spiking_recordings(tmp_path)
    code = cli(hh.main, recorded_flags(paths, "--fit", "gl", "--fix", "g_na=0",
                                       "--methods", "gradient", "--n_starts", "2",
                                       "--maxiter", "5", "--out_dir", str(out)))
    assert code == 0
    entry = json.loads((out / "metrics.json").read_text())["methods"]["gradient"]
    assert entry["status"] == "poor" and "spike counts off: model 0" in entry["reason"]
    assert f"poor fit (gradient): {entry['reason']}" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--test_sweeps", "7"], "--test_sweeps: the recordings hold rows 0-2"),
    (["--test_sweeps", "0-2"], "at least one must stay for the fit"),
])
def test_bad_test_sweeps_are_refused_in_one_line(tmp_path, capsys, args, message):
    paths = spiking_recordings(tmp_path)
    assert cli(hh.main, recorded_flags(paths, *args, "--out_dir", str(tmp_path / "o"))) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_test_sweeps_need_recordings(tmp_path, capsys):
    assert cli(hh.main, ["--test_sweeps", "1", "--out_dir", str(tmp_path / "o")]) != 0
    assert "--test_sweeps holds out sweeps of recordings" in capsys.readouterr().err


def test_efel_imports_without_its_file_reader_until_used():
    code = ("import sys, utils.fitting.efeatures, efel\n"
            "assert 'neo.core' not in sys.modules\n"
            "assert callable(efel.io.neo.io.get_io) and 'neo.core' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_sweeps_are_told_apart_by_what_their_stimulus_does_from_the_holding_current():
    i = np.zeros(100)
    i[10:30] = -0.1            # every sweep of the protocol: a hyperpolarizing step ...
    assert stimulus_kind(i) == "hyperpolarizing" and depolarizing_epochs(i) == []
    i[50:80] = 0.05            # ... and a depolarizing one on most
    assert stimulus_kind(i) == "depolarizing" and depolarizing_epochs(i) == [(50, 80)]
    i[80:90] = 0.2             # a second level above holding: both count
    assert depolarizing_epochs(i) == [(50, 80), (80, 90)]
    assert stimulus_kind(np.full(100, 0.3)) == "constant"
    held = np.full(100, 0.1)   # holding current 0.1 nA: stepping to 0 hyperpolarizes
    held[40:60] = 0.0
    assert stimulus_kind(held) == "hyperpolarizing"


def two_kinds_of_sweeps():
    """Three 1000 ms sweeps (dt 1 ms): two with a 300 ms depolarizing step (200-500 ms)
    where the model's spikes are the cell's, the cell also firing spontaneously outside it;
    one with only a hyperpolarizing step, after which the cell rebounds and the model is
    silent."""
    current = np.zeros((3, 1000))
    current[:2, 200:500] = 0.1
    current[2, 200:500] = -0.1
    step = np.arange(210.0, 500.0, 30.0)                     # 10 evoked spikes
    data = [np.r_[50.0, step, 700.0, 900.0], np.r_[step, 600.0], np.array([520.0, 560.0])]
    model = [step, step, np.array([])]
    v = np.full((3, 1000), -65.0)
    return current, v, data, model


def test_the_headline_gamma_is_over_the_depolarizing_steps_and_every_sweep_is_kept():
    current, v, data, model = two_kinds_of_sweeps()
    score = score_sweeps(current, v, v, data, model, 1.0, 2.0, numbers=[4, 8, 12])
    rows = score["sweeps"]
    assert [r["sweep"] for r in rows] == [4, 8, 12]
    assert [r["stimulus"] for r in rows] == ["depolarizing", "depolarizing", "hyperpolarizing"]
    assert [r["spikes_cell_evoked"] for r in rows] == [10, 10, None]
    assert rows[0]["gamma_evoked"] == pytest.approx(1.0) and rows[2]["gamma_evoked"] is None
    assert rows[0]["gamma"] < 0.5 < rows[1]["gamma"] < 1.0   # the spontaneous spikes count
    assert rows[2]["gamma"] == pytest.approx(-2.0)          # a silent model where it fires
    assert score["evoked_sweeps"] == 2
    assert (score["spikes_cell_evoked"], score["spikes_model_evoked"]) == (20, 20)
    assert (score["spikes_cell"], score["spikes_model"]) == (26, 20)
    assert score["median_gamma_evoked"] == pytest.approx(1.0)
    assert score["median_gamma"] == pytest.approx(rows[0]["gamma"])
    assert score["median_gamma_other"] == pytest.approx(-2.0)
    text = format_test(score)
    assert "held-out sweeps: 3, 2 with a depolarizing step" in text
    assert "1 sweeps without a depolarizing step: -2" in text


def test_the_verdict_compares_held_out_spikes_inside_the_depolarizing_steps():
    current, v, data, model = two_kinds_of_sweeps()
    fitted = score_sweeps(current[:1], v[:1], v[:1], data[:1], model[:1], 1.0, 2.0)
    problem = type("P", (), {"free": [], "estimates": None})()
    many_rebounds = [data[0], data[1], np.arange(510.0, 990.0, 10.0)]  # 48 outside any step
    test = score_sweeps(current, v, v, many_rebounds, model, 1.0, 2.0)
    assert test["spikes_cell"] > 3 * test["spikes_model"]   # off by far more than half ...
    assert judge(problem, np.zeros(0), fitted, test) == []  # ... but not inside the steps
    silent = score_sweeps(current, v, v, data, [np.array([])] * 3, 1.0, 2.0)
    assert judge(problem, np.zeros(0), fitted, silent) == [
        "spike counts off: model 0, cell 20 (test sweeps, inside their depolarizing steps)"]


def test_cells_csv_carries_the_evoked_and_the_all_sweep_scores(tmp_path):
    current, v, data, model = two_kinds_of_sweeps()
    test = score_sweeps(current, v, v, data, model, 1.0, 2.0)
    entry = {"params": {"gl": 0.01}, "loss": 1.0, "rmse_mV": 1.0, "gamma": 0.5, "n_evals": 3,
             "wall_s": 2.0, "status": "fitted", "reason": None, "test": test}
    rows = [cell_row("a.abf", ["gl"], {"gradient": entry}, None),
            cell_row("b.abf", ["gl"], None, 0.1, "unreadable")]
    write_cells_csv(tmp_path, ["gl"], rows)
    with open(tmp_path / "cells.csv", newline="") as fh:
        fitted, skipped = csv.DictReader(fh)
    assert list(TEST_COLUMNS) == ["test_sweeps", "test_evoked_sweeps", "test_spikes_cell_evoked",
                                  "test_spikes_model_evoked", "test_median_gamma_evoked",
                                  "test_spikes_cell_all", "test_spikes_model_all",
                                  "test_median_gamma_all", "test_subthreshold_r2"]
    assert [fitted[c] for c in list(TEST_COLUMNS)[:8]] == [
        "3", "2", "20", "20", "1", "26", "20", format(test["median_gamma"], ".10g")]
    assert all(skipped[c] == "" for c in TEST_COLUMNS)


def test_the_gamma_window_follows_the_rate_inside_the_depolarizing_steps():
    current, _, data, _ = two_kinds_of_sweeps()
    config = type("C", (), {"gamma_window": None})()
    # 10 spikes in the 300 ms step: 1/30 per ms, a quarter interval 7.5 ms, above 4 ms
    assert gamma_window(config, None, None, data, current, 1.0) == 4.0
    fast = [np.arange(200.0, 500.0, 5.0)] + data[1:]        # 200 Hz in the step
    assert gamma_window(config, None, None, fast, current, 1.0) == pytest.approx(1.25)
