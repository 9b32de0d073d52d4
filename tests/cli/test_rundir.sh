#!/usr/bin/env bash
# The run directory under accidents, end to end under mpirun:
#  - a second job on a busy run directory stops at once (exit 9) naming the holder, and the first
#    job goes on unharmed; the lock is gone after the run; a stale lock (a dead pid on this host,
#    or this Slurm job's earlier run) is taken over with a warning;
#  - a history row cut by a crash (in history.csv or in history.jsonl) loses no earlier row on
#    --resume: each epoch's row comes from whichever copy is intact;
#  - --resume takes a ckpt-* that is newer than last.h5 (replacing last.h5 failed), and not an
#    earlier run's ckpt-* left in the directory;
#  - predict --out replaces an earlier prediction file, and another file only with --force;
#  - the launch scripts: SIGTERM to launch/mpirun.sh, or to its mpirun, or SIGINT: exit 75 after
#    a checkpoint, and --resume continues;
#  - the watchdog does not fire during a validation pass longer than its limit.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_pml=${OMPI_MCA_pml:-ob1} OPENBLAS_NUM_THREADS=1

data="$WORK/d.h5" big="$WORK/big.h5"
"$DPTRAIN" data synth --samples 2000 --features 20 --seed 5 --out "$data" >/dev/null
"$DPTRAIN" data synth --samples 200000 --features 20 --seed 5 --out "$big" >/dev/null
fit() { $MPIRUN -np "$1" "$DPTRAIN" fit examples/tutorial.json --data "${DATA:-$data}" --run-dir "${@:2}"; }
rows() { echo $(($(wc -l <"$1/history.csv") - 1)); }
wait_rows() { # DIR N: until DIR/history.csv has N rows, at most 60 s
    for _ in $(seq 600); do
        [ -f "$1/history.csv" ] && [ "$(rows "$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# --- two jobs on one run directory ---------------------------------------------------------------
DATA=$big fit 2 "$WORK/b" --epochs 1000 --verbose 0 >"$WORK/b1.out" 2>&1 &
mp=$!
wait_rows "$WORK/b" 1
if [ -f "$WORK/b/dptrain.lock" ] && grep -q "^pid=[0-9]" "$WORK/b/dptrain.lock" &&
    grep -q "^host=$(hostname)$" "$WORK/b/dptrain.lock"; then
    ok "the running job holds b/dptrain.lock (host, pid)"
else
    not_ok "lock file of the running job" "$(cat "$WORK/b/dptrain.lock" 2>&1)"
fi
expect_fail "a second job on the same run directory: exit 9 at once, naming the holder" 9 \
    "run directory in use by another job (host $(hostname), pid" 15 \
    $MPIRUN -np 2 "$DPTRAIN" fit examples/tutorial.json --data "$big" --run-dir "$WORK/b" --resume
expect_fail "... also without --resume" 9 "$WORK/b/dptrain.lock" 15 \
    $MPIRUN -np 3 "$DPTRAIN" fit examples/tutorial.json --data "$data" --run-dir "$WORK/b"
n1=$(rows "$WORK/b")
kill -USR1 "$(pgrep -f -- "^$DPTRAIN fit .*--run-dir $WORK/b" | head -1)" # one rank
wait "$mp"
rc=$?
n2=$(rows "$WORK/b")
if [ "$rc" -eq 75 ] && [ "$n2" -ge "$n1" ] && [ ! -e "$WORK/b/dptrain.lock" ] &&
    ! grep -q 'cannot rename' "$WORK/b1.out"; then
    ok "the first job was unharmed (exit 75 on SIGUSR1, $n2 rows), and released the lock"
else
    not_ok "first job after the second's attempts" "exit $rc, rows $n1 -> $n2" "$(tail -3 "$WORK/b1.out")"
fi
if grep -q '^launch=' "$WORK/b/preempted" 2>/dev/null; then ok "a preempted run leaves b/preempted"; else
    not_ok "no b/preempted after exit 75"; fi

# --- stale locks ----------------------------------------------------------------------------------
dead=$(sh -c 'echo $$') # a pid that has just ended
printf 'host=%s\npid=%s\njob=\nsince=2026-01-01T00:00:00Z\n' "$(hostname)" "$dead" >"$WORK/b/dptrain.lock"
fit 2 "$WORK/b" --epochs 2 --verbose 0 >"$WORK/s.out" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && grep -q "warning: $WORK/b/dptrain.lock: taking over the lock of a job that is gone (host $(hostname), pid $dead" "$WORK/s.out" &&
    [ ! -e "$WORK/b/dptrain.lock" ] && [ ! -e "$WORK/b/preempted" ]; then
    ok "a lock of a dead pid on this host is taken over with a warning"
else
    not_ok "stale lock (dead pid)" "exit $rc" "$(tail -3 "$WORK/s.out")"
fi
printf 'host=elsewhere\npid=1\njob=4711\nrestart=0\nsince=2026-01-01T00:00:00Z\n' >"$WORK/b/dptrain.lock"
expect_fail "a lock of another step of the same Slurm job run, on another host: exit 9" 9 "Slurm job 4711" 15 \
    env SLURM_JOB_ID=4711 $MPIRUN -np 2 "$DPTRAIN" fit examples/tutorial.json --data "$data" --run-dir "$WORK/b"
SLURM_JOB_ID=4711 SLURM_RESTART_COUNT=1 fit 2 "$WORK/b" --epochs 2 --verbose 0 >"$WORK/s.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] && grep -q "taking over the lock .*this Slurm job's (4711) earlier run 1" "$WORK/s.out" &&
    ok "a lock of this Slurm job's earlier run (requeued on another node) is taken over" ||
    not_ok "stale lock (same Slurm job)" "exit $rc" "$(tail -3 "$WORK/s.out")"
printf 'host=elsewhere\npid=1\njob=4711\nsince=2026-01-01T00:00:00Z\n' >"$WORK/b/dptrain.lock"
expect_fail "a lock held on another host by another job: exit 9" 9 "(host elsewhere, pid 1, Slurm job 4711" 15 \
    env SLURM_JOB_ID=99 $MPIRUN -np 2 "$DPTRAIN" fit examples/tutorial.json --data "$data" --run-dir "$WORK/b"
rm -f "$WORK/b/dptrain.lock"

# --- history rows cut by a crash -----------------------------------------------------------------
fit 2 "$WORK/h" --epochs 5 --verbose 0 >/dev/null 2>&1
cp "$WORK/h/history.csv" "$WORK/h.csv"
head -c -9 "$WORK/h.csv" >"$WORK/h/history.csv" # the last row cut in the middle
fit 2 "$WORK/h" --epochs 7 --resume --verbose 0 >"$WORK/h.out" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && [ "$(rows "$WORK/h")" -eq 7 ] && [ "$(wc -l <"$WORK/h/history.jsonl")" -eq 7 ] &&
    [ "$(head -6 "$WORK/h/history.csv")" = "$(cat "$WORK/h.csv")" ] && grep -q 'damaged or cut row' "$WORK/h.out"; then
    ok "a cut last row of history.csv: resume keeps every earlier row (the cut one from history.jsonl), 7 rows in both"
else
    not_ok "history.csv with a cut row" "exit $rc, $(rows "$WORK/h") rows" "$(tail -3 "$WORK/h.out")"
fi
cp "$WORK/h/history.csv" "$WORK/h.csv"
head -c -20 "$WORK/h/history.jsonl" >"$WORK/h.jsonl" && mv "$WORK/h.jsonl" "$WORK/h/history.jsonl"
sed -i '3s/.*/3,0.6/' "$WORK/h/history.csv" # and a damaged row in the middle of history.csv
fit 2 "$WORK/h" --epochs 8 --resume --verbose 0 >"$WORK/h.out" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && [ "$(rows "$WORK/h")" -eq 8 ] && [ "$(head -8 "$WORK/h/history.csv")" = "$(cat "$WORK/h.csv")" ] &&
    [ "$(cut -d, -f1 "$WORK/h/history.csv" | tail -8 | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 " ]; then
    ok "a cut history.jsonl and a damaged history.csv row: each epoch from the intact copy, 8 rows"
else
    not_ok "history repair from both copies" "exit $rc" "$(cat "$WORK/h/history.csv")" "$(tail -3 "$WORK/h.out")"
fi
if "$DPTRAIN" plot "$WORK/h" >/dev/null 2>&1; then ok "dptrain plot reads the rebuilt history"; else
    not_ok "plot after the repair"; fi

# --- --resume takes the newest checkpoint that verifies --------------------------------------------
fit 2 "$WORK/n" --epochs 3 --verbose 0 >/dev/null 2>&1
cp -p "$WORK/n/ckpt-000001-"*.h5 "$WORK/n/last.h5" # replacing last.h5 after ckpt 2 and 3 "failed"
fit 2 "$WORK/n" --epochs 4 --resume >"$WORK/n.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] && grep -q "^resume: $WORK/n/ckpt-000003-.*epoch 4, step 0" "$WORK/n.out" &&
    grep -q "ckpt-000003-.* is newer than $WORK/n/last.h5" "$WORK/n.out" &&
    ok "--resume takes ckpt-3, newer than a stale last.h5 (epoch 1), and says so" ||
    not_ok "--resume with a newer ckpt-*" "exit $rc" "$(grep -E 'resume|warning' "$WORK/n.out")"
# an earlier run's checkpoints (more steps) in a directory started again without --resume
fit 2 "$WORK/o" --epochs 3 --verbose 0 >/dev/null 2>&1
sleep 0.05
fit 2 "$WORK/o" --epochs 1 --seed 7 --verbose 0 >/dev/null 2>&1
fit 2 "$WORK/o" --epochs 2 --seed 7 --resume >"$WORK/o.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] && grep -q "^resume: $WORK/o/last.h5: epoch 2" "$WORK/o.out" &&
    ok "--resume ignores an earlier run's ckpt-* with more steps (older than last.h5)" ||
    not_ok "--resume with an earlier run's ckpt-*" "exit $rc" "$(grep -E 'resume|warning|error' "$WORK/o.out")"

# --- predict --out --------------------------------------------------------------------------------
ck=$WORK/n/last.h5
run_cmd "$WORK/p1" 60 $MPIRUN -np 2 "$DPTRAIN" predict "$ck" --data "$data" --out "$WORK/p.h5"
run_cmd "$WORK/p2" 60 $MPIRUN -np 2 "$DPTRAIN" predict "$ck" --data "$data" --out "$WORK/p.h5" --mc-samples 2
[ "$RC" -eq 0 ] && grep -q "wrote $WORK/p.h5: /mean" "$WORK/p2.out" &&
    ok "predict replaces its own earlier prediction file" || not_ok "predict over a prediction file" "exit $RC" "$(cat "$WORK/p2.err")"
cp "$data" "$WORK/copy.h5"
expect_fail "predict --out an existing dataset copy: refused" 2 "not written by dptrain predict" 20 \
    $MPIRUN -np 2 "$DPTRAIN" predict "$ck" --data "$data" --out "$WORK/copy.h5"
cmp -s "$data" "$WORK/copy.h5" && ok "... and the file is untouched" || not_ok "the refused --out file changed"
run_cmd "$WORK/p3" 60 $MPIRUN -np 2 "$DPTRAIN" predict "$ck" --data "$data" --out "$WORK/copy.h5" --force
[ "$RC" -eq 0 ] && ! cmp -s "$data" "$WORK/copy.h5" && ok "--force replaces it" || not_ok "predict --force" "exit $RC" "$(cat "$WORK/p3.err")"

# --- the launch scripts: a preempted job exits 75 whichever process got the signal ---------------
L=launch/mpirun.sh
export DPTRAIN
# SIGINT: a background job of a script starts with SIGINT ignored, which no trap can undo: the
# script is started through a wrapper that restores the default, as a terminal's shell would
dflint='import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])'
for who in script mpirun script-INT; do
    d=$WORK/l-$who
    python3 -c "$dflint" $L -n 2 -- fit examples/tutorial.json --data "$big" --epochs 1000 --verbose 0 --run-dir "$d" >"$d.out" 2>&1 &
    sp=$!
    wait_rows "$d" 1
    case $who in
    script) kill -TERM "$sp" ;;
    script-INT) kill -INT "$sp" ;;
    mpirun) kill -TERM "$(pgrep -P "$sp" -x mpirun | head -1)" ;;
    esac
    wait "$sp"
    rc=$?
    case $who in script) what="SIGTERM to launch/mpirun.sh" ;; mpirun) what="SIGTERM to its mpirun" ;;
    *) what="SIGINT to launch/mpirun.sh" ;; esac
    if [ "$rc" -eq 75 ] && grep -q 'checkpoint written to' "$d.out"; then
        ok "$what: exit 75 after a checkpoint"
    else
        not_ok "$what: exit 75" "exit $rc" "$(tail -4 "$d.out")"
    fi
