"""The fitting scripts' settings: one FitConfig field per flag, each script's defaults in its
help, method aliases, and a command line that imports no JAX."""
import subprocess
import sys
from pathlib import Path

import pytest

import neuron_fitting_of_gif_model as gif
import neuron_fitting_of_hh_model as hh
from utils.fitting.config import FitConfig, build_parser, parse_flags
from utils.fitting.methods import METHODS, parse_methods

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = pytest.mark.parametrize("d", [hh.DEFAULTS, gif.DEFAULTS], ids=["hh", "gif"])


@SCRIPTS
def test_every_setting_is_a_flag_and_every_flag_a_setting(d):
    dests = {a.dest for a in build_parser(d)._actions if a.dest != "help"}
    assert dests == set(d.config.flag_names()) == set(parse_flags(d, []).to_flat())


def test_a_script_adds_its_own_settings():
    assert parse_flags(hh.DEFAULTS, ["--steady_state"]).steady_state is True
    assert "steady_state" not in gif.DEFAULTS.config.flag_names()


@SCRIPTS
def test_each_script_has_its_own_defaults_and_shows_them(d):
    config = parse_flags(d, [])
    assert (config.n_starts, config.fit, config.presearch_dt) == (
        d.n_starts, ",".join(d.fit), d.presearch_dt)
    assert config.gamma_window is None  # the script's on its synthetic problem, 4 ms on cells
    text = " ".join(build_parser(d).format_help().split())
    assert f"(default: {d.gamma_window:g} for the synthetic problem; for recordings 4" in text
    assert f"(default: {d.n_starts})" in text and f"(default: {','.join(d.fit)})" in text
    assert f"(default: {d.dt:g} for the synthetic problem" in text
    assert f"results/{d.script}/<timestamp>/" in text


def test_flags_give_a_frozen_config_that_records_every_setting():
    config = parse_flags(hh.DEFAULTS, ["--n_starts", "3", "--methods", "DE,gradient"])
    assert isinstance(config, FitConfig) and config.methods == ("DE", "gradient")
    with pytest.raises(AttributeError):
        config.n_starts = 4
    assert config.replace(n_starts=5).to_flat() == {**config.to_flat(), "n_starts": 5}


def test_lbfgsb_names_the_gradient_method():
    assert parse_methods("lbfgsb") == ("gradient",)
    assert parse_methods("lbfgsb,DE,gradient") == ("gradient", "DE")
    assert parse_flags(gif.DEFAULTS, ["--methods", "lbfgsb"]).methods == ("gradient",)
    assert "lbfgsb" not in METHODS  # metrics.json keeps the registered name


def test_the_command_line_imports_no_jax_nor_optimizer():
    code = ("import sys, neuron_fitting_of_hh_model as hh, neuron_fitting_of_gif_model as gif\n"
            "from utils.fitting.config import build_parser, parse_flags\n"
            "for d in (hh.DEFAULTS, gif.DEFAULTS):\n"
            "    build_parser(d).format_help()\n"
            "    parse_flags(d, ['--methods', 'lbfgsb,DE', '--data', 'x.nwb', '--sweeps', '0,2-3'])\n"
            "heavy = ('jax', 'scipy', 'nevergrad', 'skopt', 'matplotlib', 'tqdm', 'pandas',\n"
            "         'pynwb', 'h5py', 'hdmf', 'pyabf', 'neo')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr
