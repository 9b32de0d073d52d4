#!/usr/bin/env bash
# Runs every case of tests/bad_inputs/cases.txt against a dptrain binary at 3 ranks and checks, per
# case: the documented exit code; every expected substring in stderr (the file and the field);
# the message is ONE line "dptrain: <category>: ..." printed once; the job ended within 10 s and no
# dptrain process is left; no core dump, no signal death, no sanitizer report.
#   tests/bad_inputs/run.sh PATH/TO/dptrain [REGEX]     (REGEX filters case ids)
# Prints "ok - ..." / "NOT OK - ..." lines and "N passed, M failed, K skipped"; exit 1 on a failure.
# Bad files are made at test time (fixtures.sh); mounts (read-only and full tmpfs) need root.
# Environment: DPT_BAD_INPUTS_LIMIT (seconds per case, default 10), DPT_BAD_INPUTS_JOBS (cases at
# a time, default 4: they mostly wait on mpirun), DPT_MKH5 (a prebuilt mkh5).
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 PATH/TO/dptrain [REGEX]" >&2; exit 2; }
REAL=$(readlink -f "$1")
FILTER=${2:-}
[ -x "$REAL" ] || { echo "$0: $1: not an executable" >&2; exit 2; }
LIMIT=${DPT_BAD_INPUTS_LIMIT:-10}

W=$(mktemp -d "${TMPDIR:-/tmp}/dpt-bad-XXXXXX")
CF=$HERE/configs
# A private path for the binary: `pgrep -f $DPT` then finds this run's processes and no other's.
mkdir -p "$W/bin"
ln -s "$REAL" "$W/bin/dptrain"
DPT=$W/bin/dptrain
MPI="mpirun -np 3 --oversubscribe"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_pml=${OMPI_MCA_pml:-ob1} OPENBLAS_NUM_THREADS=1
# an ASan build: Open MPI's allocations at MPI_Init are not ours to report
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
export DPT MPI CF W SRC

source "$HERE/fixtures.sh"
cleanup() {
    unmount_fixtures
    local left
    left=$(pgrep -f -- "$W/" || true)
    [ -n "$left" ] && kill -9 $left 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

t_start=$(date +%s.%N)
make_fixtures
echo "# fixtures ready in $(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s (mkh5: $HAVE_MKH5, mounts: $HAVE_MOUNT)"

category() {
    case $1 in
    1) echo "internal error" ;; 2) echo "usage error" ;; 3) echo "config error" ;;
    4) echo "data error" ;; 5) echo "checkpoint error" ;; 6) echo "numeric error" ;;
    7) echo "I/O error" ;; 8) echo "out of memory" ;; 9) echo "run directory busy" ;;
    75) echo "preempted (resumable)" ;;
    *) echo "?" ;;
    esac
}

