"""The fused D-RTRL trace kernels equal braintrace's own, and install() registers them."""
import jax
import numpy as np
import pytest
from braintrace._op import dense
from braintrace._op._registries import get_fast_path_rules

from utils.training import trace_kernels


def _arrays(num_state, seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), 6)
    T, B, I, K, S = 5, 3, 7, 4, num_state
    return {"diag": jax.random.normal(keys[0], (B, K, S, S)),
            "old": {"weight": jax.random.normal(keys[1], (B, I, K, S)),
                    "bias": jax.random.normal(keys[2], (B, K, S))},
            "x_seq": jax.random.normal(keys[3], (T, B, I)),
            "df_seq": jax.random.normal(keys[4], (T, B, K, S)),
            "p_seq": jax.random.normal(keys[5], (T, B, K, S, S))}


@pytest.mark.parametrize("num_state", [1, 3])
def test_recurrent_and_chunk_equal_braintrace(num_state):
    a = _arrays(num_state)
    ours = trace_kernels.recurrent(a["diag"], a["old"], num_state)
    ref = dense._dense_fast_recurrent(a["diag"], a["old"], num_state)
    for key in ("weight", "bias"):
        np.testing.assert_allclose(ours[key], ref[key], rtol=1e-5, atol=1e-5)
    args = (a["x_seq"], a["df_seq"], a["p_seq"], a["diag"], a["old"], num_state)
    ours, ref = trace_kernels.chunk(*args), dense._dense_fast_chunk(*args)
    for key in ("weight", "bias"):
        np.testing.assert_allclose(ours[key], ref[key], rtol=1e-5, atol=1e-5)


def test_install_registers_the_kernels_once_and_keeps_the_others():
    trace_kernels.install()
    trace_kernels.install()
    for primitive in (dense.etp_mm_p, dense.etp_mv_p):
        rules = get_fast_path_rules(primitive)
        assert rules.recurrent is trace_kernels.recurrent
        assert rules.chunk is trace_kernels.chunk
        assert rules.instant is dense._dense_fast_instant
        assert rules.applicable({"weight_fn": None, "bias_fn": None})


def test_trace_kernel_benchmark_runs_and_agrees(tmp_path):
    from benchmarks import trace_kernel
    out = trace_kernel.main(["--n_rec", "10", "--batch_size", "2", "--repeats", "2",
                             "--out_dir", str(tmp_path)])
    assert out["max_abs_diff"] < 1e-4 and out["braintrace_ms"] > 0 and out["fused_ms"] > 0
    assert (tmp_path / "trace_kernel.json").exists()
