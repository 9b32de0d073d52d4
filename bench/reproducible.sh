#!/usr/bin/env bash
# The cost of the reproducible mode (issue 15), side by side in ONE run, as ratios:
#   bench/reproducible.sh [--reps N] [--build-dir DIR]
# For {tutorial, fmnist-mlp} x {1, 2 ranks}, alternating default-mode and --reproducible runs (N
# each, default 3), the median samples/s of each (training samples / the median epoch time of
# history.csv after the first epoch), their ratio, and one --profile line of each mode (where the
# time goes). Same data and configs as bench/run.sh; OPENBLAS_NUM_THREADS=1, one core per rank.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
reps=3 build=${BUILD_DIR:-build-bench} micro=""
while (($#)); do
    case $1 in
        --reps) reps=$2; shift ;;
        --build-dir) build=$2; shift ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "reproducible.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
dpt=$build/dptrain logs=$build/bench-logs/repro-$(date +%Y%m%d-%H%M%S)
mkdir -p "$logs" datasets
[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >"$logs/cmake.log" 2>&1
cmake --build "$build" -j"$(nproc)" --target dptrain >>"$logs/cmake.log" 2>&1
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

tut_data=datasets/bench-tutorial.h5 tut_n=100000
[ -f "$tut_data" ] || "$dpt" data synth --samples $tut_n --features 20 --seed 1 --out "$tut_data" >/dev/null
fm_cfg=bench/configs/fmnist_mlp.json fm_data=datasets/fashion-mnist.h5 fm_n=60000
if [ ! -f "$fm_data" ] && [ -d /usr/share/datasets/fashion-mnist ]; then
    "$dpt" data fashion-mnist --out "$fm_data" >/dev/null || rm -f "$fm_data"
fi
if [ ! -f "$fm_data" ]; then
    fm_cfg=bench/configs/fmnist_mlp_flat.json fm_data=datasets/bench-fmnist-synth.h5
    [ -f "$fm_data" ] || "$dpt" data synth --samples $fm_n --features 784 --seed 1 --out "$fm_data" >/dev/null
fi

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "nan"; exit} if (NR%2) printf "%.1f\n", v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2]+v[NR/2+1])/2}'; }
rate() { awk -F, -v n="$2" 'NR==1 {for (i=1;i<=NF;i++) if ($i=="seconds") c=i; next}
                            NR>2 && c && $c>0 {printf "%.1f\n", n/$c}' "$1" | median; }
one() { # DIR CONFIG DATA N RANKS EPOCHS MODE-ARGS... -> samples/s (DIR.log: the output)
    local dir=$1 cfg=$2 data=$3 n=$4 np=$5 ep=$6
    shift 6
    if timeout -k 10 600 mpirun -np "$np" --bind-to core "$dpt" fit "$cfg" --data "$data" --epochs "$ep" \
        --run-dir "$dir" --verbose 1 --profile "$@" >"$dir.log" 2>&1; then
        rate "$dir/history.csv" "$n"
    else echo FAIL; fi
}
printf '| network | ranks | default samples/s | reproducible samples/s | reproducible / default |\n'
printf '| --- | ---: | ---: | ---: | ---: |\n'
for c in "tutorial|bench/configs/tutorial_bench.json|$tut_data|$tut_n|4" "fmnist-mlp|$fm_cfg|$fm_data|$fm_n|3"; do
    IFS='|' read -r name cfg data n ep <<<"$c"
    for np in 1 2; do
        d="" r=""
        for ((k = 1; k <= reps; k++)); do
            dl=$logs/$name-$np-default-$k rl=$logs/$name-$np-repro-$k
            d+="$(one "$dl" "$cfg" "$data" "$n" "$np" "$ep") "
            r+="$(one "$rl" "$cfg" "$data" "$n" "$np" "$ep" --reproducible) "
        done
        dm=$(tr ' ' '\n' <<<"$d" | grep -v '^$' | median) rm_=$(tr ' ' '\n' <<<"$r" | grep -v '^$' | median)
        ratio=$(awk -v a="$dm" -v b="$rm_" 'BEGIN{printf (a>0? "%.2f" : "nan"), b/a}')
        printf '| %s | %d | %s | %s | %s |\n' "$name" "$np" "$dm" "$rm_" "$ratio"
        echo "# $name ${np}r default:      $(grep '^profile' "$dl.log" | tail -1 || true)" >&2
        echo "# $name ${np}r reproducible: $(grep '^profile' "$rl.log" | tail -1 || true)" >&2
    done
done
echo "# $(date -u +%F) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)" >&2
