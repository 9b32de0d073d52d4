#!/usr/bin/env bash
# The adding problem (issue 13's long-memory task), made by `dptrain data adding` (no download):
# x (N, T, 2): uniform values and a marker channel with two 1s; y = the sum of the two marked
# values. The trivial baseline predicts the mean: its MSE is the variance of y (about 1/6). An
# LSTM trained on 2 ranks must get far below it.
#   bench/adding.sh [--steps T] [--samples N] [--epochs E] [--ranks R] [--build-dir DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
T=50 N=20000 E=20 R=2 build=${BUILD_DIR:-build}
while (($#)); do
    case $1 in
        --steps) T=$2; shift ;; --samples) N=$2; shift ;; --epochs) E=$2; shift ;;
        --ranks) R=$2; shift ;; --build-dir) build=$2; shift ;;
        *) echo "adding.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
dpt=$build/dptrain work=$(mktemp -d "${TMPDIR:-/tmp}/dpt-adding-XXXXXX")
export OPENBLAS_NUM_THREADS=1
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
"$dpt" data adding --samples "$N" --steps "$T" --seed 1 --out "$work/add.h5" >/dev/null
cat >"$work/lstm.json" <<JSON
{"model": {"class_name": "Sequential", "config": {"layers": [
   {"class_name": "InputLayer", "config": {"batch_shape": [null, $T, 2]}},
   {"class_name": "LSTM", "config": {"units": 32}},
   {"class_name": "Dense", "config": {"units": 1}}]}},
 "compile": {"optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.005}}, "loss": "mse"},
 "fit": {"epochs": $E, "batch_size": 64, "validation_split": 0.1, "seed": 1},
 "data": {"path": "$work/add.h5", "test": "test"}}
JSON
t0=$(date +%s)
mpirun -np "$R" --oversubscribe "$dpt" fit "$work/lstm.json" --run-dir "$work/run" --verbose 2 | tee "$work/out"
echo "# adding problem, T=$T, N=$N, $E epochs, $R ranks: $(( $(date +%s) - t0 )) s wall" >&2
"$dpt" data inspect "$work/add.h5" | grep -i -E "test|y" | head -5 >&2 || true
