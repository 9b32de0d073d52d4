#!/usr/bin/env bash
# Recurrent models under mpirun, on the adding problem (`dptrain data adding`, 20 steps):
#  - an LSTM and a GRU with dropout 0: 2 and 3 ranks end with the 1-rank weights to 1e-5;
#  - with dropout and recurrent_dropout on, the replicas stay bit-identical (checked every step);
#  - kill -9 of a rank mid-epoch (checkpoints every 5 steps), --resume: the final weights are
#    bit-for-bit those of an uninterrupted run (recurrent masks need no state in a checkpoint).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC"
command -v h5diff >/dev/null || { echo "skipped: h5diff (hdf5-tools) not installed"; exit 77; }
data="$WORK/add.h5" big="$WORK/big.h5"
"$DPTRAIN" data adding --samples 480 --steps 20 --seed 3 --out "$data" >/dev/null
"$DPTRAIN" data adding --samples 24000 --steps 20 --seed 3 --out "$big" >/dev/null
cfg() { # NAME CELL DROPOUT RECURRENT_DROPOUT
    cat >"$WORK/$1.json" <<JSON
{"model": {"class_name": "Sequential", "config": {"layers": [
   {"class_name": "InputLayer", "config": {"batch_shape": [null, 20, 2]}},
   {"class_name": "$2", "config": {"units": 12, "return_sequences": true, "dropout": $3, "recurrent_dropout": $4}},
   {"class_name": "$2", "config": {"units": 8, "dropout": $3, "recurrent_dropout": $4}},
   {"class_name": "Dense", "config": {"units": 1}}]}},
 "compile": {"optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.01}}, "loss": "mse"},
 "fit": {"epochs": 2, "batch_size": 32, "seed": 5}}
JSON
}
for cell in LSTM GRU; do
    cfg "$cell" "$cell" 0.0 0.0
    bad=""
    for np in 1 2 3; do
        $MPIRUN -np $np "$DPTRAIN" fit "$WORK/$cell.json" --data "$data" --verbose 0 \
            --run-dir "$WORK/$cell$np" >"$WORK/$cell$np.out" 2>&1 || bad="$bad np$np:exit"
        [ $np -gt 1 ] && { h5diff -d 1e-5 "$WORK/${cell}1/final.h5" "$WORK/$cell$np/final.h5" \
            >/dev/null || bad="$bad np$np:weights"; }
    done
    [ -z "$bad" ] && ok "$cell (stacked, dropout 0): 2 and 3 ranks = 1 rank to 1e-5" ||
        not_ok "$cell: ranks differ:$bad" "$(tail -2 "$WORK/${cell}2.out")"
    cfg "${cell}d" "$cell" 0.2 0.3
    run_cmd "$WORK/${cell}d" 120 $MPIRUN -np 3 "$DPTRAIN" fit "$WORK/${cell}d.json" --data "$data" \
        --verbose 0 --check-replicas 1
    [ "$RC" -eq 0 ] && ok "$cell with dropout and recurrent_dropout: replicas identical at every step (3 ranks)" ||
        not_ok "$cell with dropout: exit $RC" "$(tail -2 "$WORK/${cell}d.err")"
done

# kill -9 mid-epoch, resume: the uninterrupted run's weights
cfg lstmk LSTM 0.2 0.3
fitk() { $MPIRUN -np 2 "$DPTRAIN" fit "$WORK/lstmk.json" --data "$big" --epochs 2 --verbose 1 --run-dir "$@"; }
fitk "$WORK/ref" >"$WORK/ref.out" 2>&1 || not_ok "reference run" "$(tail -2 "$WORK/ref.out")"
fitk "$WORK/k" --checkpoint-every 5 >"$WORK/k.out" 2>&1 &
mp=$!
for _ in $(seq 600); do [ -f "$WORK/k/last.h5" ] && break; sleep 0.1; done
sleep "0.$((RANDOM % 9 + 1))"
victim=$(pgrep -f -- "^$DPTRAIN fit .*--run-dir $WORK/k" | shuf -n 1)
[ -n "$victim" ] && kill -9 "$victim" 2>/dev/null
wait $mp; krc=$?
[ "$krc" -ne 0 ] && [ ! -f "$WORK/k/final.h5" ] && ok "a rank of the LSTM run killed mid-run (exit $krc)" ||
    not_ok "the kill did not land before the run ended (exit $krc): more samples needed"
fitk "$WORK/k" --resume >"$WORK/k2.out" 2>&1; rc=$?
if [ "$rc" -eq 0 ] && grep -q '^resume: ' "$WORK/k2.out" && h5diff "$WORK/ref/final.h5" "$WORK/k/final.h5" >"$WORK/diff.out" 2>&1; then
    ok "LSTM killed mid-epoch and resumed: bit-for-bit the uninterrupted run"
else
    not_ok "LSTM resume: exit $rc" "$(head -3 "$WORK/diff.out")" "$(tail -2 "$WORK/k2.out")"
fi
finish
