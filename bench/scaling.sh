#!/usr/bin/env bash
# Weak scaling of dptrain over MPI ranks, with and without the gradient reduction (issue 9).
#
#   bench/scaling.sh [--ranks "1 2 4 8 16"] [--oversubscribe] [--nets "mlp tutorial"] [--epochs E]
#                    [--reps R] [--no-torch] [--no-mpi-column] [--order global|local]
#                    [--build-dir DIR]
#   bench/scaling.sh --pack [DIR]      make DIR.tar.gz (default scaling-pack) to run on another host
#
# For each network and N in the rank list (only N <= the core count unless --oversubscribe):
#   mpirun -np N --bind-to core dptrain fit ... --batch-size (per-rank × N), 1 OpenBLAS thread per rank,
#   128 samples per rank per step for the Fashion-MNIST MLP (784-512-512-10, synthetic 784 features),
#   32 for the tutorial network (20-64-64-1), a fixed number of steps per epoch (the dataset grows with N,
#   so every rank's shard has the same size), three times: the default gradient exchange (shared
#   memory within the node), --reduce mpi (one MPI_Allreduce) and --no-allreduce (no exchange).
# Prints per network: samples/s, efficiency = samples/s(N) / (N × samples/s(1)), and the communication
# ratio = samples/s with the exchange / samples/s without (the issue's target: >= 0.9). samples/s
# comes from history.csv: samples per epoch / median epoch time over the epochs after the first.
# Every run has --profile; the last epoch's line (compute / exchange / update per step) of each run
# is printed to stderr.
# Then, only where `python3 -c 'import torch'` works, PyTorch DDP (gloo) on the same shapes, separately.
# RUN_TIMEOUT=S (default 600) ends a run that takes longer (it counts as FAIL).
#
# On a host without dptrain's dependencies (MPI, HDF5, OpenBLAS, jansson):
#   here:   bench/scaling.sh --pack            (builds, bundles Open MPI + libraries with
#                                               ../shared/tools/mpi-bundle.sh, writes scaling-pack.tar.gz)
#   there:  tar xzf scaling-pack.tar.gz && cd scaling-pack && bench/scaling.sh
# The script sources .mpibundle/env.sh itself when mpirun is missing and the bundle is present.
# Data is generated there by the bundled dptrain (`dptrain data synth`), no Python needed.
# OpenBLAS: when the kernel OpenBLAS picked is a generic one (Prescott, …) on a CPU with AVX-512 / AVX2,
# OPENBLAS_CORETYPE is set to SkylakeX / Haswell (Debian's 0.3.21 takes Sapphire Rapids for a Prescott:
# 25 instead of 114 GFLOP/s per core), unless it is already set.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

ranks_list="1 2 4 8 16" oversub=0 nets="mlp tutorial" epochs=4 reps=1 torch=1 build=${BUILD_DIR:-build-bench}
mpicol=1 order=global
pack=""
while (($#)); do
    case $1 in
        --ranks) ranks_list=$2; shift ;;
        --oversubscribe) oversub=1 ;;
        --nets) nets=$2; shift ;;
        --epochs) epochs=$2; shift ;;
        --reps) reps=$2; shift ;;
        --no-torch) torch=0 ;;
        --no-mpi-column) mpicol=0 ;;
        --order) order=$2; shift ;;
        --build-dir) build=$2; shift ;;
        --pack) pack=${2:-scaling-pack}; [[ ${2:-} && ${2:0:1} != - ]] && shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "scaling.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
((epochs >= 2)) || { echo "scaling.sh: --epochs must be >= 2 (the first epoch is not timed)" >&2; exit 2; }
dpt=$build/dptrain sgemm=$build/sgemm_peak

# ---- --pack: a directory that runs on a bare host ------------------------------------------------
if [[ -n $pack ]]; then
    if [ ! -f "$build/CMakeCache.txt" ]; then cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null; fi
    if ! cmake --build "$build" -j"$(nproc)" --target dptrain >"$build/pack-build.log" 2>&1; then
        [ -x "$dpt" ] || { echo "scaling.sh: building dptrain failed (see $build/pack-build.log)" >&2; exit 1; }
        echo "scaling.sh: building dptrain failed (see $build/pack-build.log); packing the existing $dpt" >&2
    fi
    cc -O2 -o "$sgemm" bench/sgemm_peak.c -lopenblas
    bundler=$root/../shared/tools/mpi-bundle.sh
    [ -x "$bundler" ] || bundler=/work/shared/tools/mpi-bundle.sh
    rm -rf "$pack" && mkdir -p "$pack/bench" "$pack/$build"
    cp -a bench/scaling.sh bench/configs bench/peers "$pack/bench/"
    cp -a "$dpt" "$sgemm" "$pack/$build/"
    "$bundler" -o "$pack/.mpibundle" "$dpt" "$sgemm"
    tar -C "$(dirname "$pack")" -czf "$pack.tar.gz" "$(basename "$pack")"
    echo "scaling.sh: wrote $pack.tar.gz ($(du -h "$pack.tar.gz" | cut -f1)). On the host:"
    echo "  tar xzf $(basename "$pack").tar.gz && cd $(basename "$pack") && bench/scaling.sh"
    exit 0
