# Helpers for the CLI tests (sourced). Each test script gets the dptrain binary as $1.
# check NAME CONDITION... : records a pass or a failure; finish: prints "N passed, M failed" and
# exits non-zero on any failure.
set -u
DPTRAIN=${1:?usage: $0 PATH/TO/dptrain}
SRC=${DPT_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dpt-cli-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
MPIRUN=${MPIRUN:-mpirun}
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "NOT OK - $1"; [ $# -gt 1 ] && printf '    %s\n' "${@:2}"; }

# run_cmd OUT_PREFIX TIMEOUT CMD...: runs CMD with a timeout, stdout/stderr to files, sets RC and SECS.
run_cmd() {
    local pre=$1 lim=$2; shift 2
    local t0 t1
    t0=$(date +%s.%N)
    timeout -k 2 "$lim" "$@" >"$pre.out" 2>"$pre.err"
    RC=$?
    t1=$(date +%s.%N)
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
}

# expect_fail NAME CODE NEEDLE LIMIT CMD...: CMD must exit with CODE within LIMIT seconds and
# print NEEDLE (fixed string) on stderr; no core dump, no sanitizer report.
expect_fail() {
    local name=$1 code=$2 needle=$3 lim=$4; shift 4
    run_cmd "$WORK/last" "$((lim + 5))" "$@"
    if [ "$RC" -ne "$code" ]; then
        not_ok "$name" "exit $RC, expected $code" "$(head -c 600 "$WORK/last.err")"
    elif ! grep -qF -- "$needle" "$WORK/last.err"; then
        not_ok "$name" "stderr lacks: $needle" "$(head -c 600 "$WORK/last.err")"
    elif awk -v s="$SECS" -v l="$lim" 'BEGIN{exit !(s > l)}'; then
        not_ok "$name" "took ${SECS}s, limit ${lim}s"
    elif grep -qE 'AddressSanitizer|runtime error:|core dumped' "$WORK/last.err"; then
        not_ok "$name" "sanitizer report or core dump"
    else
        ok "$name (exit $RC in ${SECS}s)"
    fi
}

finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
