#!/usr/bin/env bash
# A real (single-node) Slurm: launch/slurm.sbatch survives a preemption end to end.
# Starts a private slurmctld + slurmd + munged (tests/slurm/cluster.sh), trains a reference run
# under plain mpirun, then submits launch/slurm.sbatch with 2 tasks, once with LAUNCHER=srun and
# once with LAUNCHER=mpirun. Mid-run, `scancel --signal=USR1 --batch` warns the batch shell (what
# `--signal=B:USR1@120` does before the time limit); the job must forward the signal, the ranks
# checkpoint and exit 75, the job requeues itself, restarts, resumes from exactly that checkpoint,
# completes, and its final weights are bit-identical to the uninterrupted reference.
# Skips (exit 77) only when Slurm cannot be had: not root, or its packages cannot be installed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC" || exit 1
skip() {
    echo "skipped: $*"
    exit 77
}

[ "$(id -u)" -eq 0 ] || skip "needs root to run the test Slurm daemons (SlurmUser=root)"
command -v h5diff >/dev/null && command -v h5ls >/dev/null || skip "h5diff/h5ls (hdf5-tools) not installed"
inst=$(tests/slurm/cluster.sh install 2>&1)
case $? in
    0) ;;
    3) skip "Slurm not available: ${inst##*] }" ;;
    *) not_ok "installing Slurm" "$inst"; finish; exit 1 ;;
esac
source tests/slurm/weights.sh

T0=$(date +%s)
export DPT_SLURM_DIR
DPT_SLURM_DIR=$(mktemp -d /tmp/dpt-slurm-test-XXXXXX)
chmod 755 "$DPT_SLURM_DIR" # munged wants its socket's directories o+x
cleanup() {
    DPT_SLURM_PURGE=1 tests/slurm/cluster.sh stop >"$WORK/stop.log" 2>&1 ||
        { echo "cluster stop failed:"; cat "$WORK/stop.log"; }
    rm -rf "$WORK"
}
trap cleanup EXIT

run_cmd "$WORK/start" 60 tests/slurm/cluster.sh start
if [ "$RC" -ne 0 ]; then
    not_ok "cluster starts" "$(cat "$WORK/start.err")"
    finish
    exit 1
fi
eval "$(cat "$WORK/start.out")"
[ "$(sinfo -h -o %T)" = idle ] && ok "single-node Slurm up in ${SECS}s ($(sinfo -h -o '%N %c CPUs'))" ||
    not_ok "node idle" "$(sinfo 2>&1)"

# The job must still be running when the signal lands (after epoch 1), on an idle machine (0.1 ms
# a step here) as on a loaded one (2-5 ms a step when other builds share the 2 cores): many short
# epochs do that. 16000 samples = 400 steps of 32 an epoch (validation takes the last 20 %),
# 24 epochs: after epoch 1, 23 epochs (over 1 s at the fastest) remain for the signal to land in.
data=$WORK/d.h5
"$DPTRAIN" data synth --samples 16000 --features 20 --seed 11 --out "$data" >/dev/null ||
    not_ok "data synth"
EPOCHS=24
fitargs=(--data "$data" --epochs "$EPOCHS" --checkpoint-every 100 --verbose 1)

run_cmd "$WORK/ref" 150 $MPIRUN -np 2 "$DPTRAIN" fit examples/tutorial.json "${fitargs[@]}" --run-dir "$WORK/ref"
[ "$RC" -eq 0 ] && [ -s "$WORK/ref/final.h5" ] && ok "reference: uninterrupted 2-rank run under mpirun (${SECS}s)" ||
    not_ok "reference run" "exit $RC" "$(tail -3 "$WORK/ref.err")"

export DPTRAIN
jstate() { scontrol show job -o "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
rows() { [ -f "$1" ] && echo $(($(wc -l <"$1") - 1)) || echo 0; }
# wait_for SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds
wait_for() {
    local n=$(($1 * 10))
    shift
    for _ in $(seq "$n"); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}
in_epoch2() { [ "$(jstate "$1")" = RUNNING ] && [ "$(rows "$2/history.csv")" -ge 1 ]; }
is_state() { [ "$(jstate "$1")" = "$2" ]; }
is_done() { case "$(jstate "$1")" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) return 0 ;; *) return 1 ;; esac; }