done
d=$WORK/l-mpirun
DATA=$big fit 2 "$d" --epochs "$(($(rows "$d") + 1))" --resume --verbose 0 >"$d.2.out" 2>&1 &&
    ok "... and --resume continues" || not_ok "resume after the launcher's exit 75" "$(tail -3 "$d.2.out")"

# --- the watchdog and a long validation pass -----------------------------------------------------
# 40000 validation samples through 2 x 1024 units: several seconds per pass (watchdog: 2 s), each
# batch is progress; the training steps (4000 samples) kick as always
"$DPTRAIN" data synth --samples 44000 --features 20 --seed 5 --out "$WORK/v.h5" >/dev/null
python3 - examples/tutorial.json "$WORK/v.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
for l in [l for l in c["model"]["config"]["layers"] if l["class_name"] == "Dense"][:-1]:
    l["config"]["units"] = 1024
c["fit"].update(epochs=1, validation_split=0.909)
json.dump(c, open(sys.argv[2], "w"))
PY
t0=$(date +%s.%N)
run_cmd "$WORK/v" 300 $MPIRUN -np 2 "$DPTRAIN" fit "$WORK/v.json" --data "$WORK/v.h5" --watchdog 2 --verbose 2
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
[ "$RC" -eq 0 ] && grep -q 'val_loss' "$WORK/v.out" && ok "a validation pass longer than --watchdog 2 is progress (run ${secs}s)" ||
    not_ok "watchdog during validation" "exit $RC after ${secs}s" "$(tail -3 "$WORK/v.err")"

