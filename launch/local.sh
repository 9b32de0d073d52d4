#!/usr/bin/env bash
# One command from a fresh clone to a trained model on this machine:
#   launch/local.sh [CONFIG] [NP]      (defaults: examples/fmnist_mlp.json, 2 ranks)
# Installs missing packages (launch/install-deps.sh), builds build/ if stale, creates the example
# datasets when absent, then runs `mpirun -np NP build/dptrain fit CONFIG --run-dir runs/<name>`.
# Extra arguments after NP are passed to `dptrain fit` (e.g. --epochs 3). Ctrl-C or SIGTERM: the
# ranks checkpoint and it exits 75; run it again with --resume to continue.
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


# Preemption: SIGTERM, SIGINT or SIGUSR1 to this script goes on to mpirun as SIGUSR1, which mpirun
# forwards to the ranks: they checkpoint at the next step and exit 75, and so does mpirun. (Given
# SIGTERM or SIGINT itself, mpirun kills the ranks and exits 1 even when they had checkpointed.)
# When the signal reached mpirun directly, the ranks still checkpoint and rank 0 leaves
# RUN_DIR/preempted holding this launch's DPT_LAUNCH_ID: mpirun's exit is then reported as 75.
run_forwarding() { # run_forwarding RUN_DIR CMD...
    local run_dir=$1 rc
    shift
    "$@" &
    child=$!
    trap 'kill -USR1 "$child" 2>/dev/null' TERM INT USR1
    while :; do # `wait` returns early when a trapped signal arrives
        wait "$child"
        rc=$?
        if [ "$rc" -gt 128 ] && kill -0 "$child" 2>/dev/null; then continue; fi
        break
    done
    trap - TERM INT USR1
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 75 ] && [ -n "$run_dir" ] &&
        grep -qxF "launch=$DPT_LAUNCH_ID" "$run_dir/preempted" 2>/dev/null; then
        echo "$(basename "$0"): mpirun exited $rc after a signal, but the ranks had checkpointed: exit 75 (resume with --resume)" >&2
        rc=75
    fi
    return "$rc"
}

name=$(basename "$config" .json)
export DPT_LAUNCH_ID=${DPT_LAUNCH_ID:-$(hostname)-$$-$(date +%s%N)}
echo "+ mpirun -np $np ${mpi_flags[*]} build/dptrain fit $config --run-dir runs/$name $*"
set +e
run_forwarding "runs/$name" mpirun -np "$np" "${mpi_flags[@]}" build/dptrain fit "$config" --run-dir "runs/$name" "$@"
exit $?
