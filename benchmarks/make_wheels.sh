#!/usr/bin/env bash
# Downloads the wheels an offline GPU machine needs to run this project over its own JAX:
# Python 3.12, Linux x86-64, with jax, jaxlib, numpy, scipy, matplotlib, optax, h5py and tqdm
# already installed (and their dependencies). Into DIR (default wheels/, ignored by git) go
# the packages of requirements.txt such a machine lacks, at the versions it pins, and the
# dependencies of those it lacks too, pinned below; never jax, jaxlib or numpy. numba (and
# its 57 MiB llvmlite) stays out: brainevent needs it for CPU kernels only, and the device
# check runs CPU kernels through brainevent's jax_raw backend. Needs network; run it again
# to check or refresh the folder (files already there are kept, others removed). Then:
#     bash benchmarks/device_check.sh OUT_DIR     (on the GPU machine, offline)
#
#     bash benchmarks/make_wheels.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-wheels}"
PYTHON_VERSION=3.12
MAX_MIB=60
# Pinned in requirements.txt: the versions are read from there.
FROM_REQUIREMENTS="brainunit saiunit brainstate braintools brainevent braintrace brainpy
brainpy-state brainpy-datasets six msgpack nevergrad scikit-optimize scikit-learn threadpoolctl"
# Their dependencies that requirements.txt leaves to pip (the versions of the project's
# tested Python 3.11 environment).
DEPENDENCIES="array-api-compat==1.16.0 requests==2.34.2 charset-normalizer==3.5.3 idna==3.20
urllib3==2.8.0 certifi==2026.10.19.post1 bayesian-optimization==1.4.0 cma==4.5.0
directsearch==1.1 pandas==3.1.1 joblib==1.6.0 cloudpickle==3.1.3 narwhals==2.29.0
pyaml==26.7.0 PyYAML==6.0.4"

pins=()
for name in $FROM_REQUIREMENTS; do
    line=$(grep -iE "^${name}==" requirements.txt) \
        || { echo "make_wheels.sh: $name is not pinned in requirements.txt" >&2; exit 1; }
    pins+=("$line")
done
for pin in $DEPENDENCIES; do pins+=("$pin"); done

mkdir -p "$DIR"
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$DIR" \
    --python-version "$PYTHON_VERSION" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 \
    --platform manylinux1_x86_64 "${pins[@]}"

# Keep exactly one wheel per pin (two versions of one package stop an install).
python3 - "$DIR" "${pins[@]}" <<'EOF'
import re, sys
from pathlib import Path
norm = lambda s: re.sub(r"[-_.]+", "_", s).lower()
folder, pins = Path(sys.argv[1]), {norm(p.split("==")[0]): p.split("==")[1] for p in sys.argv[2:]}
found = set()
for whl in sorted(folder.glob("*.whl")):
    name, version = whl.name.split("-")[:2]
    if pins.get(norm(name)) == version:
        found.add(norm(name))
    else:
        print(f"removing {whl.name} (not pinned)")
        whl.unlink()
for other in folder.iterdir():
    if other.suffix != ".whl":
        sys.exit(f"make_wheels.sh: {other} is not a wheel; {folder} holds wheels only")
missing = sorted(set(pins) - found)
if missing:
    sys.exit(f"make_wheels.sh: no wheel for {', '.join(missing)} in {folder}")
EOF

size_kib=$(du -sk "$DIR" | cut -f1)
echo "$DIR: ${#pins[@]} wheels, $((size_kib / 1024)) MiB (limit $MAX_MIB MiB)"
if (( size_kib > MAX_MIB * 1024 )); then
    echo "make_wheels.sh: $DIR is over $MAX_MIB MiB" >&2
    exit 1
fi
