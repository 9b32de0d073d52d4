#!/usr/bin/env bash
# compile.metrics through the CLI: the history columns NAME / val_NAME, the same values at 1 and
# 3 ranks (sums across ranks, not means of means), a resume from a mid-epoch checkpoint (on
# another rank count) reporting exactly the uninterrupted run's metrics, `dptrain evaluate`
# printing them, a from_logits loss, and a metric that cannot apply refused (exit 3).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

data="$WORK/d.h5"
run_cmd "$WORK/synth" 60 "$DPTRAIN" data synth --samples 600 --features 8 --seed 1 --out "$data"
[ "$RC" -eq 0 ] || { not_ok "data synth" "$(cat "$WORK/synth.err")"; finish; exit 1; }
config() { # config FILE LOSS LAST_ACTIVATION METRICS_JSON
    cat >"$1" <<EOF
{"model": {"class_name": "Sequential", "config": {"layers": [
  {"class_name": "Dense", "config": {"units": 16, "activation": "relu", "input_dim": 8}},
  {"class_name": "Dense", "config": {"units": 1, "activation": "$3"}}]}},
 "compile": {"optimizer": "adam", "loss": $2, "metrics": $4},
 "fit": {"epochs": 3, "batch_size": 32, "validation_split": 0.2, "seed": 3},
 "data": {"path": "$data"}}
EOF
}
METRICS='["accuracy", "auc", {"class_name": "AUC", "config": {"name": "prauc", "curve": "PR"}},
  "precision", "recall", "mae", {"class_name": "RootMeanSquaredError"}, "binary_crossentropy"]'
config "$WORK/c.json" '"binary_crossentropy"' sigmoid "$METRICS"

run_cmd "$WORK/fit1" 120 $MPIRUN -np 1 "$DPTRAIN" fit "$WORK/c.json" --run-dir "$WORK/r1" \
    --checkpoint-every 4 --keep 50
h1=$(head -1 "$WORK/r1/history.csv")
want="epoch,loss,accuracy,val_loss,val_accuracy,seconds,samples_per_s,learning_rate,ranks,auc,val_auc,prauc,val_prauc,precision,val_precision,recall,val_recall,mae,val_mae,root_mean_squared_error,val_root_mean_squared_error,binary_crossentropy,val_binary_crossentropy"
[ "$RC" -eq 0 ] && [ "$h1" = "$want" ] && ok "history.csv: a column NAME and val_NAME per metric" ||
    not_ok "history header" "exit $RC" "$h1" "$(tail -3 "$WORK/fit1.err")"
grep -qE '^Epoch 3/3 - .* - accuracy: [0-9.]+ - auc: [0-9.]+ - prauc: .* - val_accuracy: [0-9.]+ - val_auc: [0-9.]+ - val_prauc' \
    "$WORK/fit1.out" && ok "the epoch line names every metric and its val_ form" ||
    not_ok "epoch line" "$(grep 'Epoch 3' "$WORK/fit1.out")"
python3 - "$WORK/r1/history.jsonl" <<'EOF' >"$WORK/json.out" 2>&1 && ok "history.jsonl has the metric keys" || not_ok "jsonl" "$(cat "$WORK/json.out")"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    assert 0 < r["auc"] < 1 and 0 < r["val_prauc"] < 1 and r["ranks"] == 1, r
EOF

# the same run at 3 ranks: the metrics are sums over the ranks, the values the same
run_cmd "$WORK/fit3" 120 $MPIRUN -np 3 "$DPTRAIN" fit "$WORK/c.json" --run-dir "$WORK/r3"
cmp_cols() { # the metric and loss columns (all but seconds, samples/s, ranks) within 2e-6
    paste -d, <(cut -d, -f1-5,10- "$1") <(cut -d, -f1-5,10- "$2") | tail -n +2 |
        awk -F, '{ n = NF / 2; for (i = 1; i <= n; i++) { d = $i - $(i + n); if (d < 0) d = -d;
                   if (d > 2e-6) { print "row " NR " column " i ": " $i " vs " $(i + n); bad = 1 } } }
                 END { exit bad }'
}
[ "$RC" -eq 0 ] && out=$(cmp_cols "$WORK/r1/history.csv" "$WORK/r3/history.csv") &&
    ok "3 ranks report the 1-rank metrics" || not_ok "1 vs 3 ranks" "exit $RC" "$out"

# resume at 2 ranks from the checkpoint after step 5 of epoch 2: the same history
mkdir -p "$WORK/rr"
cp "$WORK/r1"/ckpt-000001-* "$WORK/r1"/ckpt-000002-000000016.h5 "$WORK/r1"/ckpt-000002-000000020.h5 \
    "$WORK/r1/history.csv" "$WORK/rr/"
