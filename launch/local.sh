#!/usr/bin/env bash
# One command from a fresh clone to a trained model on this machine:
#   launch/local.sh [CONFIG] [NP]      (defaults: examples/fmnist_mlp.json, 2 ranks)
# Installs missing packages (launch/install-deps.sh), builds build/ if stale, creates the example
# datasets when absent, then runs `mpirun -np NP build/dptrain fit CONFIG --run-dir runs/<name>`.
# Extra arguments after NP are passed to `dptrain fit` (e.g. --epochs 3).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

config=${1:-examples/fmnist_mlp.json}
np=${2:-2}
shift $(( $# > 2 ? 2 : $# )) || true

"$root/launch/install-deps.sh"

if [ ! -f build/CMakeCache.txt ]; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build build -j"$(nproc)" >/dev/null

# The example datasets: made here when missing (never committed).
mkdir -p datasets runs
if grep -q 'datasets/tutorial.h5' "$config" && [ ! -f datasets/tutorial.h5 ]; then
    build/dptrain data synth --samples 1000 --features 20 --seed 1 --out datasets/tutorial.h5
fi
if grep -q 'datasets/fashion-mnist.h5' "$config" && [ ! -f datasets/fashion-mnist.h5 ]; then
    build/dptrain data fashion-mnist --out datasets/fashion-mnist.h5
fi

mpi_flags=()
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
if [ "$np" -gt "$(nproc)" ]; then mpi_flags+=(--oversubscribe); fi
export OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}

name=$(basename "$config" .json)
echo "+ mpirun -np $np ${mpi_flags[*]} build/dptrain fit $config --run-dir runs/$name $*"
exec mpirun -np "$np" "${mpi_flags[@]}" build/dptrain fit "$config" --run-dir "runs/$name" "$@"