# Each case runs in the background (JOBS at a time) and writes its verdict to $dir/result: a
# first line ok / fail / skip, then what to print.
JOBS=${DPT_BAD_INPUTS_JOBS:-4}
ok() { { echo ok; echo "ok - $1"; } >"$RESULT"; }
not_ok() { { echo fail; echo "NOT OK - $1"; [ $# -gt 1 ] && printf '    %s\n' "${@:2}"; } >"$RESULT"; }
skip() { { echo skip; echo "ok - $1 # SKIP $2"; } >"$RESULT"; }

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; s=${s%"${s##*[![:space:]]}"}; printf '%s' "$s"; }

run_case() {
    local id=$1 code=$2 needles=$3 needs=$4 cmd=$5
    local dir=$W/case/$id
    RESULT=$dir/result
    # a private path for the binary: pgrep -f "$DPT" sees this case's processes only
    mkdir -p "$dir/bin"
    ln -s "$REAL" "$dir/bin/dptrain"
    DPT=$dir/bin/dptrain
    export DPT
    local need
    for need in ${needs//,/ }; do
        case $need in
        -) ;;
        mkh5) [ "$HAVE_MKH5" = 1 ] || { skip "$id" "mkh5 not built"; return; } ;;
        mount) [ "$HAVE_MOUNT" = 1 ] || { skip "$id" "cannot mount tmpfs (needs root)"; return; } ;;
        *) not_ok "$id" "unknown need '$need'"; return ;;
        esac
    done
    local t0 t1 rc secs
    t0=$(date +%s.%N)
    (cd "$dir" && ulimit -c unlimited 2>/dev/null
     exec timeout -k 2 "$LIMIT" bash -c "$cmd") >"$dir/out" 2>"$dir/err" </dev/null
    rc=$?
    t1=$(date +%s.%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
    # leftovers: any process still running this run's binary
    local left
    left=$(pgrep -f -- "$DPT" || true)
    if [ -n "$left" ]; then
        sleep 1
        left=$(pgrep -f -- "$DPT" || true)
        [ -n "$left" ] && kill -9 $left 2>/dev/null
    fi
    local errs=() n first=""
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then errs+=("did not end within ${LIMIT}s (rc $rc)"); fi
    [ "$rc" -ne "$code" ] && errs+=("exit $rc, expected $code")
    [ -n "$left" ] && errs+=("dptrain processes left after the job: $left")
    # every expected substring, after expanding $W, $CF and $SRC (nothing else is expanded)
    local raw
    local -a parts=()
    while [ -n "$needles" ]; do
        if [[ $needles == *" && "* ]]; then raw=${needles%% && *}; needles=${needles#* && }; else
            raw=$needles; needles=""; fi
        raw=${raw//'$CF'/$CF}; raw=${raw//'$SRC'/$SRC}; raw=${raw//'$W'/$W}
        parts+=("$raw")
    done
    for n in "${parts[@]}"; do
        grep -qF -- "$n" "$dir/err" || errs+=("stderr lacks: $n")
    done
    if [ ${#parts[@]} -gt 0 ]; then
        first=${parts[0]}
        local cnt want
        cnt=$(grep -cF -- "$first" "$dir/err")
        [ "$cnt" -gt 1 ] && errs+=("the message is printed $cnt times (once expected)")
        want="dptrain: $(category "$code"): "
        if [ "$cnt" -ge 1 ] && ! grep -F -- "$first" "$dir/err" | grep -qE -- "^(\[rank [0-9]+/[0-9]+\] )?$want"; then
            errs+=("the message line does not start with \"$want\"")
        fi
    fi
    if compgen -G "$dir/core*" >/dev/null; then errs+=("core dump: $(ls "$dir"/core* | head -1)"); fi
    if grep -qE 'core dumped|exited on signal|Segmentation fault|Bus error|Floating point exception' "$dir/out" "$dir/err"; then
        errs+=("a process died by a signal: $(grep -hE 'core dumped|exited on signal|Segmentation|Bus error|Floating' "$dir/out" "$dir/err" | head -1)")
    fi
    if grep -qE 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$dir/out" "$dir/err"; then
        errs+=("sanitizer report: $(grep -hE 'Sanitizer|runtime error:' "$dir/out" "$dir/err" | head -1)")
    fi
    if [ ${#errs[@]} -eq 0 ]; then
        ok "$id (exit $rc in ${secs}s)"
    else
        local msg
        msg=$(grep -E '^(\[rank [0-9]+/[0-9]+\] )?dptrain: ' "$dir/err" | head -2)
        not_ok "$id (${secs}s)" "${errs[@]}" "stderr: ${msg:-$(head -c 300 "$dir/err")}"
    fi
}

ids=()
while IFS= read -r line || [ -n "$line" ]; do
    case $line in '#'* | '') continue ;; esac
    IFS='|' read -r id code needles needs cmd <<<"$line"
    id=$(trim "$id"); code=$(trim "$code"); needles=$(trim "$needles"); needs=$(trim "$needs")
    cmd=$(trim "$cmd")
    [ -n "$FILTER" ] && ! [[ $id =~ $FILTER ]] && continue
    ids+=("$id")
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
    run_case "$id" "$code" "$needles" "${needs:--}" "$cmd" &
done <"$HERE/cases.txt"
wait

passed=0 failed=0 skipped=0
failures=()
for id in "${ids[@]}"; do
    r=$W/case/$id/result
    if [ ! -f "$r" ]; then echo "NOT OK - $id: no verdict (runner bug)"; failed=$((failed + 1)); continue; fi
    tail -n +2 "$r"
    case $(head -1 "$r") in
    ok) passed=$((passed + 1)) ;; skip) skipped=$((skipped + 1)) ;;
    *) failed=$((failed + 1)); failures+=("$id") ;;
    esac
done
secs=$(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}')
echo "# ${#ids[@]} cases in ${secs}s, $JOBS at a time"
[ ${#failures[@]} -gt 0 ] && echo "# failed: ${failures[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