# preempt_job LAUNCHER: the whole cycle for one launcher
preempt_job() {
    local L=$1 run=$WORK/run-$1 out=$WORK/job-$1.out J t0 pre res
    t0=$(date +%s.%N)
    J=$(LAUNCHER=$L sbatch --parsable -J "dpt-$L" -N 1 --ntasks-per-node=2 -c 1 -t 10 -o "$out" \
        launch/slurm.sbatch examples/tutorial.json "$run" "${fitargs[@]}" 2>"$WORK/sbatch.err")
    if [ -z "$J" ]; then
        not_ok "$L: sbatch" "$(cat "$WORK/sbatch.err")"
        return
    fi
    if ! wait_for 90 in_epoch2 "$J" "$run"; then
        not_ok "$L: job $J never got through epoch 1 while running (state $(jstate "$J"))" "$(tail -5 "$out" 2>&1)"
        scancel "$J"
        return
    fi
    scancel --signal=USR1 --batch "$J"
    # the job requeues itself: it goes back to PENDING (via REQUEUED) with Restarts=1
    if wait_for 60 is_state "$J" PENDING; then
        ok "$L: USR1 to the batch shell in epoch 2 -> job $J requeued itself"
    else
        not_ok "$L: job $J not requeued after USR1 (state $(jstate "$J"); COMPLETED: it ran faster than calibrated)" \
            "$(grep -v '^[ =_]' "$out" | tail -8)"
        scancel "$J"
        return
    fi
    grep -q 'got SIGUSR1: asking the ranks to checkpoint' "$out" && ok "$L: batch shell trapped USR1 and forwarded it" ||
        not_ok "$L: no forwarding message in the job output"
    pre=$(grep -o 'preempted (resumable): stopped by a signal at epoch [0-9]*, step [0-9]*: checkpoint written' "$out" |
        head -n 1 | grep -o 'epoch [0-9]*, step [0-9]*')
    if [ -n "$pre" ] && grep -q "exit 75): requeueing job $J" "$out"; then
        ok "$L: ranks checkpointed at $pre, exited 75, the script requeued"
    else
        not_ok "$L: checkpoint + exit 75 + requeue not all in the output" "$(grep -v '^[ =_]' "$out" | tail -8)"
    fi
    # A requeued job waits cred_expire seconds before it may start. Starting it in the same second
    # as the requeue fails ("Job credential revoked"), so cross a second boundary first.
    sleep 1.5
    is_state "$J" PENDING && scontrol update JobId="$J" StartTime=now
    if ! wait_for 150 is_done "$J"; then
        not_ok "$L: job $J did not finish after the restart (state $(jstate "$J"))" "$(tail -5 "$out")"
        scancel "$J"
        return
    fi
    local info
    info=$(scontrol show job -o "$J")
    if [[ "$info" == *JobState=COMPLETED* && "$info" == *"Restarts=1 "* && "$info" == *"ExitCode=0:0"* ]]; then
        ok "$L: job $J COMPLETED after 1 restart, exit 0 ($(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s in all)"
    else
        not_ok "$L: job $J end" "$(echo "$info" | grep -o 'JobState=[^ ]*\|Restarts=[^ ]*\|ExitCode=[^ ]*' | tr '\n' ' ')" \
            "$(grep -v '^[ =_]' "$out" | tail -6)"
    fi
    res=$(grep -o "^resume: $run/last.h5: epoch [0-9]*, step [0-9]*" "$out" | grep -o 'epoch [0-9]*, step [0-9]*')
    if grep -q 'restart 1: resuming from the newest checkpoint' "$out" && [ -n "$pre" ] && [ "$res" = "$pre" ]; then
        ok "$L: run 2 resumed from the preemption checkpoint ($res)"
    else
        not_ok "$L: resume point '$res', preempted at '$pre'" "$(grep -E '^resume|restart' "$out")"
    fi
    local ep
    ep=$(tail -n +2 "$run/history.csv" 2>/dev/null | cut -d, -f1 | tr '\n' ' ')
    [ "$ep" = "$(seq -s ' ' 1 "$EPOCHS") " ] && ok "$L: history.csv has epochs 1..$EPOCHS once each" ||
        not_ok "$L: history.csv epochs: '$ep'"
    if same_weights "$WORK/ref/final.h5" "$run/final.h5"; then
        ok "$L: final.h5 weights bit-identical to the uninterrupted run ($WEIGHTS_COUNT datasets, h5diff)"
    else
        not_ok "$L: final weights differ from the reference" "$WEIGHTS_DIFF"
    fi
}

preempt_job srun
preempt_job mpirun
grep -q 'Forwarding signal 10' "$WORK/job-mpirun.out" 2>/dev/null && ok "mpirun: mpirun forwarded SIGUSR1 to its ranks" ||
    not_ok "mpirun: no 'Forwarding signal 10' from mpirun"

echo "# test_slurm: $(($(date +%s) - T0)) s"
finish
