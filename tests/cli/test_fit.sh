#!/usr/bin/env bash
# End to end: the real binary under mpirun — the tutorial config trains for 20 epochs on 2 ranks,
# prints 20 epoch lines and writes 20 history rows and Keras weights; summary counts 5,569
# parameters; bad command lines and a missing dataset end every rank promptly with the documented
# exit code and a message naming the culprit.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC"

data="$WORK/tutorial.h5"
run_cmd "$WORK/synth" 60 "$DPTRAIN" data synth --samples 1000 --features 20 --seed 1 --out "$data"
[ "$RC" -eq 0 ] && [ -f "$data" ] && ok "data synth writes the tutorial dataset" ||
    not_ok "data synth" "$(cat "$WORK/synth.err")"

run_cmd "$WORK/fit" 240 $MPIRUN -np 2 "$DPTRAIN" fit examples/tutorial.json --data "$data" \
    --run-dir "$WORK/run"
lines=$(grep -cE '^Epoch [0-9]+/20 - [0-9.]+s - loss: [0-9.]+ - accuracy: [0-9.]+ - val_loss: [0-9.]+ - val_accuracy: [0-9.]+$' "$WORK/fit.out")
if [ "$RC" -eq 0 ] && [ "$lines" -eq 20 ]; then ok "fit on 2 ranks: exit 0, 20 epoch lines"; else
    not_ok "fit on 2 ranks" "exit $RC, $lines epoch lines" "$(tail -5 "$WORK/fit.out")" "$(tail -5 "$WORK/fit.err")"; fi
rows=$(($(wc -l <"$WORK/run/history.csv") - 1))
[ "$rows" -eq 20 ] && ok "history.csv has 20 rows" || not_ok "history.csv rows: $rows"
head -1 "$WORK/run/history.csv" | grep -q '^epoch,loss,accuracy,val_loss,val_accuracy' &&
    ok "history.csv header" || not_ok "history.csv header"
[ -s "$WORK/run/final.h5" ] && ok "final.h5 written" || not_ok "final.h5 missing"
# exactly one process printed the epoch lines (rank 0)
[ "$(grep -c '^Epoch 1/20' "$WORK/fit.out")" -eq 1 ] && ok "only rank 0 prints" || not_ok "epoch lines printed more than once"

run_cmd "$WORK/sum" 30 "$DPTRAIN" summary examples/tutorial.json
grep -q 'Total params: 5,569' "$WORK/sum.out" && ok "summary: 5,569 parameters" ||
    not_ok "summary" "$(cat "$WORK/sum.out" "$WORK/sum.err")"

expect_fail "missing dataset ends all 3 ranks" 4 "$WORK/nope.h5" 10 \
    $MPIRUN -np 3 "$DPTRAIN" fit examples/tutorial.json --data "$WORK/nope.h5"
expect_fail "missing config file" 3 "$WORK/none.json" 10 \
    $MPIRUN -np 2 "$DPTRAIN" fit "$WORK/none.json"
expect_fail "unknown option" 2 '--frobnicate' 10 "$DPTRAIN" fit examples/tutorial.json --frobnicate
expect_fail "bad --epochs" 2 '--epochs' 10 "$DPTRAIN" fit examples/tutorial.json --epochs zero
expect_fail "unknown command" 2 'unknown command' 10 "$DPTRAIN" frobnicate
expect_fail "fit without config" 2 'missing CONFIG' 10 "$DPTRAIN" fit
printf '{"model": [}' >"$WORK/bad.json"
expect_fail "JSON syntax error names line and column" 3 "$WORK/bad.json:1:" 10 \
    $MPIRUN -np 2 "$DPTRAIN" fit "$WORK/bad.json"
expect_fail "run dir under a file" 7 "$WORK/file" 10 \
    bash -c "touch '$WORK/file' && exec $MPIRUN -np 2 '$DPTRAIN' fit examples/tutorial.json --data '$data' --run-dir '$WORK/file/run' --epochs 1"

# a generic OpenBLAS kernel on an AVX2 / AVX-512 CPU is not lost silently
# the kernel in use is on the start-up lines; a generic one the CLI would replace before MPI_Init
# (restarting itself with OPENBLAS_CORETYPE; verified on the lent Xeon host, bench/RESULTS.md)
run_cmd "$WORK/kernel" 60 env -u OPENBLAS_CORETYPE "$DPTRAIN" fit examples/tutorial.json --data "$data" --epochs 1
[ "$RC" -eq 0 ] && grep -qE '^OpenBLAS: [A-Za-z0-9]+ kernel' "$WORK/kernel.out" &&
    ! grep -q 'generic' "$WORK/kernel.err" && ok "start-up names the OpenBLAS kernel: $(grep -m1 '^OpenBLAS:' "$WORK/kernel.out")" ||
    not_ok "no OpenBLAS kernel line, or a generic kernel left in place" "$(grep OpenBLAS "$WORK/kernel.out" "$WORK/kernel.err")"
# no room for the shared-memory window (a 1 MiB tmpfs as Open MPI's backing directory): the
# default exchange falls back to MPI_Allreduce, says why, and trains
mkdir -p "$WORK/tiny"
if mount -t tmpfs -o size=1m tmpfs "$WORK/tiny" 2>/dev/null; then
    run_cmd "$WORK/fallback" 60 env OMPI_MCA_osc_sm_backing_directory="$WORK/tiny" $MPIRUN -np 2 \
        "$DPTRAIN" fit examples/tutorial.json --data "$data" --epochs 2
    umount "$WORK/tiny"
    [ "$RC" -eq 0 ] && grep -q "gradient exchange: MPI_Allreduce (no shared memory: $WORK/tiny has less room" "$WORK/fallback.out" &&
        grep -q '^Epoch 2/2' "$WORK/fallback.out" && ok "no room for the shared window: falls back to MPI_Allreduce, says why, trains" ||
        not_ok "fallback to MPI_Allreduce" "exit $RC" "$(grep -E 'exchange|rror' "$WORK/fallback.out" "$WORK/fallback.err" | head -3)"
fi
if grep -qw avx2 /proc/cpuinfo; then
    run_cmd "$WORK/generic" 60 env OPENBLAS_CORETYPE=Prescott "$DPTRAIN" fit examples/tutorial.json \
        --data "$data" --epochs 1 --verbose 0
    grep -q 'OpenBLAS uses its generic "Prescott" kernel.*OPENBLAS_CORETYPE=' "$WORK/generic.err" &&
        ok "generic OpenBLAS kernel on an AVX2 CPU: warning with the remedy" ||
        not_ok "no warning for a generic OpenBLAS kernel" "$(cat "$WORK/generic.err")"
fi

run_cmd "$WORK/help" 10 "$DPTRAIN" --help
[ "$RC" -eq 0 ] && grep -q 'exit codes' "$WORK/help.out" && ok "--help lists exit codes" || not_ok "--help"
run_cmd "$WORK/ver" 10 "$DPTRAIN" --version
[ "$RC" -eq 0 ] && grep -qE '^dptrain [0-9]+\.[0-9]+\.[0-9]+$' "$WORK/ver.out" && ok "--version" || not_ok "--version"

finish
