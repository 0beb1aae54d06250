"""The HH fitting script end to end through main([...]), with tiny budgets."""
import json

import numpy as np
import pytest

import neuron_fitting_of_hh_model as hh
from models.hh import HH_DEFAULTS, HH_SUBSTEPS, make_hh
from tests.fitting_helpers import write_csv
from utils.fitting.config import parse_flags
from utils.fitting.methods import METHODS, GradientFree
from utils.fitting.optim import Tracker, clean
from utils.fitting.problem import simulate_cell
from utils.run import cli

FAST = ["--n_starts", "3", "--maxiter", "15", "--budget", "10", "--popsize", "5"]
ALL_BUT_LM = ["gradient", "DE", "PSO", "TwoPointsDE", "bayesian"]


def run(tmp_path, *args, name="run"):
    out = tmp_path / name
    metrics = hh.main([*args, *FAST, "--out_dir", str(out)])
    return metrics, out


@pytest.fixture(scope="module")
def every_method_run(tmp_path_factory):
    """One run of every method but lm (seed 4), shared by the tests below."""
    return run(tmp_path_factory.mktemp("hh"), "--methods", ",".join(ALL_BUT_LM), "--seed", "4")


def test_all_methods_write_the_contract(every_method_run):
    metrics, out = every_method_run
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["model"] == "hh" and on_disk["target"] == "potential"
    assert on_disk["dt_ms"] == 0.01
    assert on_disk["free_params"] == ["gl", "g_na", "g_kd", "vth"]
    assert on_disk["fixed_params"] == {n: HH_DEFAULTS[n] for n in ("C", "EL", "EK", "ENa")}
    assert on_disk["truth"] == {n: HH_DEFAULTS[n] for n in ("gl", "g_na", "g_kd", "vth")}
    assert list(on_disk["methods"]) == ALL_BUT_LM
    for m in ALL_BUT_LM:
        r = on_disk["methods"][m]
        assert set(r) >= {"params", "loss", "wall_s", "n_evals", "rmse_mV", "gamma", "rel_err"}
        assert r["rmse_mV"] == pytest.approx(np.sqrt(r["loss"]), rel=1e-6)
    assert on_disk["methods"]["DE"]["n_evals"] == 10
    assert json.loads((out / "config.json").read_text())["n_starts"] == 3
    for fig in ["traces.png", "loss_vs_time.png"]:
        assert (out / fig).stat().st_size > 10_000


@pytest.mark.parametrize("method", ["gradient", "lm"])
def test_gradient_recovers_the_authors_parameters(tmp_path, method):
    metrics = hh.main(["--methods", method, "--n_starts", "6", "--maxiter", "200",
                       "--out_dir", str(tmp_path / "r")])
    rel = metrics["methods"][method]["rel_err"]
    assert max(rel.values()) < 0.01, rel


def test_same_seed_same_numbers(tmp_path, every_method_run):
    """Each method's numbers depend on the seed alone (not on the other methods run)."""
    a, _ = every_method_run
    b, _ = run(tmp_path, "--methods", "gradient,DE", "--seed", "4")
    for m in ["gradient", "DE"]:
        assert a["methods"][m]["loss"] == b["methods"][m]["loss"]
        assert a["methods"][m]["params"] == b["methods"][m]["params"]


def test_spike_target_reports_gamma(tmp_path):
    metrics, out = run(tmp_path, "--target", "spike", "--methods", "gradient")
    r = metrics["methods"]["gradient"]
    assert metrics["target"] == "spike" and r["gamma"] is not None and -1 <= r["gamma"] <= 1


def test_repeats_report_mean_and_std(tmp_path):
    metrics, out = run(tmp_path, "--methods", "DE", "--repeats", "3")
    rp = metrics["methods"]["DE"]["repeats"]
    assert rp["n"] == 3 and len(rp["losses"]) == 3 and rp["loss_std"] >= 0
    assert min(rp["losses"]) == metrics["methods"]["DE"]["loss"]
    assert (out / "repeats.png").exists()


def random_search(loss, dim, *, budget, popsize, seed, progress=None):
    """A toy gradient-free method: uniform random points, `popsize` per batch."""
    tracker, rng = Tracker("toy", progress), np.random.default_rng(seed)
    while tracker.n_evals < budget:
        z = rng.uniform(size=(min(popsize, budget - tracker.n_evals), dim))
        tracker.record(z, clean(loss(z)))
    return tracker.result()