fi

# ---- environment ---------------------------------------------------------------------------------
if [ -f .mpibundle/env.sh ] && { ! command -v mpirun >/dev/null || ldd "$dpt" 2>/dev/null | grep -q 'not found'; }; then
    # shellcheck disable=SC1091
    source .mpibundle/env.sh
    echo "# using the MPI bundle (.mpibundle/env.sh)" >&2
fi
command -v mpirun >/dev/null || { echo "scaling.sh: no mpirun (and no .mpibundle/env.sh)" >&2; exit 1; }
if [ ! -x "$dpt" ]; then
    if command -v cmake >/dev/null; then
        [ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
        cmake --build "$build" -j"$(nproc)" --target dptrain >/dev/null
    else
        echo "scaling.sh: $dpt missing; build it or use --pack on a machine that can" >&2; exit 1
    fi
fi
if [ ! -x "$sgemm" ] && command -v cc >/dev/null; then cc -O2 -o "$sgemm" bench/sgemm_peak.c -lopenblas 2>/dev/null || true; fi

export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}
cores=$(getconf _NPROCESSORS_ONLN)

flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -x "$sgemm" ]; then
    core=$("$sgemm" --corename 2>/dev/null || echo unknown)
    case $core in
        Prescott|Core2|Penryn|Dunnington|Nehalem|Atom|Katmai|Coppermine|Northwood|Banias|generic|unknown)
            if [[ $flags == *" avx512f"* ]]; then export OPENBLAS_CORETYPE=SkylakeX
            elif [[ $flags == *" avx2"* ]]; then export OPENBLAS_CORETYPE=Haswell; fi
            [ -n "${OPENBLAS_CORETYPE:-}" ] &&
                echo "# OpenBLAS picked the $core kernel on a CPU with ${OPENBLAS_CORETYPE/SkylakeX/AVX-512}; set OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE" >&2 ;;
    esac
fi
peak=""
if [ -x "$sgemm" ]; then peak=$("$sgemm" --quick); echo "# $peak" >&2; fi

logs=$build/bench-logs/scaling-$(date +%Y%m%d-%H%M%S)
data=datasets/scaling
mkdir -p "$logs" "$data"

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "nan"; exit} if (NR%2) printf "%.1f\n", v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2]+v[NR/2+1])/2}'; }
dpt_rate() { # CSV N
    awk -F, -v n="$2" 'NR==1 {for (i=1;i<=NF;i++) if ($i=="seconds") c=i; next}
                       NR>2 && c && $c>0 {printf "%.1f\n", n/$c}' "$1" | median
}

# net: config | features | per-rank batch | steps per epoch | torch net name
declare -A CFG=([mlp]=bench/configs/fmnist_mlp_flat.json [tutorial]=bench/configs/tutorial_bench.json)
declare -A FEAT=([mlp]=784 [tutorial]=20) PER=([mlp]=128 [tutorial]=32) STEPS=([mlp]=60 [tutorial]=800)
declare -A TNET=([mlp]=fmnist [tutorial]=tutorial)

ranks=()
for n in $ranks_list; do
    if ((n > cores && !oversub)); then echo "# skipping $n ranks: $cores cores (use --oversubscribe)" >&2; continue; fi
    ranks+=("$n")
