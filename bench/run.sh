#!/usr/bin/env bash
# dptrain against PyTorch, side by side in ONE run, as ratios (issue 9).
#
#   bench/run.sh [--record] [--reps N] [--quick] [--build-dir DIR]
#
# For each of {tutorial, fmnist-mlp} × {1r×1t, 2r×1t, 2r×1t with --order local}, alternating
# dptrain / PyTorch runs (N each, default 3), it prints one table: the median samples/s of each, the
# ratio, and the achieved GFLOP/s (6 × kernel weights × samples/s) as a fraction of the cblas_sgemm
# peak measured in this same run (1 thread; × ranks for 2 ranks, one core each).
#   dptrain: OPENBLAS_NUM_THREADS=1, mpirun -np N --bind-to core; samples/s = training samples / the
#            median epoch time of history.csv over the epochs after the first.
#   PyTorch: bench/peers/torch_mlp.py (Debian python3-torch, 1 thread per process, DDP gloo for 2 ranks),
#            a 50-step warm-up, then one timed epoch.
# Data: tutorial = 100,000 synthetic samples × 20 features (`dptrain data synth`), both sides read the
# same file; fmnist-mlp = datasets/fashion-mnist.h5 (converted from Debian's dataset-fashion-mnist when
# present), else synthetic 60,000 × 784.
# --record appends the table, the date, the CPU model and core count to bench/RESULTS.md.
# --quick: 1 rep, fewer epochs (a smoke test, not a measurement).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

record=0 reps=3 quick=0 build=${BUILD_DIR:-build-bench}
while (($#)); do
    case $1 in
        --record) record=1 ;;
        --reps) reps=$2; shift ;;
        --quick) quick=1; reps=1 ;;
        --build-dir) build=$2; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

py=/usr/bin/python3
dpt=$build/dptrain
logs=$build/bench-logs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$logs" datasets

# ---- build -----------------------------------------------------------------------------------------
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >"$logs/cmake.log" 2>&1
fi
cmake --build "$build" -j"$(nproc)" --target dptrain >>"$logs/cmake.log" 2>&1 ||
    { echo "run.sh: building dptrain failed (see $logs/cmake.log)" >&2; tail -5 "$logs/cmake.log" >&2; }
cc -O2 -o "$build/sgemm_peak" bench/sgemm_peak.c -lopenblas

# ---- environment -----------------------------------------------------------------------------------
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}
have_torch=1
"$py" -c 'import torch' 2>/dev/null || { have_torch=0; echo "run.sh: no PyTorch for $py (apt-get install -y python3-torch python3-h5py)" >&2; }

# ---- data ------------------------------------------------------------------------------------------
tut_data=datasets/bench-tutorial.h5 tut_n=100000
if [ -x "$dpt" ] && [ ! -f "$tut_data" ]; then
    "$dpt" data synth --samples $tut_n --features 20 --seed 1 --out "$tut_data" >"$logs/synth.log" 2>&1
fi
fm_cfg=bench/configs/fmnist_mlp.json fm_data=datasets/fashion-mnist.h5 fm_n=60000
if [ -x "$dpt" ] && [ ! -f "$fm_data" ] && [ -d /usr/share/datasets/fashion-mnist ]; then
    "$dpt" data fashion-mnist --out "$fm_data" >"$logs/fmnist.log" 2>&1 || rm -f "$fm_data"
fi
if [ ! -f "$fm_data" ]; then
    fm_cfg=bench/configs/fmnist_mlp_flat.json fm_data=datasets/bench-fmnist-synth.h5
    [ -x "$dpt" ] && [ ! -f "$fm_data" ] &&
        "$dpt" data synth --samples $fm_n --features 784 --seed 1 --out "$fm_data" >"$logs/synth-fm.log" 2>&1
fi

# ---- helpers ---------------------------------------------------------------------------------------
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "nan"; exit} if (NR%2) printf "%.1f\n", v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2]+v[NR/2+1])/2}'; }

# dptrain samples/s of one run: N / median(seconds of the epochs after the first) from history.csv
dpt_rate() { # CSV N
    awk -F, -v n="$2" 'NR==1 {for (i=1;i<=NF;i++) if ($i=="seconds") c=i; next}
                       NR>2 && c && $c>0 {printf "%.1f\n", n/$c}' "$1" | median
}

run_dpt() { # NAME CONFIG DATA N RANKS EPOCHS [ORDER] -> prints samples/s or FAIL
    local name=$1 cfg=$2 data=$3 n=$4 np=$5 ep=$6 order=${7:-global} dir
    dir=$logs/$name-dpt-$((++run_id))
    if timeout -k 10 "$run_timeout" mpirun -np "$np" --bind-to core "$dpt" fit "$cfg" --data "$data" --epochs "$ep" --run-dir "$dir" \
        --order "$order" --verbose 1 >"$dir.log" 2>&1 && [ -f "$dir/history.csv" ]; then
        dpt_rate "$dir/history.csv" "$n"
    else
        echo FAIL
    fi
}

run_torch() { # NAME NET DATA RANKS -> prints samples/s or FAIL
    local name=$1 net=$2 data=$3 np=$4 out
    out=$logs/$name-torch-$((++run_id)).log
    if ((have_torch)) && "$py" bench/peers/torch_mlp.py --net "$net" --ranks "$np" --data "$data" \
        --epochs 1 --warmup-steps 50 --timeout "$run_timeout" >"$out" 2>&1; then
        sed -n 's/.*samples_per_s=\([0-9.]*\).*/\1/p' "$out" | tail -1
    else
        echo FAIL
    fi
}

peak_of() { sed -n 's/.*gflops=\([0-9.]*\).*/\1/p'; }

