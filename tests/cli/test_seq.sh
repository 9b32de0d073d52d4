#!/usr/bin/env bash
# Sequence layers end to end under mpirun: a Conv1D (causal, dilated, strided) + pooling model on
# the adding problem (`dptrain data adding`) and an Embedding -> Conv1D -> GlobalMaxPooling1D model
# on token ids (written by `dptrain data csv`) train on 1 and 3 ranks with the replicas compared
# every step, and 3 ranks end with 1 rank's weights (SGD, no dropout: the same global batches).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC"
"$DPTRAIN" data adding --samples 300 --steps 30 --seed 4 --out "$WORK/add.h5" >/dev/null &&
    ok "data adding writes the adding problem" || not_ok "data adding"
{
    echo "t0,t1,t2,t3,t4,t5,label"
    for i in $(seq 0 239); do
        a=$((i % 7)) b=$(((i * 3) % 7)) c=$(((i * 5 + 1) % 7))
        echo "$a,$b,$c,$(((a + b) % 7)),$(((b + c) % 7)),$(((i / 7) % 7)),$((a % 3))"
    done
} >"$WORK/ids.csv"
"$DPTRAIN" data csv "$WORK/ids.csv" --label label --out "$WORK/ids.h5" >/dev/null
for m in conv1d:add embedding:ids; do
    name=${m%%:*} data=$WORK/${m##*:}.h5 cfg=tests/data/configs/seq_$name.json
    for np in 1 3; do
        $MPIRUN -np "$np" "$DPTRAIN" fit "$cfg" --data "$data" --check-replicas 1 \
            --run-dir "$WORK/$name$np" --verbose 0 >"$WORK/$name$np.out" 2>&1
        rc=$?
        [ "$rc" -eq 0 ] && ok "$name model on $np rank(s), replicas checked every step" ||
            not_ok "$name model on $np ranks: exit $rc" "$(tail -3 "$WORK/$name$np.out")"
    done
    h5diff -p 1e-4 "$WORK/${name}1/final.h5" "$WORK/${name}3/final.h5" >"$WORK/$name.diff" 2>&1 &&
        ok "$name model: 3 ranks end with 1 rank's weights (relative 1e-4)" ||
        not_ok "$name model: 1 vs 3 ranks" "$(head -5 "$WORK/$name.diff")"
done
# two epochs of SGD do not solve the adding problem; the history must hold a loss per epoch
awk -F, 'NR > 1 && $2 + 0 == $2 {n++} END {exit !(n == 2)}' "$WORK/conv1d1/history.csv" &&
    ok "adding problem: a loss per epoch in history.csv" ||
    not_ok "adding history" "$(cat "$WORK/conv1d1/history.csv")"
finish
