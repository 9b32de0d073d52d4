#!/usr/bin/env bash
# Beyond Dense, end to end under mpirun: a Conv2D + BatchNormalization + SpatialDropout2D model with
# an L2 regularizer trains on 1, 2 and 3 ranks with the replicas compared EVERY step (moving
# statistics included); ReduceLROnPlateau lowers the learning rate and EarlyStopping stops and
# restores the best weights, as Keras does; a preempted run with these resumes to the same weights.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$SRC/tests/slurm/weights.sh"
cd "$SRC"
cfg=tests/data/configs/cnn_bn_callbacks.json
data="$WORK/d.h5"
"$DPTRAIN" data synth --samples 400 --features 64 --seed 2 --out "$data" >/dev/null
for np in 1 2 3; do
    $MPIRUN -np "$np" "$DPTRAIN" fit "$cfg" --data "$data" --check-replicas 1 --run-dir "$WORK/r$np" \
        >"$WORK/r$np.out" 2>&1; rc=$?
    [ "$rc" -eq 0 ] && ok "CNN + BN + regularizer on $np rank(s), replicas checked every step" ||
        not_ok "CNN on $np ranks: exit $rc" "$(tail -3 "$WORK/r$np.out")"
done
grep -q '^ReduceLROnPlateau: learning rate reduced to 0.0005' "$WORK/r2.out" &&
    awk -F, 'NR==4 && $8 == 0.0005 {f=1} END {exit !f}' "$WORK/r2/history.csv" &&
    ok "ReduceLROnPlateau halves the learning rate (history shows it)" || not_ok "ReduceLROnPlateau" "$(cat "$WORK/r2/history.csv")"
epochs=$(($(wc -l <"$WORK/r2/history.csv") - 1))
grep -q '^EarlyStopping: stopped after epoch' "$WORK/r2.out" && grep -q '^EarlyStopping: restored the weights of epoch' "$WORK/r2.out" &&
    [ "$epochs" -lt 12 ] && ok "EarlyStopping stopped after $epochs of 12 epochs and restored the best weights" ||
    not_ok "EarlyStopping" "$(grep -i early "$WORK/r2.out")"
# 1 rank vs 3 ranks: same global batches; synchronized batch norm normalizes with the global batch
# (SGD, and no conv bias in front of BN: a bias whose gradient is ~0 is pure rounding noise)
sed 's/"rate": 0.2/"rate": 0.0/; s/"BatchNormalization", "config": {}/"BatchNormalization", "config": {"synchronized": true}/;
     s/"optimizer": "adam"/"optimizer": "sgd"/; s/"padding": "same",/"padding": "same", "use_bias": false,/' \
    "$cfg" >"$WORK/nodrop.json"
$MPIRUN -np 1 "$DPTRAIN" fit "$WORK/nodrop.json" --data "$data" --epochs 2 --run-dir "$WORK/n1" --verbose 0 >/dev/null 2>&1
$MPIRUN -np 3 "$DPTRAIN" fit "$WORK/nodrop.json" --data "$data" --epochs 2 --run-dir "$WORK/n3" --verbose 0 >/dev/null 2>&1
h5diff -p 1e-4 "$WORK/n1/final.h5" "$WORK/n3/final.h5" >"$WORK/n.diff" 2>&1 &&
    ok "synchronized BN, no dropout: 3 ranks end with 1 rank's weights and moving statistics (relative 1e-4)" ||
    not_ok "1 vs 3 ranks with batch norm" "$(head -5 "$WORK/n.diff")"
# preempt + resume with BN and callbacks: the same weights as uninterrupted
$MPIRUN -np 2 "$DPTRAIN" fit "$cfg" --data "$data" --epochs 4 --run-dir "$WORK/u" --verbose 0 >/dev/null 2>&1
$MPIRUN -np 2 "$DPTRAIN" fit "$cfg" --data "$data" --epochs 4 --run-dir "$WORK/p" --checkpoint-every 5 --keep 100 --verbose 0 >/dev/null 2>&1
# a run cut after its first checkpoints: keep the ckpt at global step 10, drop the later ones
ck=$(ls "$WORK/p"/ckpt-*-000000010.h5 2>/dev/null | head -1)
if [ -n "$ck" ]; then
    cp "$ck" "$WORK/keep.h5"; rm -f "$WORK/p"/*.h5; cp "$WORK/keep.h5" "$WORK/p/last.h5"
    $MPIRUN -np 2 "$DPTRAIN" fit "$cfg" --data "$data" --epochs 4 --run-dir "$WORK/p" --resume >"$WORK/p.out" 2>&1
    same_weights "$WORK/u/final.h5" "$WORK/p/final.h5" && ok "resumed from step 10 (BN, callbacks): same weights" ||
        not_ok "resume with BN and callbacks" "$WEIGHTS_DIFF" "$(tail -3 "$WORK/p.out")"
else
    not_ok "no checkpoint at global step 10" "$(ls "$WORK/p")"
fi
finish