run_cmd "$WORK/res" 120 $MPIRUN -np 2 "$DPTRAIN" fit "$WORK/c.json" --run-dir "$WORK/rr" --resume
[ "$RC" -eq 0 ] && grep -q "resume: .*ckpt-000002-000000020.h5: epoch 2, step 5" "$WORK/res.out" &&
    out=$(cmp_cols "$WORK/r1/history.csv" "$WORK/rr/history.csv") &&
    ok "a mid-epoch resume (2 ranks, from 1) reports the uninterrupted run's metrics" ||
    not_ok "mid-epoch resume" "exit $RC" "$out" "$(grep resume "$WORK/res.out")"

# evaluate prints the metrics
run_cmd "$WORK/ev" 60 $MPIRUN -np 2 "$DPTRAIN" evaluate "$WORK/r1/final.h5" --config "$WORK/c.json" \
    --data "$data:train"
grep -qE '^loss: [0-9.]+ - accuracy: [0-9.]+ - auc: [0-9.]+ - prauc: [0-9.]+ - precision: .* - binary_crossentropy: [0-9.]+ \(600 samples\)$' \
    "$WORK/ev.out" && ok "evaluate prints every metric" || not_ok "evaluate" "$(cat "$WORK/ev.out" "$WORK/ev.err")"

# from_logits: a linear last layer, nothing folded
config "$WORK/l.json" '{"class_name": "BinaryCrossentropy", "config": {"from_logits": true}}' linear \
    '["accuracy", {"class_name": "AUC", "config": {"from_logits": true}}]'
run_cmd "$WORK/fl" 120 $MPIRUN -np 2 "$DPTRAIN" fit "$WORK/l.json"
[ "$RC" -eq 0 ] && grep -qE '^Epoch 3/3 .* - auc: 0\.[0-9]+ .*val_auc: 0\.[0-9]+$' "$WORK/fl.out" &&
    ok "BinaryCrossentropy(from_logits=True) with AUC(from_logits=True) trains" ||
    not_ok "from_logits" "exit $RC" "$(tail -3 "$WORK/fl.out" "$WORK/fl.err")"

# EarlyStopping on a metric (mode auto: AUC is "up"): it stops at the first epoch whose val_auc
# does not beat the best so far, as Keras's
python3 - "$WORK/c.json" "$WORK/es.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["fit"]["epochs"] = 12
c["fit"]["callbacks"] = [{"class_name": "EarlyStopping", "config": {"monitor": "val_auc"}}]
json.dump(c, open(sys.argv[2], "w"))
EOF
run_cmd "$WORK/es" 120 $MPIRUN -np 2 "$DPTRAIN" fit "$WORK/es.json" --run-dir "$WORK/res_es"
out=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "val_auc") c = i; next }
         { v = $c; if (NR > 2 && v <= best) stop = NR - 1; if (NR == 2 || v > best) best = v;
           if (stop) { print stop; exit } } END { if (!stop) print "none" }' "$WORK/res_es/history.csv")
n=$(($(wc -l <"$WORK/res_es/history.csv") - 1))
[ "$RC" -eq 0 ] && { { [ "$out" = none ] && [ "$n" -eq 12 ]; } || [ "$out" = "$n" ]; } &&
    ok "EarlyStopping(monitor=val_auc) stops at the first epoch without a better val_auc ($n epochs)" ||
    not_ok "EarlyStopping val_auc" "exit $RC, stop $out, rows $n" "$(cut -d, -f1,11 "$WORK/res_es/history.csv")"

config "$WORK/bad.json" '"binary_crossentropy"' sigmoid '["accuracy", "sparse_categorical_accuracy"]'
expect_fail "a sparse metric with one output: exit 3 naming it" 3 \
    "$WORK/bad.json: compile.metrics: metric \"sparse_categorical_accuracy\" needs one class index per sample" \
    30 $MPIRUN -np 2 "$DPTRAIN" fit "$WORK/bad.json"
sed 's/"seed": 3}/"seed": 3, "reproducible": true}/' "$WORK/c.json" >"$WORK/rep.json"
expect_fail "a metric besides accuracy with fit.reproducible: exit 3 naming it" 3 \
    "$WORK/rep.json: compile.metrics: \"auc\" with fit.reproducible: not supported yet" \
    30 $MPIRUN -np 2 "$DPTRAIN" fit "$WORK/rep.json"
finish
