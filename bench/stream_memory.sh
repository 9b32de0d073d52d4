#!/usr/bin/env bash
# Streaming memory benchmark (issue 3), a benchmark, not a test: a synthetic dataset of at least
# 4 GiB, one epoch on 2 ranks in streaming mode, peak RSS per rank from /usr/bin/time -v.
# Target: <= 256 MiB per rank.
#
#   bench/stream_memory.sh [--keep] [--record] [--driver] [--samples N] [--features F]
#                          [--memory-limit SIZE] [--batch B] [--build-dir DIR] [--data FILE]
#
#   default data: 1,048,576 samples x 1024 float32 features (4 GiB of x) written by
#            `dptrain data synth` (it writes in 64 MiB blocks, so it needs little memory), in the
#            build directory; deleted at the end unless --keep (a kept file is reused).
#   trainer: `mpirun -np 2 /usr/bin/time -v dptrain fit CONFIG --memory-limit 64M --epochs 1`
#            with a 1024 -> 64 relu -> 1 sigmoid model (binary cross-entropy, batch 256); the
#            shard (2 GiB a rank) is above the limit, so the trainer streams.
#   --driver: the reader alone (bench/stream_read.c: dpt_stream driven with the trainer's local
#            counts, window = limit / 4), for use before the trainer has --memory-limit; chosen
#            automatically when `dptrain fit --help` does not mention --memory-limit.
#   --record appends the result to bench/RESULTS.md under "Streaming memory".
# Exit status: 0 when every rank's peak RSS is <= 256 MiB, 1 when not, 2 on a usage or run error.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

keep=0 record=0 driver=0 samples=1048576 features=1024 limit=64M batch=256
build=${BUILD_DIR:-build-stream-bench} data=""
while (($#)); do
    case $1 in
        --keep) keep=1 ;;
        --record) record=1 ;;
        --driver) driver=1 ;;
        --samples) samples=$2; shift ;;
        --features) features=$2; shift ;;
        --memory-limit) limit=$2; shift ;;
        --batch) batch=$2; shift ;;
        --build-dir) build=$2; shift ;;
        --data) data=$2; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "stream_memory.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

to_bytes() { # 64M -> 67108864
    local v=$1 n m=1
    case $v in
        *[kK]) m=1024; n=${v%?} ;;
        *[mM]) m=$((1024 * 1024)); n=${v%?} ;;
        *[gG]) m=$((1024 * 1024 * 1024)); n=${v%?} ;;
        *) n=$v ;;
    esac
    echo $((n * m))
}
limit_bytes=$(to_bytes "$limit")
target_mib=256

# ---- build (RelWithDebInfo; incremental when the directory is already configured) -------------
if [[ ! -f $build/CMakeCache.txt ]]; then
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDPT_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$build" -j"$(nproc)" --target dptrain >/dev/null
dpt=$(cd "$build" && pwd)/dptrain

if ((!driver)) && ! "$dpt" fit --help 2>&1 | grep -- --memory-limit >/dev/null; then
    echo "stream_memory.sh: dptrain fit has no --memory-limit yet: measuring the reader alone (--driver)"
    driver=1
fi

work=$(cd "$build" && pwd)/stream-memory
mkdir -p "$work"
[[ -n $data ]] || data=$work/synth-${samples}x${features}.h5
cleanup() {
    if ((!keep)) && [[ $data == "$work"/synth-* ]]; then rm -f "$data" "$data.tmp"; fi
}
trap cleanup EXIT

# ---- data ---------------------------------------------------------------------------------------
if [[ ! -f $data ]]; then
    echo "writing $data ($samples x $features float32)..."
    /usr/bin/time -f "  %e s, peak RSS %M KiB" "$dpt" data synth --out "$data" --samples "$samples" \
        --features "$features" --seed 1
fi
x_bytes=$((samples * features * 4))
size_h=$(du -h --apparent-size "$data" | cut -f1)
echo "data: $data ($size_h; x is $((x_bytes / 1024 / 1024)) MiB)"

# ---- run ------------------------------------------------------------------------------------------
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_rmaps_base_oversubscribe=1
mpi_flags=(-np 2)
if [[ $(id -u) == 0 ]]; then mpi_flags+=(--allow-run-as-root); fi
rm -f "$work"/time.*
# one /usr/bin/time per rank, each writing its own report
per_rank='exec /usr/bin/time -v -o "$0/time.${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}" "$@"'
t0=$(date +%s.%N)
if ((driver)); then
    mpicc -O2 -std=c11 -I include -o "$work/stream_read" bench/stream_read.c "$build/libdptrain.a" \
        $(pkg-config --cflags --libs hdf5-openmpi) -lopenblas -ljansson -lz -lm -lpthread
    what="reader alone (bench/stream_read.c), window = limit / 4"
    mpirun "${mpi_flags[@]}" bash -c "$per_rank" "$work" "$work/stream_read" "$data" "$limit_bytes" \
        "$batch" 1 | tee "$work/run.log"
else
    cfg=$work/config.json
    cat >"$cfg" <<EOF
{"model": {"class_name": "Sequential", "config": {"name": "stream_memory", "layers": [
  {"class_name": "InputLayer", "config": {"batch_input_shape": [null, $features], "dtype": "float32", "name": "in"}},
  {"class_name": "Dense", "config": {"name": "dense", "units": 64, "activation": "relu"}},
  {"class_name": "Dense", "config": {"name": "out", "units": 1, "activation": "sigmoid"}}]}},
 "compile": {"optimizer": "adam", "loss": "binary_crossentropy", "metrics": ["accuracy"]},
 "fit": {"epochs": 1, "batch_size": $batch, "validation_split": 0.0, "shuffle": true, "seed": 42},
 "data": {"path": "$data", "train": "train"}}
EOF
    what="dptrain fit, 1024-64-1 MLP, batch $batch"
    mpirun "${mpi_flags[@]}" bash -c "$per_rank" "$work" "$dpt" fit "$cfg" --memory-limit "$limit" \
        --epochs 1 | tee "$work/run.log"
fi
wall=$(echo "$(date +%s.%N) - $t0" | bc)

# ---- report ---------------------------------------------------------------------------------------
status=0
rows=""
for r in 0 1; do
    f=$work/time.$r
    [[ -f $f ]] || { echo "stream_memory.sh: no /usr/bin/time report for rank $r" >&2; exit 2; }
    kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$f")
    el=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$f")
    mib=$(echo "scale=1; $kib / 1024" | bc)
    verdict=ok
    if ((kib > target_mib * 1024)); then verdict="OVER $target_mib MiB"; status=1; fi
    echo "rank $r: peak RSS $mib MiB ($verdict), elapsed $el"
    rows+="| $r | $mib | $el |"$'\n'
done
printf 'wall %.1f s\n' "$wall"

if ((record)); then
    cpu=$(lscpu | awk -F': *' '/Model name/ {print $2; exit}')
    {
        echo
        echo "## Streaming memory"
        echo
        echo "\`bench/stream_memory.sh\` ($(date +%Y-%m-%d), $cpu, $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM):"
        echo "$samples samples x $features float32 features ($size_h file), 2 ranks, one epoch, streaming"
        echo "with \`--memory-limit $limit\`; $what."
        echo "Peak RSS per rank from \`/usr/bin/time -v\` (target <= $target_mib MiB):"
        echo
        echo "| rank | peak RSS (MiB) | elapsed |"
        echo "| --- | --- | --- |"
        printf '%s' "$rows"
    } >>bench/RESULTS.md
    echo "appended to bench/RESULTS.md"
fi
exit $status
