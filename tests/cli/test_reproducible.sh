#!/usr/bin/env bash
# fit.reproducible / --reproducible: the same bits on any number of ranks.
#  - the tutorial network (dropout 0.5) and an MLP (dropout, Adam, micro_batch 8) trained on 1, 2,
#    3, 4 and 5 ranks (oversubscribed): final.h5 identical value for value (h5diff, no
#    tolerance), history.csv's losses and metrics identical;
#  - kill -9 of a rank of a 4-rank run at a random step, --resume on 3 ranks: the final weights
#    are those of an uninterrupted 1-rank run;
#  - a BatchNormalization CNN (Conv2D, batch norm per micro-batch, its moving statistics from the
#    global batch's exact sums, dropout) on 1-5 ranks: identical weights, moving statistics too;
#  - refusals: --order local (exit 2), a reproducible checkpoint resumed in the default mode
#    (exit 5), a synchronized BatchNormalization (exit 3).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC"
command -v h5diff >/dev/null || { echo "skipped: h5diff (hdf5-tools) not installed"; exit 77; }
data="$WORK/d.h5" big="$WORK/big.h5"
"$DPTRAIN" data synth --samples 1000 --features 20 --seed 7 --out "$data" >/dev/null
"$DPTRAIN" data synth --samples 60000 --features 20 --seed 7 --out "$big" >/dev/null
# the MLP: the tutorial's config with another model and fit section
mlp="$WORK/mlp.json"
sed -e 's/"units": 64, "activation": "relu"/"units": 96, "activation": "relu"/' \
    -e 's/"rate": 0.5/"rate": 0.2/' \
    -e 's/"batch_size": 32/"batch_size": 64, "reproducible": true, "micro_batch": 8/' \
    examples/tutorial.json >"$mlp"
grep -q '"micro_batch": 8' "$mlp" || not_ok "could not derive the MLP config"

losses() { cut -d, -f1-5 "$1/history.csv"; } # epoch, loss, accuracy, val_loss, val_accuracy
same_as_one() { # NAME CONFIG EXTRA...
    local name=$1 cfg=$2; shift 2
    local bad=""
    for np in 1 2 3 4 5; do
        if ! $MPIRUN -np $np "$DPTRAIN" fit "$cfg" --data "$data" --epochs 3 --verbose 0 \
            --run-dir "$WORK/$name$np" "$@" >"$WORK/$name$np.out" 2>&1; then
            bad="$bad np$np:exit"
            continue
        fi
        [ $np -eq 1 ] && continue
        h5diff "$WORK/${name}1/final.h5" "$WORK/$name$np/final.h5" >/dev/null || bad="$bad np$np:weights"
        [ "$(losses "$WORK/${name}1")" = "$(losses "$WORK/$name$np")" ] || bad="$bad np$np:history"
    done
    [ -z "$bad" ] && ok "$name: 1-5 ranks give identical weights and history" ||
        not_ok "$name: ranks differ:$bad" "$(tail -2 "$WORK/${name}2.out")"
}
# micro-batches of 8: 4 per step of 32, spread unevenly over 3 or 5 ranks
sed 's/"batch_size": 32/"batch_size": 32, "micro_batch": 8/' examples/tutorial.json >"$WORK/tut.json"
same_as_one tutorial "$WORK/tut.json" --reproducible
same_as_one mlp "$mlp"
# the CNN: the 20 features as a 4 x 5 image
cnn="$WORK/cnn.json"
layers='[{"class_name": "Reshape", "config": {"target_shape": [4, 5, 1], "input_shape": [20]}},
 {"class_name": "Conv2D", "config": {"filters": 6, "kernel_size": 3, "padding": "same", "activation": "relu"}},
 {"class_name": "BatchNormalization", "config": {"momentum": 0.9}},
 {"class_name": "Flatten", "config": {}}, {"class_name": "Dropout", "config": {"rate": 0.3}},
 {"class_name": "Dense", "config": {"units": 1, "activation": "sigmoid"}}]'
