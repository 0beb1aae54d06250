"""Networks from anatomy: the connectome files (reading, one-line errors, writing back), the
pd14 microcircuit, the C. elegans data, and the networks built from them."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import task_training
from models.networks import NEURONS, NetConfig, build_net
from models.networks.anatomy import (PD14_POPULATIONS, PD14_PROBABILITY, PD14_SIZES,
                                     initial_weights, make_connectome, pd14_sizes)
from models.networks.connectome import ConnectomeError, read_connectome, write_connectome
from tests.training_helpers import TINY, TINY_CONFIG
from utils.run import cli
from utils.training.task import trial_seed
from utils.training.checkpoint import load_checkpoint
from utils.training.trainer import TrainConfig, build_network, make_trainer

ROOT = Path(__file__).resolve().parents[1]
TINY_DATA = [a for i, a in enumerate(TINY) if "--n_rec" not in TINY[max(i - 1, 0):i + 1]]
CELLS = "id,type,population,input,readout\na,E,p,1,0\nb,E,q,0,1\nc,I,q,1,1\n"
EDGES = "pre,post,weight,sign\na,b,2,+\nb,c,1,+\nc,a,3,-\n"


def _folder(tmp_path, cells=CELLS, edges=EDGES):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cells.csv").write_text(cells)
    (tmp_path / "edges.csv").write_text(edges)
    return tmp_path


# ----------------------------------------------------------------------------- files
def test_reading_gives_cells_edges_roles(tmp_path):
    conn = read_connectome(_folder(tmp_path))
    assert conn.ids.tolist() == ["a", "b", "c"] and conn.inhibitory.tolist() == [0, 0, 1]
    assert conn.input.tolist() == [1, 0, 1] and conn.readout.tolist() == [0, 1, 1]
    assert conn.matrix()[2, 0] == 3 and conn.weight.sum() == 6
    cells = "id,type\na,I\nb,E\nc,E\n"  # no population, input or readout column: all cells
    edges = "pre,post,count\na,b,2\nc,a,3\n"
    ordered = read_connectome(_folder(tmp_path / "o", cells, edges)).ordered()
    assert ordered.ids.tolist() == ["b", "c", "a"]  # E first, then I; edges follow their cells
    assert ordered.matrix()[2, 0] == 2 and ordered.matrix()[1, 2] == 3
    assert ordered.input.all() and ordered.readout.all()


@pytest.mark.parametrize("cells, edges, words", [
    (CELLS, EDGES.replace("b,c,1", "b,zz,1"), "edges.csv line 3: unknown post id 'zz'"),
    (CELLS, EDGES.replace("a,b,2", "x,b,2"), "edges.csv line 2: unknown pre id 'x'"),
    (CELLS, EDGES.replace("b,c,1", "b,c,-1"), "edges.csv line 3: weight must be a positive"),
    (CELLS, EDGES.replace("b,c,1", "b,c,many"), "edges.csv line 3: weight must be a number"),
    (CELLS.replace("b,E,q", "b,,q"), EDGES, "cells.csv line 3: cell 'b' has no type"),
    (CELLS, EDGES.replace("c,a,3,-", "c,a,3,+"), "edges.csv line 4: inhibitory cell 'c' with "
                                                 "an excitatory sign"),
    (CELLS, EDGES + "a,b,1,+\n", "edges.csv line 5: duplicate edge a -> b (first on line 2)"),
    (CELLS.splitlines()[0] + "\n", EDGES, "cells.csv: no cells (an empty network)"),
    (CELLS, EDGES.splitlines()[0] + "\n", "edges.csv: no edges (an empty network)"),
    (CELLS + "a,E,p,1,1\n", EDGES, "cells.csv line 5: duplicate cell id 'a'"),
    (CELLS.replace("c,I", "c,E"), EDGES.replace("3,-", "3,+"), "no inhibitory cell"),
    (CELLS.replace("id,type", "name,type"), EDGES, "cells.csv: missing column(s) ['id']"),
])
def test_bad_files_end_in_one_line_naming_file_and_line(tmp_path, cells, edges, words):
    with pytest.raises(ConnectomeError) as err:
        read_connectome(_folder(tmp_path, cells, edges))
    message = str(err.value)
    assert words in message and "\n" not in message
    assert str(tmp_path) in message


def test_a_bad_file_on_the_command_line_is_one_line(tmp_path, capsys):
    folder = _folder(tmp_path / "c", edges=EDGES.replace("b,c,1", "b,c,-2"))
    assert cli(task_training.main, ["--connectome", str(folder), "--out_dir",
                                    str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "edges.csv line 3" in err[0] and "positive" in err[0]
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_write_then_read_gives_the_same_connectome(tmp_path):
    conn = make_connectome(NetConfig.make(conn_method="pd14", n_rec=120), seed=3)
    back = read_connectome(write_connectome(conn, tmp_path))
    for k, v in conn.to_arrays().items():
        assert np.array_equal(back.to_arrays()[k], v), k


# ----------------------------------------------------------------------------- pd14
def test_pd14_sizes_keep_the_papers_proportions():
    for n in (80, 400, 4000):
        sizes = pd14_sizes(n)
        assert sizes.sum() == n and sizes.min() >= 1
        assert np.all(np.abs(sizes - n * np.array(PD14_SIZES) / sum(PD14_SIZES)) < 1)


def test_pd14_measured_probabilities_match_the_table():
    conn = make_connectome(NetConfig.make(conn_method="pd14", n_rec=4000), seed=0)
    pops = [PD14_POPULATIONS.index(p) for p in conn.population]
    exists = conn.matrix() > 0
    for a in range(8):          # target
        for b in range(8):      # source
            block = exists[np.ix_(np.equal(pops, b), np.equal(pops, a))]
            p, n = PD14_PROBABILITY[a, b], block.size
            assert abs(block.mean() - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-3, (a, b)


def test_pd14_keeps_the_input_per_neuron_when_scaled():
    sums = []
    for n in (200, 2000):
        conn = make_connectome(NetConfig.make(conn_method="pd14", n_rec=n), seed=0)
        w_e, w_i = initial_weights(conn, rec_scale=2.0, w_ei_ratio=4.0)
        sums.append((w_e.sum(0).mean(), w_i.sum(0).mean(), w_e[w_e > 0].mean()))
    assert abs(sums[0][0] + sums[0][1] / 4 - 2.0) < 1e-5          # the mean summed weight
    assert abs(sums[1][0] + sums[1][1] / 4 - 2.0) < 1e-5
    assert sums[1][2] < sums[0][2] / 5  # ten times the cells: synapses about ten times weaker


def test_psp_peak_matches_a_simulated_membrane():
    from models.networks.anatomy import psp_peak

    dt, tau_syn, tau_neu = 0.01, 10.0, 200.0
    t = np.arange(0, 200, dt)
    g = np.exp(-t / tau_syn)                    # a unit conductance jump at t = 0
    v = np.zeros_like(t)
    for k in range(1, t.size):                  # tau dV/dt = -V + g E (at rest: current-based)
        v[k] = v[k - 1] + dt / tau_neu * (-v[k - 1] + g[k - 1] * 5.0)
    assert abs(psp_peak(5.0, tau_syn, tau_neu) - v.max()) < 1e-3 * v.max()
    assert abs(psp_peak(5.0, 20.0, 20.0) - 5.0 / np.e) < 1e-12


def test_pd14_synapses_are_k_scaled_by_default_and_other_networks_keep_theirs():
    from models.networks.anatomy import PD14_PSP, psp_peak

    psp = []
    for n in (200, 1600):
        cfg = NetConfig.make(conn_method="pd14", n_rec=n).resolved()
        conn = make_connectome(cfg, seed=0)
        w_e, _ = initial_weights(conn, cfg.rec_scale, cfg.w_ei_ratio)
        unit = np.median(w_e[w_e > 0])          # weight-1 synapses (L4E -> L2/3E has 2)
        psp.append(unit * psp_peak(NEURONS["gif"].e_exc, cfg.tau_syn, cfg.tau_neu))
        expected = PD14_PSP * np.sqrt(sum(PD14_SIZES) / n)  # the paper's PSP x 1/sqrt(K)
        assert abs(psp[-1] / expected - 1) < 0.05, (n, psp[-1], expected)
    assert abs(psp[0] / psp[1] - np.sqrt(8)) < 0.2                 # 8x the cells: 1/sqrt(8)
    assert NetConfig.make(conn_method="pd14", n_rec=400, rec_scale=2.0).resolved().rec_scale == 2
    for kw in ({}, {"conn_method": "gaussian"}, {"conn_method": "celegans", "n_rec": 302}):
        assert NetConfig.make(**kw).resolved().rec_scale == NEURONS["gif"].defaults["rec_scale"]
    for name, spec in NEURONS.items():
        assert spec.e_exc == spec.net_class.E_EXC, name


def test_pd14_roles_and_flags():
    conn = make_connectome(NetConfig.make(conn_method="pd14", n_rec=400), seed=0)
    assert set(conn.population[conn.input]) == {"L4E", "L4I", "L6E", "L6I"}
    assert set(conn.population[conn.readout]) == {"L5E"}
    assert not conn.inhibitory[:conn.n_exc].any() and conn.inhibitory[conn.n_exc:].all()
    other = make_connectome(NetConfig.make(conn_method="pd14", n_rec=400, input_pops="L23E",
                                           readout_pops="L6E,L6I"), seed=0)
    assert set(other.population[other.input]) == {"L23E"}
    assert set(other.population[other.readout]) == {"L6E", "L6I"}


# ----------------------------------------------------------------------------- celegans
def test_celegans_signs_and_unsigned_neurons():
    conn = make_connectome(NetConfig.make(conn_method="celegans", n_rec=302), seed=0)
    assert (conn.n, conn.n_exc, conn.n_inh) == (302, 271, 31)
    cells = {row.split(",")[0]: row.split(",") for row in
             (ROOT / "data/connectomes/celegans_cook2019/cells.csv").read_text().split()[1:]}
    tx = np.array([cells[c][5] for c in conn.ids])
    assert np.array_equal(conn.inhibitory, tx == "GABA")        # GABA alone: inhibitory
    mixed = np.isin(conn.ids, ["SMDDL", "SMDDR", "SMDVL", "SMDVR"])
    assert (tx[mixed] == "Acetylcholine+GABA").all() and not conn.inhibitory[mixed].any()
    unsigned = np.flatnonzero(tx == "none")
    assert unsigned.size == 30 and not np.isin(conn.pre, unsigned).any()  # no signed output
    assert np.isin(conn.post, unsigned).any()                  # but they receive synapses
    assert set(conn.population[conn.input]) == {"sensory"}
    assert conn.readout.all()                                   # the whole nervous system
    assert conn.weight.sum() == 19145 and conn.pre.size == 3229


@pytest.mark.parametrize("argv, words", [
    (["--conn_method", "celegans", "--n_rec", "300"], "302 neurons"),
    (["--conn_method", "pd14", "--n_rec", "50"], "--n_rec must be >= 80"),
    (["--conn_method", "pd14", "--input_pops", "L7E"], "unknown population(s) ['L7E']"),
    (["--conn_method", "gaussian", "--readout_pops", "L5E"], "--readout_pops"),
    (["--conn_method", "rand", "--connectome", "x"], "--connectome"),
    (["--connectome", "/nonexistent/c"], "not a folder"),
])
def test_bad_anatomy_flags_one_line(argv, words, capsys, tmp_path):
    assert cli(task_training.main, argv + ["--out_dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


# ----------------------------------------------------------------------------- networks
PD14_TINY = TINY_CONFIG.replace(conn_method="pd14", n_rec=80)


@pytest.mark.parametrize("method", ["bptt", "diag", "expsm_diag"])
def test_every_rule_trains_pd14_and_keeps_its_structure(method, tiny_task):
    trainer = make_trainer(PD14_TINY.replace(method=method), tiny_task)
    net, conn = trainer.net, trainer.net.connectome
    assert net.w_e.layout == {"bptt": "csr", "diag": "masked", "expsm_diag": "csr"}[method]
    w_in0 = net.w_in.effective_weight()
    before = net.recurrent_matrix() != 0
    losses = [trainer.train_step(tiny_task.sample(8, trial_seed(0, 0, ep)))[0]
              for ep in range(3)]
    assert np.all(np.isfinite(losses))
    w_in, w_out = net.w_in.effective_weight(), np.asarray(trainer.params()["w_out"]["weight"])
    signal = slice(0, 75)  # cues and recall; the 25 noise channels (background) reach all
    assert not w_in[signal][:, ~conn.input].any()
    assert np.abs(w_in - w_in0)[signal][:, conn.input].max() > 0
    assert (w_in[75:] > 0).all() and net.cfg.n_background == 25
    assert not w_out[~conn.readout].any() and w_out[conn.readout].any()
    assert np.array_equal(net.recurrent_matrix() != 0, before)   # synapses kept
    assert (net.recurrent_matrix()[:conn.n_exc] >= 0).all()      # Dale's law
    assert (net.recurrent_matrix()[conn.n_exc:] <= 0).all()


def test_dense_masked_and_csr_layouts_agree_on_pd14():
    import brainstate
    import jax.numpy as jnp

    cfg = PD14_TINY.net.resolved()
    xs = jnp.asarray(np.random.default_rng(1).random((40, 2, 100)) < 0.08, jnp.float32)
    outs = []
    for layout, event in (("csr", True), ("csr", False), ("masked", False)):
        net = build_net(cfg, seed=0, layout=layout, event_driven=event)
        brainstate.nn.init_all_states(net, 2)
        with brainstate.environ.context(dt=1.0):
            outs.append(np.asarray(brainstate.transform.for_loop(net, xs)))
    assert np.allclose(outs[0], outs[1], atol=1e-5) and np.allclose(outs[0], outs[2], atol=1e-5)


def test_written_out_pd14_trains_to_bit_identical_losses(tmp_path, unrendered_figures):
    pd14 = ["--conn_method", "pd14", "--n_rec", "80"]
    cli(task_training.main, pd14 + ["--mode", "connectome", "--out_dir", str(tmp_path / "c")])
    scale = repr(NetConfig.make(conn_method="pd14", n_rec=80).resolved().rec_scale)  # K-scaled
    runs = [task_training.main(TINY_DATA + args + ["--epochs", "3", "--out_dir", str(tmp_path / n)])
            for n, args in (("a", pd14), ("b", ["--connectome", str(tmp_path / "c"),
                                                "--rec_scale", scale]))]
    losses = [[h["loss"] for h in m["history"]] for m in runs]
    assert losses[0] == losses[1] and runs[1]["conn_method"] == "file"


def test_checkpoint_and_sim_keep_the_connectome(tmp_path, unrendered_figures):
    folder = _folder(tmp_path / "c", CELLS + "".join(f"e{i},E,q,0,1\n" for i in range(6)),
                     EDGES + "".join(f"a,e{i},1,+\ne{i},c,2,+\n" for i in range(6)))
    train = task_training.main(TINY_DATA + ["--connectome", str(folder), "--epochs", "2",
                                       "--out_dir", str(tmp_path / "t")])
    assert train["n_rec"] == 9
    (folder / "edges.csv").write_text(EDGES)  # the files change: the checkpoint holds the net
    sim = task_training.main(TINY_DATA + ["--mode", "sim", "--checkpoint", str(tmp_path / "t"),
                                     "--out_dir", str(tmp_path / "s")])
    ckpt = load_checkpoint(tmp_path / "t")
    assert ckpt["structure"]["cell_id"].tolist() == ["a", "b", "e0", "e1", "e2", "e3", "e4",
                                                     "e5", "c"]           # E first
    config = TrainConfig.from_flat(ckpt["config"])
    net = build_network(config, 100, ckpt["structure"])
    assert net.connectome.pre.size == 15 and (net.recurrent_matrix() != 0).sum() == 15
    assert sim["conn_method"] == "file" and sim["n_rec"] == 9


@pytest.mark.slow
def test_two_devices_train_pd14_like_one():
    probe = """
