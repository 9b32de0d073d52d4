#!/usr/bin/env bash
# dptrain fit --dry-run (what the Python package runs before it starts the ranks): a config and
# data a run accepts exit 0 with one line and write nothing; what a run refuses before its first
# step is refused with the same exit code and message; --resume checks the checkpoint too.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC"

"$DPTRAIN" data synth --samples 200 --features 20 --seed 1 --out "$WORK/d.h5" >/dev/null
"$DPTRAIN" data synth --samples 200 --features 7 --seed 1 --out "$WORK/d7.h5" >/dev/null

run_cmd "$WORK/ok" 30 "$DPTRAIN" fit examples/tutorial.json --data "$WORK/d.h5" --run-dir "$WORK/r" \
    --dry-run
if [ "$RC" -eq 0 ] && grep -q '^dry run: examples/tutorial.json accepted' "$WORK/ok.out" &&
    [ ! -e "$WORK/r" ] && ! grep -q '^Epoch' "$WORK/ok.out"; then
    ok "dry run of a good config: exit 0, one line, no run directory, no epoch"
else not_ok "dry run of a good config" "exit $RC" "$(tail -3 "$WORK/ok.out" "$WORK/ok.err")"; fi

expect_fail "dry run: data shape against the model" 4 \
    "d7.h5: /train/x: sample shape (7) does not match the model input (20)" 30 \
    "$DPTRAIN" fit examples/tutorial.json --data "$WORK/d7.h5" --dry-run
sed 's/"Dropout"/"Frobnicate"/' examples/tutorial.json >"$WORK/bad.json"
expect_fail "dry run: an unknown layer" 3 'Frobnicate' 30 \
    "$DPTRAIN" fit "$WORK/bad.json" --data "$WORK/d.h5" --dry-run

# a run directory with checkpoints: --resume --dry-run verifies the newest one and says so
"$DPTRAIN" fit examples/tutorial.json --data "$WORK/d.h5" --epochs 2 --run-dir "$WORK/k" --verbose 0 \
    >/dev/null 2>&1
run_cmd "$WORK/res" 30 "$DPTRAIN" fit examples/tutorial.json --data "$WORK/d.h5" --run-dir "$WORK/k" \
    --resume --dry-run
[ "$RC" -eq 0 ] && grep -q 'accepted (config, data, model, checkpoint)' "$WORK/res.out" &&
    ok "dry run with --resume checks the checkpoint" ||
    not_ok "dry run with --resume" "exit $RC" "$(tail -3 "$WORK/res.out" "$WORK/res.err")"

finish