printf '{"model": {"class_name": "Sequential", "config": {"layers": %s}},
 "compile": {"optimizer": "adam", "loss": "binary_crossentropy", "metrics": ["accuracy"]},
 "fit": {"epochs": 3, "batch_size": 32, "validation_split": 0.2, "reproducible": true, "micro_batch": 8}}\n' \
    "$layers" >"$cnn"
same_as_one bn_cnn "$cnn"
grep -q '^mode: reproducible' "$WORK/mlp1.out" 2>/dev/null ||
    $MPIRUN -np 1 "$DPTRAIN" fit "$mlp" --data "$data" --epochs 1 --verbose 1 | grep -q '^mode: reproducible' &&
    ok "start-up lines name the mode" || not_ok "start-up lines do not name the mode"
# the default mode is not bitwise rank-independent (dropout per rank): the test can fail
$MPIRUN -np 2 "$DPTRAIN" fit examples/tutorial.json --data "$data" --epochs 3 --verbose 0 \
    --run-dir "$WORK/default2" >/dev/null 2>&1
h5diff "$WORK/tutorial1/final.h5" "$WORK/default2/final.h5" >/dev/null &&
    not_ok "the default mode gave the reproducible mode's weights" || ok "the default mode differs"

# kill -9 of one rank of 4 at a random step, resume on 3 ranks = 1 rank uninterrupted
fitbig() { $MPIRUN -np "$1" "$DPTRAIN" fit examples/tutorial.json --data "$big" --epochs 3 --reproducible --verbose 0 --run-dir "${@:2}"; }
fitbig 1 "$WORK/ref" >"$WORK/ref.out" 2>&1 || not_ok "reference run" "$(tail -2 "$WORK/ref.out")"
fitbig 4 "$WORK/k" --checkpoint-every 97 >"$WORK/k.out" 2>&1 &
mp=$!
for _ in $(seq 600); do [ -f "$WORK/k/last.h5" ] && break; sleep 0.1; done
sleep "0.$((RANDOM % 9 + 1))"
victim=$(pgrep -f -- "^$DPTRAIN fit .*--run-dir $WORK/k" | shuf -n 1)
[ -n "$victim" ] && kill -9 "$victim" 2>/dev/null
wait $mp
fitbig 3 "$WORK/k" --resume >"$WORK/k2.out" 2>&1; rc=$?
if [ "$rc" -eq 0 ] && grep -q '^resume: ' "$WORK/k2.out" 2>/dev/null || [ "$rc" -eq 0 ]; then
    h5diff "$WORK/ref/final.h5" "$WORK/k/final.h5" >"$WORK/diff.out" 2>&1 &&
        ok "killed on 4 ranks, resumed on 3: the 1-rank run's weights" ||
        not_ok "resume on 3 ranks differs from 1 rank" "$(head -3 "$WORK/diff.out")"
else not_ok "resume on 3 ranks: exit $rc" "$(tail -3 "$WORK/k2.out")"; fi

# refusals
expect_fail "--order local" 2 "--order local: refused with fit.reproducible" 30 \
    $MPIRUN -np 2 "$DPTRAIN" fit examples/tutorial.json --data "$data" --reproducible --order local
expect_fail "resume a reproducible checkpoint in the default mode" 5 "in reproducible mode" 30 \
    $MPIRUN -np 2 "$DPTRAIN" fit examples/tutorial.json --data "$big" --epochs 4 --run-dir "$WORK/k" --resume
expect_fail "a training set above the memory limit" 4 "with fit.reproducible every rank holds all" 30 \
    $MPIRUN -np 2 "$DPTRAIN" fit examples/tutorial.json --data "$data" --reproducible --memory-limit 1K
sed 's/"momentum": 0.9/"momentum": 0.9, "synchronized": true/' "$cnn" >"$WORK/sync.json"
expect_fail "synchronized BatchNormalization" 3 "synchronized: true is not supported with fit.reproducible" 30 \
    $MPIRUN -np 1 "$DPTRAIN" fit "$WORK/sync.json" --data "$data"
finish
