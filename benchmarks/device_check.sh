#!/usr/bin/env bash
# The accelerator check: what JAX sees, BPTT seconds per batch at n_rec 200, 1000 and 4000
# (dense and gaussian, batch 32, the default task) and one HH fit on the authors' problem.
# Writes its tables under OUT (default results/device_check/<time>); about 5 minutes on one
# GPU. Run from the repository root after `pip install -r requirements-cuda.txt`:
#     bash benchmarks/device_check.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-results/device_check/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
export MPLBACKEND=Agg
python -c "import jax; print('jax', jax.__version__, jax.devices())" | tee "$OUT/devices.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$OUT/devices.txt" 2>/dev/null || true
python -m benchmarks.train_speed --sizes 200 1000 4000 --conn_methods dense gaussian --steps 2 \
    --timeout 240 --out_dir "$OUT/train_speed" | tee "$OUT/train_speed.txt"
python neuron_fitting_of_hh_model.py --methods gradient,lm --out_dir "$OUT/hh_fit" \
    | tee "$OUT/hh_fit.txt"
echo "tables in $OUT"
