#!/usr/bin/env bash
# The accelerator check, in one go: what JAX sees; BPTT and ES-D-RTRL seconds per batch at
# n_rec 200, 1000 and 4000 (dense and gaussian, batch 32, the default task); one HH fit.
# Writes environment.json, device_check.json and device_check.md (and the fit's folder)
# into OUT_DIR; within about 8 minutes on one H200 (benchmarks/device_check.py budgets the
# steps). Run from anywhere:
#     bash benchmarks/device_check.sh [--cpu] [--wheels DIR] OUT_DIR
#   --cpu         the same steps at tiny sizes on JAX's CPU backend (a few minutes)
#   --wheels DIR  install these wheels first, offline; without it the installed packages
#                 are used if requirements.txt's stack imports (pip install -r
#                 requirements-cuda.txt), else wheels/ (made by benchmarks/make_wheels.sh)
# The wheels go into a temporary folder put first on PYTHONPATH, with no dependencies
# resolved, so the machine's own jax, jaxlib and numpy stay as they are. PYTHON: the
# interpreter (default python3).
set -euo pipefail

usage() { sed -n '7,11p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "device_check.sh: $*" >&2; exit 2; }

cpu=()
wheels=""
out=""
while (( $# )); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --cpu) cpu=(--cpu) ;;
        --wheels) (( $# >= 2 )) || die "--wheels needs a folder"; wheels="$2"; shift ;;
        -*) die "unknown option $1 (usage: bash benchmarks/device_check.sh [--cpu] [--wheels DIR] OUT_DIR)" ;;
        *) [[ -z "$out" ]] || die "one OUT_DIR only (got $out and $1)"; out="$1" ;;
    esac
    shift
done
[[ -n "$out" ]] || die "no OUT_DIR (usage: bash benchmarks/device_check.sh [--cpu] [--wheels DIR] OUT_DIR)"
if [[ -n "$wheels" ]]; then
    [[ -d "$wheels" ]] || die "no wheels folder $wheels: run bash benchmarks/make_wheels.sh $wheels on a machine with network"
    wheels="$(cd "$wheels" && pwd)"
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
export MPLBACKEND=Agg PYTHONUNBUFFERED=1
if (( ${#cpu[@]} )); then export JAX_PLATFORMS=cpu; fi

stack=(brainstate braintools brainevent braintrace brainpy_datasets nevergrad skopt)
if [[ -z "$wheels" ]] && "$PYTHON" -c "import $(IFS=,; echo "${stack[*]}")" 2>/dev/null; then
    echo "using the installed ${stack[*]}"
else
    wheels="${wheels:-$PWD/wheels}"
    [[ -d "$wheels" ]] || die "no wheels folder $wheels and ${stack[*]} do not all import: run bash benchmarks/make_wheels.sh (or pip install -r requirements-cuda.txt)"
    shopt -s nullglob
    whls=("$wheels"/*.whl)
    shopt -u nullglob
    (( ${#whls[@]} )) || die "no wheels in $wheels: run bash benchmarks/make_wheels.sh"
    for w in "${whls[@]}"; do
        case "$(basename "$w")" in
            jax-*|jaxlib-*|numpy-*) die "$w would replace the machine's own $(basename "$w" | cut -d- -f1)" ;;
        esac
    done
    site="$(mktemp -d "${TMPDIR:-/tmp}/device_check_site.XXXXXX")"
    trap 'rm -rf "$site"' EXIT
    echo "installing ${#whls[@]} wheels from $wheels (offline) into $site"
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --disable-pip-version-check \
        --target "$site" "${whls[@]}"
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi

"$PYTHON" -m benchmarks.jax_env "$out/environment.json"
"$PYTHON" -m benchmarks.device_check "$out" "${cpu[@]}"
echo "tables in $out/device_check.md and $out/device_check.json"