def test_a_method_added_by_one_registry_entry_runs_through_the_script(tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS, "toy", GradientFree(random_search, "uniform random search"))
    metrics, out = run(tmp_path, "--methods", "toy,DE")
    on_disk = json.loads((out / "metrics.json").read_text())
    assert list(on_disk["methods"]) == ["toy", "DE"]
    toy = on_disk["methods"]["toy"]
    assert toy["n_evals"] == 10 and np.isfinite(toy["loss"]) and toy["loss"] > 0
    assert toy["rmse_mV"] == pytest.approx(np.sqrt(toy["loss"]), rel=1e-6)
    assert set(toy["params"]) == {"gl", "g_na", "g_kd", "vth"}


def test_user_recordings_with_fixed_parameter(tmp_path):
    """Recordings made with vth -63 are fitted with vth fixed: the three others come back (the
    plain MSE: the spike-aware loss of recordings leaves gl 1.5% off on these noise-free
    traces of the model itself)."""
    cur = hh.authors_protocol(0.01)[:3]
    truth = {**HH_DEFAULTS, "vth": -63.0, "gl": 0.01, "g_na": 20.0, "g_kd": 6.0}
    v, _ = simulate_cell(make_hh(), truth, cur, 0.01)
    i_csv, v_csv = write_csv(tmp_path / "I.csv", cur * 1e3), write_csv(tmp_path / "V.csv", v)
    metrics = hh.main(["--data_current", i_csv, "--current_unit", "pA", "--data_voltage", v_csv,
                       "--dt", "0.01", "--fit", "gl,g_na,g_kd", "--fix", "vth=-63",
                       "--spike_weight", "0", "--methods", "gradient", "--n_starts", "4",
                       "--out_dir",
                       str(tmp_path / "rec")])
    assert metrics["truth"] is None and metrics["fixed_params"]["vth"] == -63.0
    fitted = metrics["methods"]["gradient"]["params"]
    for n in ["gl", "g_na", "g_kd"]:
        assert fitted[n] == pytest.approx(truth[n], rel=0.01)


@pytest.mark.parametrize("args, message", [
    (["--fit", "gl,bogus"], "--fit: unknown parameter bogus"),
    (["--fix", "nope=3"], "--fix: unknown parameter nope"),
    (["--fit", "gl", "--fix", "gl=1"], "both fitted"),
    (["--bounds", "gl=0.1:0.01"], "LO (0.1) must be below HI (0.01)"),
    (["--bounds", "gl=abc"], "expected NAME=LO:HI"),
    (["--data_current", "missing.csv", "--data_voltage", "x.csv", "--dt", "0.01"],
     "no such file"),
    (["--data_current", "x.csv"], "--dt (ms) is required"),
    (["--data_voltage", "x.csv"], "need --data_current"),
])
def test_bad_input_one_line_nothing_written(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert cli(hh.main, [*args, "--out_dir", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert not out.exists()


@pytest.mark.parametrize("args", [["--methods", "gradient,foo"], ["--dt", "-1"],
                                  ["--target", "both"], ["--n_starts", "0"],
                                  ["--confirm", "-1"], ["--substeps", "0"]])
def test_bad_arguments_exit_2(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as exc:
        hh.main([*args, "--out_dir", str(tmp_path / "never")])
    assert exc.value.code == 2
    assert args[0] in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_nan_in_recordings_is_refused(tmp_path, capsys):
    cur = np.zeros((2, 50))
    v = np.full((2, 50), -65.0)
    v[1, 7] = np.nan
    args = ["--data_current", write_csv(tmp_path / "I.csv", cur), "--data_voltage",
            write_csv(tmp_path / "V.csv", v), "--dt", "0.01", "--out_dir", str(tmp_path / "o")]
    assert cli(hh.main, args) == 1
    assert "trace 2, sample 8 is nan" in capsys.readouterr().err


def test_substeps_default_is_the_models_and_reaches_it():
    """--substeps defaults to models/hh.py's HH_SUBSTEPS (the command line cannot import it)
    and sets the simulated model's substeps."""
    assert parse_flags(hh.DEFAULTS, []).substeps == HH_SUBSTEPS
    model = hh.DEFAULTS.make_model(parse_flags(hh.DEFAULTS, ["--substeps", "1"]))
    assert model.simulate.keywords["substeps"] == 1
