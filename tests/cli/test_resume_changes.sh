#!/usr/bin/env bash
# --resume continues the same computation: a changed activation, dropout rate, extra layer, loss,
# batch size, validation_split, shuffle or dataset size is refused (exit 5) naming the first
# difference; --allow-changes resumes anyway with a warning; the learning rate and the epochs
# may change freely.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC"
"$DPTRAIN" data synth --samples 600 --features 20 --seed 2 --out "$WORK/d.h5" >/dev/null
"$DPTRAIN" data synth --samples 700 --features 20 --seed 2 --out "$WORK/d700.h5" >/dev/null
cfg=examples/tutorial.json
fresh() { rm -rf "$WORK/r" && "$DPTRAIN" fit "$cfg" --data "$WORK/d.h5" --epochs 2 --run-dir "$WORK/r" --verbose 0; }
edit() { sed "$1" "$cfg" >"$WORK/edited.json"; }
R=("$DPTRAIN" fit "$WORK/edited.json" --epochs 3 --run-dir "$WORK/r" --resume --verbose 0)

fresh >/dev/null 2>&1 || not_ok "the first run"
edit 's/"rate": 0.5/"rate": 0.3/'
expect_fail "a changed dropout rate" 5 "(Dropout).rate: 0.5 in the checkpoint, 0.3 now" 30 "${R[@]}" --data "$WORK/d.h5"
edit '0,/"activation": "relu"/s//"activation": "tanh"/'
expect_fail "a changed activation" 5 '(Dense).activation: "relu" in the checkpoint, "tanh" now' 30 "${R[@]}" --data "$WORK/d.h5"
edit 's/"loss": "binary_crossentropy"/"loss": "mse"/'
expect_fail "a changed loss" 5 "compile.loss: another loss" 30 "${R[@]}" --data "$WORK/d.h5"
edit 's/"shuffle": true/"shuffle": false/'
expect_fail "a changed shuffle" 5 "fit.shuffle: true in the checkpoint, false now" 30 "${R[@]}" --data "$WORK/d.h5"
edit 's/"validation_split": 0.2/"validation_split": 0.1/'
expect_fail "a changed validation_split" 5 "the data: 480 training samples in the checkpoint, 540 now" 30 "${R[@]}" --data "$WORK/d.h5"
edit 's/x/x/'
expect_fail "another batch size" 5 "fit.batch_size: 32 in the checkpoint, 16 now" 30 "${R[@]}" --data "$WORK/d.h5" --batch-size 16
expect_fail "a dataset of another size" 5 "the data: 480 training samples in the checkpoint, 560 now" 30 "${R[@]}" --data "$WORK/d700.h5"
edit 's/{"class_name": "Dropout",/{"class_name": "Dropout", "config": {"rate": 0.1}}, {"class_name": "Dropout",/'
expect_fail "an extra Dropout layer" 5 "in the checkpoint" 30 "${R[@]}" --data "$WORK/d.h5"

# safe by design: the learning rate and the epochs
edit 's/"optimizer": "adam"/"optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.0005}}/'
run_cmd "$WORK/lr" 30 "${R[@]}" --data "$WORK/d.h5"
[ "$RC" -eq 0 ] && [ "$(($(wc -l <"$WORK/r/history.csv") - 1))" -eq 3 ] &&
    ok "a changed learning rate and more epochs resume (3 epochs in history)" ||
    not_ok "a changed learning rate: exit $RC" "$(tail -2 "$WORK/lr.err")"
# --allow-changes
fresh >/dev/null 2>&1
edit 's/"rate": 0.5/"rate": 0.3/'
run_cmd "$WORK/allow" 30 "${R[@]}" --data "$WORK/d.h5" --allow-changes
[ "$RC" -eq 0 ] && grep -q "resuming anyway (--allow-changes)" "$WORK/allow.err" &&
    ok "--allow-changes resumes with a warning naming the change" ||
    not_ok "--allow-changes: exit $RC" "$(tail -2 "$WORK/allow.err")"
# --allow-changes with another batch mid-epoch: only where the epoch's position stays whole
rm -rf "$WORK/m" && "$DPTRAIN" fit "$cfg" --data "$WORK/d.h5" --epochs 1 --run-dir "$WORK/m" \
    --checkpoint-every 5 --keep 10 --verbose 0 >/dev/null 2>&1
mid=$(ls "$WORK/m"/ckpt-*-000000010.h5 2>/dev/null | head -1)
if [ -n "$mid" ]; then
    rm -f "$WORK/m/last.h5" && for f in "$WORK/m"/ckpt-*.h5; do [ "$f" = "$mid" ] || rm -f "$f"; done
    M=("$DPTRAIN" fit "$cfg" --data "$WORK/d.h5" --epochs 1 --run-dir "$WORK/m" --resume --verbose 0 --allow-changes)
    expect_fail "--allow-changes, another batch, position not whole" 5 \
        "the epoch's position (320 samples) must be a multiple of the new batch size 48" 30 "${M[@]}" --batch-size 48
    run_cmd "$WORK/m64" 30 "${M[@]}" --batch-size 64
    [ "$RC" -eq 0 ] && grep -q "fit.batch_size: 32 in the checkpoint, 64 now; resuming anyway" "$WORK/m64.err" &&
        ok "--allow-changes, another batch whose multiple the position is: resumes" ||
        not_ok "--allow-changes with batch 64: exit $RC" "$(tail -2 "$WORK/m64.err")"
else
    not_ok "no mid-epoch checkpoint ckpt-*-000000010.h5" "$(ls "$WORK/m")"
fi
finish
