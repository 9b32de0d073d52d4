#!/usr/bin/env bash
# Faults during training, end to end at 3 ranks under mpirun:
#  - a row of huge features (3e38) makes the loss overflow: exit 6 naming the epoch and step, the
#    checkpoint of the step before is kept, readable, and a resume from it stops at the same step;
#  - --skip-nonfinite skips that batch with a warning and finishes (exit 0);
#  - kill -9 of one rank: the job ends promptly (the seconds are printed; limit 10) and --resume
#    finishes the run;
#  - one rank stopped with SIGSTOP and --watchdog 5: the job ends within ~10 s with the watchdog's
#    message and a non-zero exit. (Without --watchdog it hangs: docs/RELIABILITY.md.)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1

# a private path for the binary, so that pgrep finds this test's ranks and no one else's
mkdir -p "$WORK/bin"
ln -s "$(readlink -f "$DPTRAIN")" "$WORK/bin/dptrain"
DPT=$WORK/bin/dptrain
MPI="$MPIRUN -np 3 --oversubscribe"
ranks() { pgrep -f -- "^$DPT fit" | sort -n; }
stopped=""
cleanup() {
    local p
    for p in $stopped; do kill -CONT "$p" 2>/dev/null; done
    p=$(ranks)
    [ -n "$p" ] && kill -9 $p 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
secs_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}'; }

cfg=tests/bad_inputs/configs/good.json # 20 -> Dense 8 -> Dropout -> Dense 1, batch 16, val 0.2

# --- data: 600 rows of 20 features in [0, 1), row 250 all 3e38 (finite, but Dense overflows) --
awk 'BEGIN { srand(7); h = "f0"; for (j = 1; j < 20; j++) h = h ",f" j; print h ",label"
             for (i = 0; i < 600; i++) { s = ""
                 for (j = 0; j < 20; j++) s = s (j ? "," : "") (i == 250 ? "3e38" : sprintf("%.4f", rand()))
                 print s "," (i % 2) } }' >"$WORK/onebad.csv"
run_cmd "$WORK/csv" 30 "$DPT" data csv "$WORK/onebad.csv" --label label --out "$WORK/onebad.h5"
[ "$RC" -eq 0 ] || { not_ok "writing the dataset" "$(cat "$WORK/csv.err")"; finish; exit; }

# --- a non-finite loss stops the job: exit 6, epoch and step named, the last good checkpoint kept
run_cmd "$WORK/nan" 60 $MPI "$DPT" fit "$cfg" --data "$WORK/onebad.h5" --epochs 3 \
    --run-dir "$WORK/nan" --checkpoint-every 1 --verbose 0
msg=$(grep -E '^dptrain: numeric error: epoch [0-9]+, step [0-9]+: the (loss|gradient) is not finite' "$WORK/nan.err")
if [ "$RC" -eq 6 ] && [ -n "$msg" ] && [ "$(grep -c 'is not finite' "$WORK/nan.err")" -eq 1 ]; then
    ok "non-finite loss: exit 6, one line naming epoch and step (${SECS}s)"
else
    not_ok "non-finite loss" "exit $RC" "$(tail -3 "$WORK/nan.err")"
fi
# one rank (no scan before the update there: the optimizer's pass reports it): the same stop
run_cmd "$WORK/nan1" 60 "$DPT" fit "$cfg" --data "$WORK/onebad.h5" --epochs 3 --verbose 0
if [ "$RC" -eq 6 ] && grep -qF "$(sed -nE 's/.*(epoch [0-9]+, step [0-9]+: the (loss|gradient) is not finite).*/\1/p' <<<"$msg" | cut -d: -f1)" "$WORK/nan1.err"; then
    ok "non-finite at 1 rank: exit 6 at the same epoch and step"
else
    not_ok "non-finite at 1 rank" "exit $RC" "$(tail -2 "$WORK/nan1.err")"
fi
# the step named, and the global step the checkpoint holds (one before, when it is in epoch 1)
epoch=$(sed -nE 's/.*epoch ([0-9]+), step ([0-9]+):.*/\1/p' <<<"$msg")
step=$(sed -nE 's/.*epoch ([0-9]+), step ([0-9]+):.*/\2/p' <<<"$msg")
kept=$(h5dump -a /dptrain/global_step "$WORK/nan/last.h5" 2>/dev/null | sed -nE 's/^ *\(0\): ([0-9]+).*/\1/p')
if [ -n "$kept" ] && { [ "$epoch" != 1 ] || [ "$kept" -eq $((step - 1)) ]; }; then
    ok "last.h5 kept and readable (global step $kept; the bad step was epoch $epoch, step $step)"
else
    not_ok "last good checkpoint" "last.h5 global_step '$kept', bad step: epoch $epoch step $step" \
        "$(ls "$WORK/nan" 2>&1)"
fi
# resuming from it verifies it (format, checksum, architecture) and meets the same bad batch
run_cmd "$WORK/nan2" 60 $MPI "$DPT" fit "$cfg" --data "$WORK/onebad.h5" --epochs 3 \
    --run-dir "$WORK/nan" --checkpoint-every 1 --resume --verbose 1
if [ "$RC" -eq 6 ] && grep -q '^resume: .*last.h5' "$WORK/nan2.out" &&
    grep -qF "epoch $epoch, step $step:" "$WORK/nan2.err"; then
    ok "resume from the kept checkpoint stops at the same epoch and step"