import json
from utils.training.task import make_task, trial_seed
from utils.training.trainer import TrainConfig, make_trainer
cfg = TrainConfig.make(conn_method="pd14", n_rec=80, t_delay=50.0, num_cue=1, batch_size=8)
task = make_task(cfg.task, cfg.net.dt, cfg.t_delay, cfg.num_cue)
print(json.dumps({n: [make_trainer(cfg.replace(devices=n), task).train_step(
    task.sample(8, trial_seed(0, 0, 0)))[0]] for n in (1, 2)}))
"""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True)
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert abs(r["2"][0] / r["1"][0] - 1) < 1e-5


# ----------------------------------------------------------------------------- by population
def test_population_blocks_and_rates_by_hand():
    from utils.training.populations import population_blocks, population_rates

    signed = np.zeros((4, 4))
    signed[0, 1], signed[0, 2], signed[1, 2] = 0.5, 1.5, 1.0   # E cells 0, 1 (population a)
    signed[3, 0] = -2.0                                         # I cell 3 (population b)
    pop = np.array(["a", "a", "b", "b"])
    blocks = population_blocks(signed, pop, ["a", "b"])
    # target x source: a <- a has 1 synapse of 4 pairs, b <- a 2 of 4 (mean 1.25)
    assert blocks["probability"] == [[0.25, 0.25], [0.5, 0.0]]
    assert blocks["mean_weight"] == [[0.5, -2.0], [1.25, None]]
    rates = population_rates(np.array([[2, 0, 1, 3], [0, 0, 1, 1]]), pop, ["a", "b"], 0.5)
    assert rates == {"a": 1.0, "b": 3.0}  # a: (2 + 0) / 2 trials / 2 cells / 0.5 s


def test_population_decoding_finds_the_population_that_holds_the_label():
    from utils.training.populations import population_decoding

    labels = np.array([0, 1] * 8)
    rng = np.random.default_rng(0)
    counts = np.zeros((16, 5))
    counts[:, :2] = labels[:, None] * 3 + rng.integers(0, 2, (16, 2))  # a: spikes tell the label
    counts[:, 2:4] = 2                                                  # b: the same every trial
    pop = np.array(["a", "a", "b", "b", "c"])
    acc = population_decoding(counts, labels, pop, ["a", "b", "c"])
    assert acc["a"] == 1.0 and acc["b"] == 0.5 and acc["c"] == 0.5
    assert population_decoding(counts[:6], labels[:6], pop, ["a"]) == {"a": None}


def test_a_run_on_a_connectome_writes_its_population_figures(tmp_path):
    out = tmp_path / "run"
    metrics = task_training.main(TINY_DATA + ["--conn_method", "pd14", "--n_rec", "80",
                                              "--epochs", "2", "--out_dir", str(out)])
    pops = metrics["activity"]["populations"]
    assert pops["names"] == ["L23E", "L4E", "L5E", "L6E", "L23I", "L4I", "L5I", "L6I"]
    assert set(pops["blocks"]) == {"before", "after"} and sum(pops["sizes"].values()) == 80
    assert all(pops["rates_hz"][p] >= 0 for p in pops["names"])
    assert set(pops["cue_decoding"]) == set(pops["names"])
    assert all(v is None or 0.0 <= v <= 1.0 for v in pops["cue_decoding"].values())
    assert (out / "connectivity_populations.png").stat().st_size > 10_000
    assert (out / "rates_populations.png").stat().st_size > 5_000


def test_a_connectome_registered_with_one_entry_trains(monkeypatch, tiny_task):
    from models.networks import anatomy
    from models.networks.connectome import Connectome

    def ring(cfg, rng):  # 12 cells on a ring, every third inhibitory
        n = cfg.n_rec
        return Connectome(np.array([f"c{i}" for i in range(n)]), np.arange(n) % 3 == 2,
                          np.array(["ring"] * n), np.ones(n, bool), np.arange(n) < 6,
                          np.arange(n), (np.arange(n) + 1) % n, np.ones(n))

    monkeypatch.setitem(anatomy.CONNECTOMES, "ring", ring)
    config = TINY_CONFIG.replace(conn_method="ring", n_rec=12)
    config.validate()
    trainer = make_trainer(config, tiny_task)
    assert (trainer.net.n_exc, trainer.net.n_inh) == (8, 4)
    assert (trainer.net.recurrent_matrix() != 0).sum() == 12
    assert np.isfinite(trainer.train_step(tiny_task.sample(8, 0))[0])