# ---- measure ---------------------------------------------------------------------------------------
run_id=0 run_timeout=${RUN_TIMEOUT:-300}
load1=$(cut -d' ' -f1 /proc/loadavg)
sg1=$("$build/sgemm_peak" | tee "$logs/sgemm1.log")
echo "# $sg1" >&2

if ((quick)); then tut_ep=2 fm_ep=2; else tut_ep=4 fm_ep=3; fi
# name | torch net | config | data | N | ranks | epochs | kernel weights | dptrain order
# The 2-rank cases run twice: dptrain's default global order (N ranks compute what 1 rank would;
# per-rank counts vary binomially) and --order local (each rank shuffles its own shard, balanced
# steps, like the PyTorch peer, whose ranks each take an equal part of every global batch), each
# against its own PyTorch DDP runs.
cases=(
    "tutorial|tutorial|bench/configs/tutorial_bench.json|$tut_data|$tut_n|1|$tut_ep|5440|global"
    "tutorial|tutorial|bench/configs/tutorial_bench.json|$tut_data|$tut_n|2|$tut_ep|5440|global"
    "tutorial|tutorial|bench/configs/tutorial_bench.json|$tut_data|$tut_n|2|$tut_ep|5440|local"
    "fmnist-mlp|fmnist|$fm_cfg|$fm_data|$fm_n|1|$fm_ep|668672|global"
    "fmnist-mlp|fmnist|$fm_cfg|$fm_data|$fm_n|2|$fm_ep|668672|global"
    "fmnist-mlp|fmnist|$fm_cfg|$fm_data|$fm_n|2|$fm_ep|668672|local"
)
declare -A dres tres
for c in "${cases[@]}"; do
    IFS='|' read -r name net cfg data n np ep w order <<<"$c"
    key="$name|$np|$order"
    for ((r = 1; r <= reps; r++)); do
        d=$(run_dpt "$name-${np}r" "$cfg" "$data" "$n" "$np" "$ep" "$order")
        t=$(run_torch "$name-${np}r" "$net" "$data" "$np")
        dres[$key]+="$d "
        tres[$key]+="$t "
        echo "# $name ${np}r×1t $order order rep $r: dptrain $d  pytorch $t" >&2
    done
done

sg2=$("$build/sgemm_peak" | tee "$logs/sgemm2.log")
load2=$(cut -d' ' -f1 /proc/loadavg)
echo "# $sg2" >&2
p1=$(peak_of <<<"$sg1") p2=$(peak_of <<<"$sg2")
peak=$(awk -v a="$p1" -v b="$p2" 'BEGIN {print (a>b)?a:b}')
corename=$(sed -n 's/.*corename=\([^ ]*\).*/\1/p' <<<"$sg1")

# ---- table -----------------------------------------------------------------------------------------
med_of() { tr ' ' '\n' | { grep -E '^[0-9.]+$' || true; } | median; }
table=$(
    echo "| network | ranks × threads | dptrain samples/s | PyTorch samples/s | dptrain / PyTorch | dptrain GFLOP/s | % of sgemm peak | PyTorch % of peak |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for c in "${cases[@]}"; do
        IFS='|' read -r name net cfg data n np ep w order <<<"$c"
        key="$name|$np|$order"
        dm=$(med_of <<<"${dres[$key]}") tm=$(med_of <<<"${tres[$key]}")
        awk -v name="$name" -v np="$np" -v ord="$([ "$order" = local ] && echo ', --order local')" -v d="$dm" -v t="$tm" -v w="$w" -v pk="$peak" -v torchname="$([ "$np" -gt 1 ] && echo ' (DDP gloo)')" 'BEGIN {
            dg = (d == "nan") ? "—" : sprintf("%.1f", 6 * w * d / 1e9)
            dp = (d == "nan") ? "—" : sprintf("%.1f %%", 100 * 6 * w * d / 1e9 / (pk * np))
            tp = (t == "nan") ? "—" : sprintf("%.1f %%", 100 * 6 * w * t / 1e9 / (pk * np))
            ra = (d == "nan" || t == "nan") ? "—" : sprintf("%.2f×", d / t)
            printf "| %s | %d × 1%s | %s | %s%s | %s | %s | %s | %s |\n", name, np, ord,
                (d == "nan") ? "FAIL" : sprintf("%.0f", d), (t == "nan") ? "FAIL" : sprintf("%.0f", t), torchname, ra, dg, dp, tp
        }'
    done
)
raw=$(
    for c in "${cases[@]}"; do
        IFS='|' read -r name net cfg data n np ep w order <<<"$c"
        key="$name|$np|$order"
        echo "- $name ${np}r $order order: dptrain runs ${dres[$key]}; PyTorch runs ${tres[$key]}"
    done
)
model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
cores=$(getconf _NPROCESSORS_ONLN)
torchv=$( ((have_torch)) && "$py" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)
header="$(date -u '+%Y-%m-%d %H:%M UTC') · $model · $cores cores · sgemm 1-thread peak $peak GFLOP/s ($corename; 2048³ best of start/end) · PyTorch $torchv · $reps runs each, alternating · load average $load1 at start, $load2 at end · dptrain $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- src include 2>/dev/null || echo '+dirty')"
echo
echo "$header"
echo
echo "$table"
echo
echo "$raw"
echo "(logs: $logs)"

if ((record)); then
    {
        echo
        echo "### $header"
        echo
        echo "fmnist data: $fm_data; tutorial data: $tut_data ($tut_n samples); % of peak uses ranks × the 1-thread peak."
        echo
        echo "$table"
        echo
        echo "$raw"
    } >>bench/RESULTS.md
    echo "(appended to bench/RESULTS.md)"
fi
