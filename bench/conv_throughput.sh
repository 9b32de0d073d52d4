#!/usr/bin/env bash
# Conv2D forward + backward throughput as a fraction of the sgemm peak measured in the same run
# (bench/conv_throughput.c). Builds the library (RelWithDebInfo, -O2) in BUILD_DIR (default
# build-bench) unless it is there, links the bench against it, runs it with 1 OpenBLAS thread and
# then with all cores (THREADS, default nproc), and with --record appends the table to
# bench/RESULTS.md under "Conv2D throughput".
#
#   bench/conv_throughput.sh [--quick] [--record]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
quick="" record=0
for a in "$@"; do
    case $a in
        --quick) quick=--quick ;;
        --record) record=1 ;;
        *) echo "usage: $0 [--quick] [--record]" >&2; exit 2 ;;
    esac
done
build=${BUILD_DIR:-build-bench}
if [ ! -f "$build/libdptrain.a" ]; then
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDPT_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$build" --target dptrain_lib -j"$(nproc)" >/dev/null
cblas_inc=$(dirname "$(find /usr/include -name cblas.h -path '*openblas*' | head -1)")
hdf5_flags=$(pkg-config --cflags --libs hdf5-openmpi 2>/dev/null || echo "-lhdf5")
mpicc -O2 -std=c11 -Iinclude -Isrc -I"$cblas_inc" -o "$build/conv_throughput" \
    bench/conv_throughput.c "$build/libdptrain.a" -lopenblas $(pkg-config --cflags --libs jansson) \
    $hdf5_flags -lz -lm -lpthread
out=$(mktemp)
{
    echo "1 OpenBLAS thread:"
    OPENBLAS_NUM_THREADS=1 "$build/conv_throughput" $quick
    t=${THREADS:-$(nproc)}
    if [ "$t" -gt 1 ]; then
        echo "$t OpenBLAS threads:"
        OPENBLAS_NUM_THREADS=$t "$build/conv_throughput" $quick
    fi
} | tee "$out"
if [ "$record" = 1 ]; then
    {
        echo
        echo "## Conv2D throughput ($(date -u +%Y-%m-%d), $(nproc) cores, bench/conv_throughput.sh)"
        echo
        echo '```'
        cat "$out"
        echo '```'
    } >> bench/RESULTS.md
fi
rm -f "$out"
