#!/usr/bin/env bash
# Checkpoints that lose nothing, end to end under mpirun:
#  - kill -9 of one rank at a random step, then --resume: the final weights are bit-for-bit those of
#    an uninterrupted run (dropout on, same rank count);
#  - SIGUSR1 to ONE rank: all ranks stop at the same step, exit 75, and --resume finishes exactly;
#  - kills landing during checkpoint writes (a checkpoint every step) never leave a torn last.h5;
#  - resuming on another rank count works and says what changes.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC"
command -v h5diff >/dev/null || { echo "skipped: h5diff (hdf5-tools) not installed"; exit 77; }

data="$WORK/d.h5" big="$WORK/big.h5"
"$DPTRAIN" data synth --samples 6000 --features 20 --seed 5 --out "$data" >/dev/null
# the kill / signal runs must still be training when the signal lands (after 1-2 epochs plus up to
# a second): 200k samples make an epoch ~0.3 s even on a quiet machine (6000 took 10 ms)
"$DPTRAIN" data synth --samples 200000 --features 20 --seed 5 --out "$big" >/dev/null
fit() { $MPIRUN -np "$1" "$DPTRAIN" fit examples/tutorial.json --data "${DATA:-$data}" --epochs 8 --run-dir "${@:2}"; }

# the reference: uninterrupted
DATA=$big fit 2 "$WORK/ref" --verbose 0 >"$WORK/ref.out" 2>&1 || not_ok "reference run" "$(tail -3 "$WORK/ref.out")"

# the ranks only (their command line starts with the binary), never mpirun itself
rank_pids() { pgrep -f -- "^$DPTRAIN fit .*--run-dir $1" | sort -n; }

# wait until DIR/history.csv has at least $2 rows (epochs), at most 60 s
wait_rows() {
    for _ in $(seq 600); do
        [ -f "$1/history.csv" ] && [ $(($(wc -l <"$1/history.csv") - 1)) -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# --- kill -9 of one rank at a random step, then resume -----------------------------------------
DATA=$big fit 2 "$WORK/k" --checkpoint-every 7 --verbose 0 >"$WORK/k.out" 2>&1 &
mp=$!
wait_rows "$WORK/k" 1
sleep "0.$((RANDOM % 9 + 1))"
victim=$(rank_pids "$WORK/k" | shuf -n 1)
kill -9 "$victim" 2>/dev/null
t0=$(date +%s.%N)
wait $mp; rc=$?
gone=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
if [ "$rc" -ne 0 ] && [ -z "$(rank_pids "$WORK/k")" ]; then ok "kill -9 of one rank ends the job (exit $rc, ${gone}s)"; else
    not_ok "kill -9 of one rank" "exit $rc"; fi
done_rows=$(($(wc -l <"$WORK/k/history.csv") - 1))
DATA=$big fit 2 "$WORK/k" --resume >"$WORK/k2.out" 2>&1; rc=$?
if [ "$rc" -eq 0 ] && grep -q '^resume: .*last.h5' "$WORK/k2.out" && [ "$done_rows" -lt 8 ]; then
    ok "resumed after kill -9 (killed after $done_rows epochs)"; else
    not_ok "resume after kill -9" "exit $rc, rows before $done_rows" "$(tail -3 "$WORK/k2.out")"; fi
if h5diff "$WORK/ref/final.h5" "$WORK/k/final.h5" >"$WORK/diff.out" 2>&1; then
    ok "killed + resumed weights are bit-for-bit the uninterrupted run's"; else
    not_ok "weights differ after resume" "$(head -5 "$WORK/diff.out")"; fi
[ "$(($(wc -l <"$WORK/k/history.csv") - 1))" -eq 8 ] && ok "history.csv has 8 rows after resume" ||
    not_ok "history rows after resume: $(($(wc -l <"$WORK/k/history.csv") - 1))"

# --- SIGUSR1 to one rank only: exit 75, resumable -----------------------------------------------
DATA=$big fit 2 "$WORK/p" --verbose 0 >"$WORK/p.out" 2>&1 &
mp=$!
wait_rows "$WORK/p" 2
kill -USR1 "$(rank_pids "$WORK/p" | tail -1)"
wait $mp; rc=$?
if [ "$rc" -eq 75 ] && grep -q 'checkpoint written to' "$WORK/p.out"; then ok "SIGUSR1 to one rank: exit 75 after a checkpoint"; else
    not_ok "SIGUSR1 preemption" "exit $rc" "$(tail -3 "$WORK/p.out")"; fi
DATA=$big fit 2 "$WORK/p" --resume --verbose 0 >"$WORK/p2.out" 2>&1 && h5diff "$WORK/ref/final.h5" "$WORK/p/final.h5" >/dev/null &&
    ok "preempted + resumed weights equal the uninterrupted run's" ||
    not_ok "resume after SIGUSR1" "$(tail -3 "$WORK/p2.out")"

# --- kills during checkpoint writes never tear last.h5 --------------------------------------------
damaged() { grep 'warning' "$1" | grep -qv -e 'taking over the lock' -e 'is newer than'; }
torn=0 seen=''
for i in 1 2 3 4; do
    fit 2 "$WORK/t" --checkpoint-every 1 --resume --verbose 0 >"$WORK/t.out" 2>&1 &
    mp=$!
    wait_rows "$WORK/t" 1 || true
    sleep "0.$((RANDOM % 5))"
    kill -9 $(rank_pids "$WORK/t" | head -1) 2>/dev/null
    wait $mp
    # the next resume must find last.h5 valid: no "warning" about a damaged checkpoint (taking
    # over the lock of the killed job, or a ckpt-* written just before last.h5 was replaced, is no
    # damage)
    damaged "$WORK/t.out" && torn=$((torn + 1)) && seen+="kill $i: $(grep warning "$WORK/t.out" | head -2) "
done
fit 2 "$WORK/t" --resume --verbose 1 >"$WORK/t.out" 2>&1; rc=$?
damaged "$WORK/t.out" && torn=$((torn + 1))
[ "$torn" -eq 0 ] && [ "$rc" -eq 0 ] && ok "4 kills during per-step checkpointing: last.h5 never torn" ||
    not_ok "torn checkpoint seen ($torn) or final resume failed (exit $rc)" "$seen$(grep warning "$WORK/t.out" | head -2)"

# --- resume on another rank count ---------------------------------------------------------------
fit 2 "$WORK/r" --epochs 3 --verbose 0 >/dev/null 2>&1
fit 3 "$WORK/r" --resume >"$WORK/r.out" 2>&1; rc=$?
[ "$rc" -eq 0 ] && grep -q 'written by 2 ranks, this run has 3' "$WORK/r.out" &&
    [ "$(($(wc -l <"$WORK/r/history.csv") - 1))" -eq 8 ] && ok "resume on 3 ranks from a 2-rank checkpoint" ||
    not_ok "resume on another rank count" "exit $rc" "$(tail -3 "$WORK/r.out")"

finish
