#!/usr/bin/env bash
# Monte Carlo dropout on Fashion-MNIST, measured (issue 8; docs/EXAMPLES.md shows a run):
# converts the dataset if needed, trains examples/fmnist_mlp.json on NP ranks for EPOCHS epochs,
# predicts the test split once with dropout off and once with K Monte Carlo dropout passes
# spread across the ranks, and prints the misclassification rate by predictive-entropy decile
# (bench/mc_uncertainty.py).
#
#   bench/mc_uncertainty.sh [--dptrain BIN] [--np NP] [--epochs E] [--mc-samples K] [--run-dir DIR]
#
# Defaults: BIN = build/dptrain (else build-ux/dptrain), NP 2, E 5, K 32, DIR runs/fmnist-mc.
# Needs /usr/bin/python3 with numpy and h5py (Debian: python3-numpy python3-h5py).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bin="" np=2 epochs=5 k=32 run=runs/fmnist-mc
while (($#)); do
    case $1 in
        --dptrain) bin=$2; shift ;;
        --np) np=$2; shift ;;
        --epochs) epochs=$2; shift ;;
        --mc-samples) k=$2; shift ;;
        --run-dir) run=$2; shift ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "mc_uncertainty.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$bin" ]; then
    for b in build/dptrain build-ux/dptrain; do [ -x "$b" ] && { bin=$b; break; }; done
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "mc_uncertainty.sh: no dptrain binary (--dptrain BIN)" >&2; exit 2; }
py=/usr/bin/python3
"$py" -c 'import h5py, numpy' 2>/dev/null ||
    { echo "mc_uncertainty.sh: $py lacks numpy/h5py (apt-get install python3-numpy python3-h5py)" >&2; exit 2; }
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
mpirun=(mpirun -np "$np" --oversubscribe)

data=datasets/fashion-mnist.h5
[ -f "$data" ] || "$bin" data fashion-mnist --out "$data"

echo "## $(date -u +%F) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
     "$np ranks, $epochs epochs, $k Monte Carlo passes"
echo
echo '$' "mpirun -np $np $bin fit examples/fmnist_mlp.json --epochs $epochs --run-dir $run --verbose 2"
"${mpirun[@]}" "$bin" fit examples/fmnist_mlp.json --epochs "$epochs" --run-dir "$run" --verbose 2 |
    grep -E '^(Epoch|test:|placement:|data:)'
echo '$' "mpirun -np $np $bin predict $run/last.h5 --data $data:test --out $run/det.h5"
t0=$(date +%s.%N)
"${mpirun[@]}" "$bin" predict "$run/last.h5" --data "$data:test" --out "$run/det.h5"
t1=$(date +%s.%N)
echo '$' "mpirun -np $np $bin predict $run/last.h5 --data $data:test --out $run/mc.h5 --mc-samples $k"
"${mpirun[@]}" "$bin" predict "$run/last.h5" --data "$data:test" --out "$run/mc.h5" --mc-samples "$k"
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v k="$k" \
    'BEGIN { printf "predict wall time: dropout off %.1f s, %d Monte Carlo passes %.1f s (mpirun start included)\n", b - a, k, c - b }'
echo
"$py" bench/mc_uncertainty.py "$run/mc.h5" "$data" test "$run/det.h5"
