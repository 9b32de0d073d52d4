#!/usr/bin/env bash
# The 16-rank measurement of issue 9, as run on a lent 16-core host without MPI, HDF5 or OpenBLAS
# installed. Here (the development machine), first:
#   cmake -S . -B build-dev -DDPT_BUILD_TESTS=OFF && cmake --build build-dev --target dptrain
#   cc -O2 -o build-dev/sgemm_peak bench/sgemm_peak.c -lopenblas
#   ../shared/tools/mpi-bundle.sh build-dev/dptrain build-dev/sgemm_peak
# then carry build-dev and .mpibundle to the host and run bench/host16.sh there. Results go to
# $OUT (or /tmp/host16): host.txt, and per part a table (.md) and its per-run lines (.err: the
# samples/s of each run and the last --profile line); one part's failure does not stop the next.
#   part 1: 1, 2, 4, 8, 16 ranks, both networks, exchange / --reduce mpi / --no-allreduce, 1 run each
#   part 2: 1 and 16 ranks, 3 runs each (medians), global order (the default)
#   part 3: the same with --order local (balanced per-step counts)
# RANKS (default "1 2 4 8 16"), TOP (default 16) and REPS (default 3) shrink it for a trial run.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-/tmp/host16}
mkdir -p "$out"
{
    date -u
    nproc
    lscpu
    free -g
    df -h /dev/shm /tmp
} >"$out/host.txt" 2>&1
# always the bundle's MPI and libraries: the host may have an mpirun of its own (the lent one has
# Ubuntu's) but not HDF5, and our dptrain was linked against Debian's Open MPI
if [ -f .mpibundle/env.sh ]; then
    # shellcheck disable=SC1091
    source .mpibundle/env.sh
fi
export RUN_TIMEOUT=${RUN_TIMEOUT:-90}
common=(--build-dir build-dev --no-torch --epochs 4)
top=${TOP:-16} reps=${REPS:-3}
part() { # NAME ARGS...
    local name=$1
    shift
    local t0=$SECONDS
    bench/scaling.sh "${common[@]}" "$@" >"$out/$name.md" 2>"$out/$name.err"
    echo "$name: exit $?, $((SECONDS - t0)) s" >>"$out/host.txt"
}
part scaling-all --ranks "${RANKS:-1 2 4 8 16}" --reps 1
part scaling-$top --ranks "1 $top" --reps "$reps"
part scaling-$top-local --ranks "1 $top" --reps "$reps" --order local
# the run logs (no weights: they are large)
find build-dev/bench-logs -name '*.log' -o -name history.csv | tar -cf "$out/logs.tar" -T - 2>/dev/null
