#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang, ASan and UBSan, against the
# library sources src/*/*.c except src/cli compiled the same way, and the
# system's MPI, parallel HDF5, OpenBLAS, jansson and zlib (those are not instrumented).
#   tests/fuzz/build.sh [OUTDIR]       (default: build-fuzz/ at the repository root)
# Environment: CLANG (default clang-14, else clang), JOBS (default nproc).
# Exits 77 when no clang with libFuzzer is found (the callers treat that as "skipped").
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build-fuzz}
jobs=${JOBS:-$(nproc)}

cc=${CLANG:-}
if [ -z "$cc" ]; then
    for c in clang-14 clang; do command -v "$c" >/dev/null && { cc=$c; break; }; done
fi
[ -n "$cc" ] || { echo "build.sh: no clang found (apt-get install clang-14)" >&2; exit 77; }
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe/p.c"
if ! "$cc" -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" 2>"$probe/err"; then
    echo "build.sh: $cc cannot link libFuzzer (Debian: apt-get install libclang-rt-14-dev or clang-14):" >&2
    cat "$probe/err" >&2
    exit 77
fi

# flags of the system libraries: pkg-config first, then the Debian/Ubuntu paths
flags() { pkg-config "$@" 2>/dev/null; }
mpi_c=$(mpicc -showme:compile 2>/dev/null || flags --cflags ompi-c || echo "-I/usr/lib/x86_64-linux-gnu/openmpi/include")
mpi_l=$(mpicc -showme:link 2>/dev/null || flags --libs ompi-c || echo "-L/usr/lib/x86_64-linux-gnu/openmpi/lib -lmpi")
hdf5_c=$(flags --cflags hdf5-openmpi || echo "-I/usr/include/hdf5/openmpi")
hdf5_l=$(flags --libs hdf5-openmpi || echo "-L/usr/lib/x86_64-linux-gnu/hdf5/openmpi -lhdf5")
jansson_c=$(flags --cflags jansson || true)
jansson_l=$(flags --libs jansson || echo "-ljansson")
blas_c=""
for d in /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas /usr/include; do
    [ -f "$d/cblas.h" ] && { blas_c="-I$d"; break; }
done
[ -n "$blas_c" ] || { echo "build.sh: cblas.h not found (apt-get install libopenblas-dev)" >&2; exit 1; }
blas_l=$(flags --libs openblas || echo "-lopenblas")

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
cflags="-std=c11 $san -fsanitize=fuzzer-no-link -I$root/include -I$root/src $mpi_c $hdf5_c $jansson_c $blas_c -DDPT_SOURCE_DIR=\"$root\" -fno-math-errno -w"
libs="$hdf5_l $mpi_l $jansson_l $blas_l -lz -lm -lpthread"

mkdir -p "$out/obj"
srcs=()
for d in $(cd "$root/src" && ls -d */ | tr -d / | grep -vx cli); do
    for f in "$root"/src/$d/*.c; do [ -e "$f" ] && srcs+=("$f"); done
done
echo "build.sh: $cc, ${#srcs[@]} library sources -> $out" >&2
objs=()
todo=()
for f in "${srcs[@]}"; do
    rel=${f#"$root"/src/}
    o=$out/obj/${rel//\//_}.o
    objs+=("$o")
    if [ ! -f "$o" ] || [ "$f" -nt "$o" ]; then todo+=("$f" "$o"); fi
done
if [ ${#todo[@]} -gt 0 ]; then
    printf '%s\n' "${todo[@]}" | xargs -P "$jobs" -n 2 sh -c "$cc $cflags -c \"\$0\" -o \"\$1\" || exit 255"
fi
for t in "$here"/fuzz_*.c; do
    name=$(basename "$t" .c)
    # shellcheck disable=SC2086
    "$cc" $cflags -fsanitize=fuzzer "$t" "${objs[@]}" $libs -o "$out/$name"
    echo "build.sh: $out/$name" >&2
done