done
((${#ranks[@]})) || { echo "scaling.sh: no rank count fits $cores cores" >&2; exit 2; }

run_id=0
run_dpt() { # NET N MODE(ar|mpi|noar) -> samples/s or FAIL
    local net=$1 n=$2 mode=$3 b=$((PER[$1] * $2)) samples file dir mpiflags=(--bind-to core) extra=()
    samples=$((b * STEPS[$net]))
    file=$data/$net-$samples.h5
    [ -f "$file" ] || "$dpt" data synth --samples "$samples" --features "${FEAT[$net]}" --seed 1 --out "$file" >/dev/null
    ((n > cores)) && mpiflags=(--oversubscribe --bind-to none)
    [[ $mode == noar ]] && extra=(--no-allreduce)
    [[ $mode == mpi ]] && extra=(--reduce mpi)
    dir=$logs/$net-$n-$mode-$((++run_id))
    if timeout -k 10 "${RUN_TIMEOUT:-600}" mpirun -np "$n" "${mpiflags[@]}" "$dpt" fit "${CFG[$net]}" --data "$file" \
        --epochs "$epochs" --batch-size "$b" --order "$order" --check-replicas 0 --run-dir "$dir" "${extra[@]}" \
        --verbose 1 --profile >"$dir.log" 2>&1 && [ -f "$dir/history.csv" ]; then
        echo "# $net $n $mode: $(grep 'profile:' "$dir.log" | tail -1)" >&2
        dpt_rate "$dir/history.csv" "$samples"
    else
        echo FAIL
    fi
}

host="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1) · $cores cores"
echo
echo "dptrain weak scaling · $(date -u '+%Y-%m-%d %H:%M UTC') · $host · OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} · ${peak:-no sgemm_peak}"
for net in $nets; do
    [[ -n ${CFG[$net]:-} ]] || { echo "scaling.sh: unknown net $net (mlp, tutorial)" >&2; exit 2; }
    declare -A ar=() noar=() mp=()
    for n in "${ranks[@]}"; do
        a="" z="" m=""
        for ((r = 1; r <= reps; r++)); do
            a+="$(run_dpt "$net" "$n" ar) "
            z+="$(run_dpt "$net" "$n" noar) "
            if ((mpicol && n > 1)); then m+="$(run_dpt "$net" "$n" mpi) "; fi
        done
        ar[$n]=$(tr ' ' '\n' <<<"$a" | { grep -E '^[0-9.]+$' || true; } | median)
        noar[$n]=$(tr ' ' '\n' <<<"$z" | { grep -E '^[0-9.]+$' || true; } | median)
        mp[$n]=$(tr ' ' '\n' <<<"${m:-$a}" | { grep -E '^[0-9.]+$' || true; } | median)
        echo "# $net $n ranks: with the exchange $a; --reduce mpi ${m:-(same as 1 rank)}; without $z" >&2
    done
    echo
    echo "$net, ${PER[$net]} samples per rank per step, ${STEPS[$net]} steps per epoch, $order order, median of epochs 2..$epochs, median of $reps run(s)"
    echo
    echo "| ranks | samples/s | efficiency | samples/s --reduce mpi | samples/s --no-allreduce | efficiency --no-allreduce | with / without exchange | mpi / without |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    base=${ar[${ranks[0]}]} basez=${noar[${ranks[0]}]} n0=${ranks[0]}
    for n in "${ranks[@]}"; do
        awk -v n="$n" -v n0="$n0" -v a="${ar[$n]}" -v z="${noar[$n]}" -v b="$base" -v bz="$basez" -v m="${mp[$n]}" 'BEGIN {
            sa = (a == "nan") ? "FAIL" : sprintf("%.0f", a)
            sz = (z == "nan") ? "FAIL" : sprintf("%.0f", z)
            sm = (m == "nan") ? "FAIL" : sprintf("%.0f", m)
            rm = (m == "nan" || z == "nan") ? "—" : sprintf("%.2f", m / z)
            ea = (a == "nan" || b == "nan") ? "—" : sprintf("%.2f", a / (b * n / n0))
            ez = (z == "nan" || bz == "nan") ? "—" : sprintf("%.2f", z / (bz * n / n0))
            r  = (a == "nan" || z == "nan") ? "—" : sprintf("%.2f", a / z)
            printf "| %d | %s | %s | %s | %s | %s | %s | %s |\n", n, sa, ea, sm, sz, ez, r, rm }'
    done
    unset ar noar mp
done

# ---- PyTorch, separately, only where it exists ---------------------------------------------------
py=$(command -v python3 || true)
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
if ((torch)) && [ -n "$py" ] && "$py" -c 'import torch' 2>/dev/null; then
    echo
    echo "PyTorch $("$py" -c 'import torch; print(torch.__version__)') DDP gloo, same shapes (1 thread per rank, one timed epoch after 20 warm-up steps)"
    for net in $nets; do
        echo
        echo "| $net ranks | samples/s | efficiency |"
        echo "| ---: | ---: | ---: |"
        t1=""
        for n in "${ranks[@]}"; do
            b=$((PER[$net] * n)) samples=$((b * STEPS[$net]))
            out=$logs/torch-$net-$n.log
            if "$py" bench/peers/torch_mlp.py --net "${TNET[$net]}" --ranks "$n" --batch-size "$b" \
                --samples "$samples" --data "$data/$net-$samples.h5" --warmup-steps 20 --timeout 600 >"$out" 2>&1; then
                t=$(sed -n 's/.*samples_per_s=\([0-9.]*\).*/\1/p' "$out" | tail -1)
            else
                t=nan
            fi
            [[ -z $t1 ]] && t1=$t n1=$n
            awk -v n="$n" -v t="$t" -v t1="$t1" -v n1="$n1" 'BEGIN {
                printf "| %d | %s | %s |\n", n, (t == "nan") ? "FAIL" : sprintf("%.0f", t),
                    (t == "nan" || t1 == "nan") ? "—" : sprintf("%.2f", t / (t1 * n / n1)) }'
        done
    done
else
    echo
    echo "(no PyTorch here: dptrain only)"
fi
echo "(logs: $logs)"
