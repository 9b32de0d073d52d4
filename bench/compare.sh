#!/usr/bin/env bash
# Two dptrain binaries side by side in ONE run (a "no regression" check of a change):
#   bench/compare.sh OLD_DPTRAIN NEW_DPTRAIN [--reps N]
# For {tutorial, fmnist-mlp} x {1, 2 ranks}, alternating OLD / NEW runs (N each, default 3) of the
# same config and data as bench/run.sh, the median samples/s of each and NEW / OLD. Build both
# with the same flags (e.g. a worktree of the old commit configured like the new build).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
old=${1:?usage: bench/compare.sh OLD NEW [--reps N]} new=${2:?usage: bench/compare.sh OLD NEW [--reps N]}
shift 2
reps=3
[ "${1:-}" = --reps ] && reps=$2
logs=${TMPDIR:-/tmp}/dpt-compare-$$
mkdir -p "$logs" datasets
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
tut_data=datasets/bench-tutorial.h5 tut_n=100000
[ -f "$tut_data" ] || "$new" data synth --samples $tut_n --features 20 --seed 1 --out "$tut_data" >/dev/null
fm_cfg=bench/configs/fmnist_mlp.json fm_data=datasets/fashion-mnist.h5 fm_n=60000
if [ ! -f "$fm_data" ]; then
    fm_cfg=bench/configs/fmnist_mlp_flat.json fm_data=datasets/bench-fmnist-synth.h5
    [ -f "$fm_data" ] || "$new" data synth --samples $fm_n --features 784 --seed 1 --out "$fm_data" >/dev/null
fi
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "nan"; exit} if (NR%2) printf "%.1f\n", v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2]+v[NR/2+1])/2}'; }
rate() { awk -F, -v n="$2" 'NR==1 {for (i=1;i<=NF;i++) if ($i=="seconds") c=i; next}
                            NR>2 && c && $c>0 {printf "%.1f\n", n/$c}' "$1" | median; }
one() { # DIR BINARY CONFIG DATA N RANKS EPOCHS
    rm -rf "$1"
    if timeout -k 10 600 mpirun -np "$6" --bind-to core "$2" fit "$3" --data "$4" --epochs "$7" \
        --run-dir "$1" --verbose 0 >"$1.log" 2>&1; then rate "$1/history.csv" "$5"; else echo FAIL; fi
}
printf '| network | ranks | old samples/s | new samples/s | new / old |\n| --- | ---: | ---: | ---: | ---: |\n'
for c in "tutorial|bench/configs/tutorial_bench.json|$tut_data|$tut_n|4" "fmnist-mlp|$fm_cfg|$fm_data|$fm_n|3"; do
    IFS='|' read -r name cfg data n ep <<<"$c"
    for np in 1 2; do
        o="" w=""
        for ((k = 1; k <= reps; k++)); do
            o+="$(one "$logs/$name-$np-old-$k" "$old" "$cfg" "$data" "$n" "$np" "$ep") "
            w+="$(one "$logs/$name-$np-new-$k" "$new" "$cfg" "$data" "$n" "$np" "$ep") "
        done
        om=$(tr ' ' '\n' <<<"$o" | grep -v '^$' | median) wm=$(tr ' ' '\n' <<<"$w" | grep -v '^$' | median)
        printf '| %s | %d | %s | %s | %s |\n' "$name" "$np" "$om" "$wm" \
            "$(awk -v a="$om" -v b="$wm" 'BEGIN{printf (a>0? "%.2f" : "nan"), b/a}')"
    done
done
echo "# $(date -u +%F\ %H:%M) UTC, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg); logs $logs" >&2
