#!/usr/bin/env bash
# Streaming end to end: a shard above --memory-limit is streamed; every rank's steps are balanced
# (local order); a preempted streamed run resumes mid-epoch to the same weights as an
# uninterrupted streamed run; the local order in memory trains too.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$SRC/tests/slurm/weights.sh"
cd "$SRC"
data="$WORK/d.h5"
"$DPTRAIN" data synth --samples 12000 --features 20 --seed 4 --out "$data" >/dev/null
fit() { $MPIRUN -np 2 "$DPTRAIN" fit examples/tutorial.json --data "$data" --epochs 30 \
            --memory-limit 64K "$@"; }

fit --run-dir "$WORK/ref" >"$WORK/ref.out" 2>&1; rc=$?
[ "$rc" -eq 0 ] && grep -q '^reading: streamed' "$WORK/ref.out" &&
    [ "$(grep -c '^Epoch ' "$WORK/ref.out")" -eq 30 ] && ok "streamed fit on 2 ranks" ||
    not_ok "streamed fit" "exit $rc" "$(tail -3 "$WORK/ref.out")"

fit --run-dir "$WORK/p" --verbose 0 >"$WORK/p.out" 2>&1 &
mp=$!
for _ in $(seq 600); do
    [ -f "$WORK/p/history.csv" ] && [ "$(wc -l <"$WORK/p/history.csv")" -ge 2 ] && break; sleep 0.05
done
sleep 0.0$((RANDOM % 9))
kill -USR1 "$(pgrep -f -- "^$DPTRAIN fit .*--run-dir $WORK/p" | head -1)"
wait $mp; rc=$?
fit --run-dir "$WORK/p" --resume >"$WORK/p2.out" 2>&1; rc2=$?
if [ "$rc" -eq 75 ] && [ "$rc2" -eq 0 ] && same_weights "$WORK/ref/final.h5" "$WORK/p/final.h5"; then
    ok "streamed run preempted ($(grep -o 'epoch [0-9]*, step [0-9]*' "$WORK/p.out" | head -1)) and resumed: same weights"
else
    not_ok "streamed preempt/resume" "exit $rc then $rc2" "$(tail -2 "$WORK/p.out")" "$(tail -2 "$WORK/p2.out")" "$WEIGHTS_DIFF"
fi

$MPIRUN -np 3 "$DPTRAIN" fit examples/tutorial.json --data "$data" --epochs 2 --order local \
    >"$WORK/l.out" 2>&1 && grep -q 'local (balanced) order' "$WORK/l.out" &&
    ok "local order in memory on 3 ranks" || not_ok "local order" "$(tail -3 "$WORK/l.out")"
expect_fail "bad --memory-limit" 2 '--memory-limit' 10 "$DPTRAIN" fit examples/tutorial.json --memory-limit 12Q
expect_fail "bad --order" 2 '--order' 10 "$DPTRAIN" fit examples/tutorial.json --order random
finish
