#!/usr/bin/env bash
# valgrind memcheck on a short single-rank fit of the tutorial network: one epoch writing a run
# directory (history, checkpoint, Keras weights), then --resume for a second epoch (checkpoint
# read). No invalid read or write, no use of uninitialised values, no leak of dptrain's own:
# Open MPI's allocations in MPI_Init/MPI_Finalize are suppressed (tests/fuzz/valgrind.supp and
# Open MPI's own openmpi-valgrind.supp). Skips (77) without valgrind. About 30-50 s.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC"
command -v valgrind >/dev/null || { echo "skipped: valgrind not installed"; exit 77; }
export OPENBLAS_NUM_THREADS=1

supp=(--suppressions="$SRC/tests/fuzz/valgrind.supp")
for f in /usr/share/openmpi/openmpi-valgrind.supp /usr/local/share/openmpi/openmpi-valgrind.supp; do
    [ -f "$f" ] && supp+=(--suppressions="$f")
done
vg=(valgrind --leak-check=full --errors-for-leak-kinds=definite,possible --error-exitcode=99
    --num-callers=30 "${supp[@]}")

"$DPTRAIN" data synth --samples 300 --features 20 --seed 1 --out "$WORK/d.h5" >/dev/null

check_vg() { # NAME LOG
    local errs
    errs=$(grep -E '^==[0-9]+== ERROR SUMMARY' "$2" | grep -oE '[0-9]+ errors' | head -1)
    if [ "$RC" -eq 0 ] && [ "$errs" = "0 errors" ]; then
        ok "$1: memcheck clean (${SECS}s)"
    else
        not_ok "$1" "exit $RC, ${errs:-no summary}" \
            "$(grep -E -A8 '^==[0-9]+== (Invalid|Conditional|Use of|[0-9,]+ .*(definitely|possibly) lost)' "$2" | head -24)"
    fi
}

run_cmd "$WORK/vg1" 240 "${vg[@]}" "$DPTRAIN" fit examples/tutorial.json --data "$WORK/d.h5" \
    --epochs 1 --run-dir "$WORK/run" --verbose 0
check_vg "fit, 1 epoch, run directory written" "$WORK/vg1.err"

run_cmd "$WORK/vg2" 240 "${vg[@]}" "$DPTRAIN" fit examples/tutorial.json --data "$WORK/d.h5" \
    --epochs 2 --run-dir "$WORK/run" --resume --verbose 1
grep -q '^resume: .*last.h5' "$WORK/vg2.out" || not_ok "resume did not read last.h5" "$(tail -3 "$WORK/vg2.out")"
check_vg "fit --resume, checkpoint read, 1 more epoch" "$WORK/vg2.err"

finish