# --- ... and checkpoint writes: 2 x 2500 units, 75 MB per checkpoint (ckpt-*, last.h5, final.h5
# weights), each write fsynced: on this disk several seconds against --watchdog 1; the ranks that
# wait for rank 0 must not take the wait for a hang
"$DPTRAIN" data synth --samples 64 --features 20 --seed 5 --out "$WORK/w.h5" >/dev/null
python3 - examples/tutorial.json "$WORK/w.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
for l in [l for l in c["model"]["config"]["layers"] if l["class_name"] == "Dense"][:-1]:
    l["config"]["units"] = 2500
c["fit"].update(epochs=2, validation_split=0, batch_size=64)
json.dump(c, open(sys.argv[2], "w"))
PY
t0=$(date +%s.%N)
run_cmd "$WORK/w" 300 $MPIRUN -np 2 "$DPTRAIN" fit "$WORK/w.json" --data "$WORK/w.h5" --watchdog 1 --verbose 2 \
    --run-dir "$WORK/w" --keep 1
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
[ "$RC" -eq 0 ] && [ -f "$WORK/w/final.h5" ] && ok "checkpoint and final.h5 writes are progress for --watchdog 1 (run ${secs}s)" ||
    not_ok "watchdog during checkpoint writes" "exit $RC after ${secs}s" "$(grep -h watchdog "$WORK/w.err" | head -2)"

finish
