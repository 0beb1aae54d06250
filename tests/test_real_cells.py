"""Fitting recorded cells: what is read from a recording before the fit (spikes, noise,
passive properties, threshold), starts placed by it, the spike-aware objective and its
gradient, held-out sweeps, and a failed fit that says so."""
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
from utils.fitting.features import (baseline_noise, estimate_cell, recorded_spike_times,
                                    subthreshold_mask)
from utils.fitting.efeatures import compare_features
from utils.fitting.starts import ANCHOR_SPREAD, draw_starts
from utils.fitting import objectives
from utils.fitting.objectives import make_objectives
from utils.fitting.pipeline import problem_from_flags
from utils.fitting.problem import simulate_cell
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
    assert problem.spike_weight == 2e4 and problem.gamma_window == 4.0
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


def test_held_out_sweeps_are_scored_and_drawn(tmp_path):
    out = tmp_path / "run"
    paths = spiking_recordings(tmp_path)
    metrics = hh.main(recorded_flags(paths, "--fit", "gl,g_na", "--test_sweeps", "2",
                                     "--methods", "gradient", "--n_starts", "2", "--maxiter",
                                     "20", "--out_dir", str(out)))
    entry = metrics["methods"]["gradient"]
    (test,) = entry["test"]["sweeps"]
    assert test["sweep"] == 2 and test["spikes_cell"] > 0
    assert set(test) == {"sweep", "spikes_cell", "spikes_model", "latency_cell_ms",
                         "latency_model_ms", "gamma", "subthreshold_rmse_mV"}
    assert entry["fitted_sweeps"]["spikes_cell"] > 0 and entry["status"] in ("fitted", "poor")
    on_disk = json.loads((out / "metrics.json").read_text())
    assert [r["sweep"] for r in on_disk["features"]["fitted_sweeps"]] == [0, 1]
    assert on_disk["features"]["test_sweeps"][0]["cell"]["spike_count_stimint"] > 0
    assert (out / "test_sweeps.png").stat().st_size > 0


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
