#!/usr/bin/env bash
# launch/mpirun.sh - start dptrain under Open MPI's mpirun on one machine or on the hosts of a
# hostfile, with one placement rule: P ranks per node, T OpenBLAS threads per rank, each rank bound
# to its T cores.
#
#   launch/mpirun.sh [-n NP] [--hostfile FILE] [--ppn P] [--threads T] [--bind core|socket|none]
#                    [--mca KEY VALUE]... [--dry-run] -- DPTRAIN-ARGS...
#
#   launch/mpirun.sh --hostfile hosts --ppn 16 --threads 2 -- fit examples/fmnist_mlp.json --run-dir runs/a
#
# It prints the mpirun command it runs (on stderr; with --dry-run on stdout, and runs nothing).
# What it adds to mpirun:
#   - placement: --map-by ppr:P:node:PE=T with --ppn, else --map-by slot:PE=T; --bind-to core
#     (a PE=T mapping binds each rank to its T cores), socket or none;
#   - environment for remote ranks (a plain ssh start passes nothing else): OPENBLAS_NUM_THREADS=T,
#     and PATH, LD_LIBRARY_PATH, OPENBLAS_CORETYPE, HDF5_USE_FILE_LOCKING, DPT_* when they are set.
#     OMPI_MCA_* variables need nothing: mpirun passes them on itself;
#   - --allow-run-as-root only when run as root; --oversubscribe (and no binding) only on a single
#     host with more ranks x threads than cores.
# The dptrain binary: $DPTRAIN if set, else build/dptrain next to this script, else dptrain on PATH.
# On a cluster that path must exist on every node (a shared file system).
# SIGTERM / SIGINT / SIGUSR1 to this script or to mpirun: the ranks checkpoint and it exits 75
# (resumable), whichever of the two got the signal (see run_forwarding below).
# Left to others: choosing the MPI transport (Open MPI picks UCX / InfiniBand itself; set
# OMPI_MCA_pml=ob1 only on machines without a fast network), and resuming (see launch/slurm.sbatch).
set -euo pipefail

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
die() {
    echo "mpirun.sh: $*" >&2
    exit 2
}

np='' hostfile='' ppn='' threads=1 bind=core dry=0
mca=()
while [ $# -gt 0 ]; do
    case "$1" in
        -n | -np | --np) [ $# -ge 2 ] || die "$1 needs a value"; np=$2; shift 2 ;;
        --hostfile | --machinefile) [ $# -ge 2 ] || die "$1 needs a value"; hostfile=$2; shift 2 ;;
        --ppn) [ $# -ge 2 ] || die "$1 needs a value"; ppn=$2; shift 2 ;;
        --threads) [ $# -ge 2 ] || die "$1 needs a value"; threads=$2; shift 2 ;;
        --bind) [ $# -ge 2 ] || die "$1 needs a value"; bind=$2; shift 2 ;;
        --mca) [ $# -ge 3 ] || die "--mca needs KEY VALUE"; mca+=(--mca "$2" "$3"); shift 3 ;;
        --dry-run) dry=1; shift ;;
        -h | --help) usage ;;
        --) shift; break ;;
        *) die "unknown option '$1' (options for dptrain go after --)" ;;
    esac
done
[ $# -gt 0 ] || die "nothing to run: give dptrain's arguments after --, e.g. -- fit CONFIG"
for v in np ppn threads; do
    val=${!v}
    [ -z "$val" ] || [[ "$val" =~ ^[1-9][0-9]*$ ]] || die "--$v must be a positive integer, got '$val'"
done
case "$bind" in core | socket | none) ;; *) die "--bind must be core, socket or none, got '$bind'" ;; esac
if [ -n "$hostfile" ]; then [ -r "$hostfile" ] || die "cannot read hostfile '$hostfile'"; fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -n "${DPTRAIN:-}" ]; then
    exe=$DPTRAIN
elif [ -x "$here/../build/dptrain" ]; then
    exe=$(cd "$here/../build" && pwd)/dptrain
elif command -v dptrain >/dev/null 2>&1; then
    exe=$(command -v dptrain)
else
    die "no dptrain binary: build it (cmake -S . -B build && cmake --build build), put it on PATH, or set DPTRAIN"
fi
MPIRUN=${MPIRUN:-mpirun}

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