else
    not_ok "resume after the non-finite stop" "exit $RC" "$(grep -h 'resume\|dptrain' "$WORK/nan2.out" "$WORK/nan2.err" | head -3)"
fi

# --- --skip-nonfinite: the bad batch is skipped with a warning, training finishes ---------------
run_cmd "$WORK/skip" 60 $MPI "$DPT" fit "$cfg" --data "$WORK/onebad.h5" --epochs 3 \
    --run-dir "$WORK/skip" --skip-nonfinite
warns=$(grep -cE '^dptrain: warning: epoch [0-9]+, step [0-9]+: the (loss|gradient) is not finite; batch skipped' "$WORK/skip.err")
lines=$(grep -cE '^Epoch [0-9]/3 .* - loss: [0-9.]+ ' "$WORK/skip.out")
if [ "$RC" -eq 0 ] && [ "$warns" -ge 1 ] && [ "$lines" -eq 3 ] && [ -s "$WORK/skip/final.h5" ]; then
    ok "--skip-nonfinite: exit 0, $warns warning(s), 3 finite epoch losses, final.h5"
else
    not_ok "--skip-nonfinite" "exit $RC, $warns warnings, $lines finite epoch lines" "$(tail -3 "$WORK/skip.err")"
fi

# --- kill -9 of one rank: the job ends promptly; --resume finishes ------------------------------
"$DPT" data synth --samples 6000 --features 20 --seed 5 --out "$WORK/d.h5" >/dev/null
long() { $MPI "$DPT" fit examples/tutorial.json --data "$WORK/d.h5" --verbose 0 --run-dir "$@"; }
# wait until DIR/history.csv has >= N rows, at most 60 s
wait_rows() {
    for _ in $(seq 600); do
        [ -f "$1/history.csv" ] && [ $(($(wc -l <"$1/history.csv") - 1)) -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
long "$WORK/k" --epochs 12 >"$WORK/k.out" 2>&1 &
mp=$!
wait_rows "$WORK/k" 2
victim=$(ranks | shuf -n 1)
kill -9 "$victim"
t0=$(date +%s.%N)
for _ in $(seq 150); do kill -0 $mp 2>/dev/null || break; sleep 0.1; done
gone=$(secs_since "$t0")
kill -0 $mp 2>/dev/null && kill -9 $mp
wait $mp; rc=$?
left=$(ranks)
echo "# kill -9 of one rank (pid $victim): the job ended in ${gone}s (exit $rc)"
if [ "$rc" -ne 0 ] && [ -z "$left" ] && awk -v s="$gone" 'BEGIN{exit !(s < 10)}'; then
    ok "kill -9 of one rank ends every rank in ${gone}s (exit $rc)"
else
    not_ok "kill -9 of one rank" "ended after ${gone}s, exit $rc, left: '$left'"
fi
done_rows=$(($(wc -l <"$WORK/k/history.csv") - 1))
run_cmd "$WORK/k2" 120 $MPI "$DPT" fit examples/tutorial.json --data "$WORK/d.h5" --verbose 1 \
    --run-dir "$WORK/k" --epochs 12 --resume
if [ "$RC" -eq 0 ] && grep -q '^resume: .*last.h5' "$WORK/k2.out" &&
    [ "$(($(wc -l <"$WORK/k/history.csv") - 1))" -eq 12 ] && [ -s "$WORK/k/final.h5" ]; then
    ok "--resume after kill -9 finishes the run (killed after $done_rows epochs)"
else
    not_ok "--resume after kill -9" "exit $RC" "$(tail -3 "$WORK/k2.out" "$WORK/k2.err")"
fi

# --- SIGSTOP of one rank with --watchdog 5: the job ends with the watchdog's message -------------
long "$WORK/s" --epochs 200 --watchdog 5 >"$WORK/s.out" 2>"$WORK/s.err" &
mp=$!
wait_rows "$WORK/s" 1
victim=$(ranks | shuf -n 1)
kill -STOP "$victim"
stopped=$victim
t0=$(date +%s.%N)
for _ in $(seq 200); do kill -0 $mp 2>/dev/null || break; sleep 0.1; done
gone=$(secs_since "$t0")
kill -0 $mp 2>/dev/null && { kill -CONT "$victim"; kill -9 $(ranks) $mp 2>/dev/null; }
wait $mp; rc=$?
for _ in $(seq 20); do [ -z "$(ranks)" ] && break; sleep 0.1; done
left=$(ranks)
echo "# SIGSTOP of one rank (pid $victim) with --watchdog 5: the job ended in ${gone}s (exit $rc)"
if [ "$rc" -ne 0 ] && [ -z "$left" ] && awk -v s="$gone" 'BEGIN{exit !(s < 12)}' &&
    grep -qE '^\[rank [0-9]+/3\] dptrain: internal error: watchdog: no progress for [0-9]+ s after global step [0-9]+' "$WORK/s.err"; then
    ok "SIGSTOP of one rank + --watchdog 5: the job ends in ${gone}s with the watchdog's message (exit $rc)"
else
    not_ok "SIGSTOP + --watchdog 5" "ended after ${gone}s, exit $rc, left: '$left'" "$(grep dptrain "$WORK/s.err" | head -2)"
fi
stopped=""

finish