# Physical cores this process may use: unique (socket, core) pairs among the CPUs in our affinity
# mask. Open MPI counts cores, not hardware threads, as slots.
local_cores() {
    local n=''
    if command -v lscpu >/dev/null 2>&1 && command -v taskset >/dev/null 2>&1; then
        local allowed
        allowed=$(taskset -cp $$ 2>/dev/null | sed 's/.*: //')
        n=$(lscpu -p=CPU,CORE,SOCKET 2>/dev/null | awk -F, -v list="$allowed" '
            BEGIN { k = split(list, r, ","); for (i = 1; i <= k; i++) { if (split(r[i], ab, "-") == 1) ab[2] = ab[1]; lo[i] = ab[1]; hi[i] = ab[2] } }
            /^#/ { next }
            { for (i = 1; i <= k; i++) if ($1 >= lo[i] && $1 <= hi[i]) { seen[$3 "," $2] = 1; break } }
            END { c = 0; for (s in seen) c++; print c }')
    fi
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || n=$(nproc)
    echo "$n"
}

# The hosts of the hostfile (first word of each line, comments and blanks skipped).
hosts=()
if [ -n "$hostfile" ]; then
    while read -r h _; do
        case "$h" in '' | '#'*) continue ;; esac
        hosts+=("$h")
    done <"$hostfile"
    [ ${#hosts[@]} -gt 0 ] || die "hostfile '$hostfile' lists no hosts"
fi
single_host=1
for h in "${hosts[@]}"; do
    case "$h" in
        localhost | 127.0.0.1 | "$(hostname)" | "$(hostname -s)") ;;
        *) single_host=0 ;;
    esac
done
nodes=${#hosts[@]}
[ "$nodes" -gt 0 ] || nodes=1

cores=$(local_cores)
if [ -z "$np" ]; then
    if [ -n "$ppn" ]; then
        np=$((nodes * ppn))
    elif [ -z "$hostfile" ]; then
        np=$((cores / threads))
        [ "$np" -ge 1 ] || np=1
    fi # hostfile without --ppn or -n: mpirun fills the hostfile's slots
fi

cmd=("$MPIRUN")
[ -n "$np" ] && cmd+=(-np "$np")
[ -n "$hostfile" ] && cmd+=(--hostfile "$hostfile")
[ "$(id -u)" -eq 0 ] && cmd+=(--allow-run-as-root)

oversub=0
if [ "$single_host" -eq 1 ]; then
    per_host=${ppn:-${np:-$cores}}
    [ $((per_host * threads)) -gt "$cores" ] && oversub=1
fi
if [ "$oversub" -eq 1 ]; then
    # More ranks x threads than cores on this one machine: binding would stack ranks on the same
    # cores (and Open MPI refuses PE=T there), so let the kernel schedule them.
    echo "mpirun.sh: note: $per_host ranks x $threads threads > $cores cores here: oversubscribing, no binding" >&2
    cmd+=(--oversubscribe --bind-to none)
    [ -n "$ppn" ] && cmd+=(--map-by "ppr:$ppn:node")
else
    if [ -n "$ppn" ]; then map="ppr:$ppn:node"; else map=slot; fi
    if [ "$bind" = none ]; then
        cmd+=(--map-by "$map" --bind-to none)
    elif [ "$threads" -gt 1 ] && [ "$bind" = core ]; then
        cmd+=(--map-by "$map:PE=$threads" --bind-to core)
    else
        cmd+=(--map-by "$map" --bind-to "$bind")
    fi
fi
cmd+=("${mca[@]}")

# Environment for the ranks on other hosts.
export OPENBLAS_NUM_THREADS=$threads
export DPT_LAUNCH_ID=${DPT_LAUNCH_ID:-$(hostname)-$$-$(date +%s%N)} # names this launch (see below)
cmd+=(-x OPENBLAS_NUM_THREADS)
for v in PATH LD_LIBRARY_PATH OPENBLAS_CORETYPE HDF5_USE_FILE_LOCKING $(compgen -e | grep '^DPT_' || true); do
    [ -n "${!v+x}" ] && cmd+=(-x "$v")
done
cmd+=("$exe" "$@")

line="+ OPENBLAS_NUM_THREADS=$threads$(printf ' %q' "${cmd[@]}")"
if [ "$dry" -eq 1 ]; then
    echo "$line"
    exit 0
fi
echo "$line" >&2
run_dir=''
prev=''
for a in "$@"; do
    [ "$prev" = --run-dir ] && run_dir=$a
    prev=$a
done
set +e
run_forwarding "$run_dir" "${cmd[@]}"
exit $?
