#!/usr/bin/env bash
# evaluate and predict end to end: results independent of the rank count and in input order;
# Monte Carlo dropout: reproducible for a seed across rank counts, zero spread when every dropout
# rate is 0, more spread with a higher rate; Keras-written weights predict what Keras predicted.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC"

data="$WORK/d.h5"
"$DPTRAIN" data synth --samples 700 --features 20 --seed 3 --out "$data" >/dev/null
$MPIRUN -np 2 "$DPTRAIN" fit examples/tutorial.json --data "$data" --epochs 3 --run-dir "$WORK/run" \
    --verbose 0 >"$WORK/fit.out" 2>&1 || not_ok "training the model" "$(tail -3 "$WORK/fit.out")"

# mean of a 1-D or (N,1) float dataset, from h5dump
h5mean() { h5dump -d "$2" -y -w 0 "$1" | awk '/DATA \{/{on=1;next} /\}/{on=0} on{gsub(/[(),:0-9]+: /,"");n=split($0,a,/[ ,]+/);for(i=1;i<=n;i++)if(a[i]!=""){s+=a[i];c++}} END{printf "%.9f", s/c}'; }

run_cmd "$WORK/e1" 30 $MPIRUN -np 1 "$DPTRAIN" evaluate "$WORK/run/last.h5" --data "$data:train"
run_cmd "$WORK/e3" 30 $MPIRUN -np 3 "$DPTRAIN" evaluate "$WORK/run/last.h5" --data "$data:train"
l1=$(grep -o 'loss: [0-9.]*' "$WORK/e1.out"); l3=$(grep -o 'loss: [0-9.]*' "$WORK/e3.out")
[ -n "$l1" ] && [ "$l1" = "$l3" ] && grep -q '(700 samples)' "$WORK/e3.out" &&
    ok "evaluate: same $l1 on 1 and 3 ranks over 700 samples" || not_ok "evaluate" "$l1 vs $l3" "$(cat "$WORK/e3.err")"

$MPIRUN -np 1 "$DPTRAIN" predict "$WORK/run/last.h5" --data "$data" --out "$WORK/p1.h5" >/dev/null 2>&1
$MPIRUN -np 3 "$DPTRAIN" predict "$WORK/run/last.h5" --data "$data" --out "$WORK/p3.h5" >/dev/null 2>&1
# sgemm may round differently for another batch split: equal to 1e-6, not bit for bit
h5diff -d 1e-6 "$WORK/p1.h5" "$WORK/p3.h5" >/dev/null 2>&1 && ok "predict on 3 ranks = 1 rank (to 1e-6), rows in input order" ||
    not_ok "predict differs between 1 and 3 ranks"
h5dump -H "$WORK/p3.h5" | grep -q 'SIMPLE { ( 700, 1 )' && ok "predict writes /pred (700, 1)" || not_ok "pred shape"

# Monte Carlo dropout
mc() { $MPIRUN -np "$1" "$DPTRAIN" predict "$WORK/run/final.h5" --config "$2" --data "$data" \
           --out "$3" --mc-samples 16 --seed 9 >"$WORK/mc.out" 2>&1; }
sed 's/"rate": 0.5/"rate": 0.0/g' examples/tutorial.json >"$WORK/rate0.json"
sed 's/"rate": 0.5/"rate": 0.2/g' examples/tutorial.json >"$WORK/rate2.json"
mc 1 examples/tutorial.json "$WORK/m1.h5"; mc 2 examples/tutorial.json "$WORK/m2.h5"
h5diff -d 1e-6 "$WORK/m1.h5" "$WORK/m2.h5" >/dev/null 2>&1 && ok "MC dropout: same result on 1 and 2 ranks for one seed" ||
    not_ok "MC dropout differs across rank counts" "$(cat "$WORK/mc.out")"
mc 2 "$WORK/rate0.json" "$WORK/m0.h5"; mc 2 "$WORK/rate2.json" "$WORK/m02.h5"
s0=$(h5mean "$WORK/m0.h5" /std); s2=$(h5mean "$WORK/m02.h5" /std); s5=$(h5mean "$WORK/m2.h5" /std)
echo "# mean std over samples: rate 0: $s0, rate 0.2: $s2, rate 0.5: $s5"
awk -v a="$s0" -v b="$s2" -v c="$s5" 'BEGIN{exit !(a == 0 && b > 0 && c > b)}' &&
    ok "MC spread is 0 at rate 0 and grows with the rate ($s2 < $s5)" || not_ok "MC spread: $s0, $s2, $s5"
mc 1 examples/tutorial.json "$WORK/m1b.h5"; mc 1 examples/tutorial.json "$WORK/m1c.h5"
h5diff "$WORK/m1b.h5" "$WORK/m1c.h5" >/dev/null 2>&1 && ok "MC dropout reproducible for a seed" || not_ok "MC not reproducible"

# Keras-written weights (Keras 3.8 legacy .h5 from the fixtures) predict what Keras predicted
fx=${DPT_FIXTURES_DIR:-$SRC/../shared/fixtures/keras}/k3.8.0_churn_legacy_h5
if [ -f "$fx/model.h5" ]; then
    cat >"$WORK/churn.json" <<'JSON'
{"model": {"class_name": "Sequential", "config": {"layers": [
   {"class_name": "InputLayer", "config": {"batch_shape": [null, 12]}},
   {"class_name": "Dense", "config": {"units": 64, "activation": "relu"}},
   {"class_name": "Dense", "config": {"units": 32, "activation": "relu"}},
   {"class_name": "Dense", "config": {"units": 1, "activation": "sigmoid"}}]}},
 "compile": {"optimizer": "adam", "loss": "binary_crossentropy", "metrics": ["accuracy"]}}
JSON
    { echo "f1,f2,f3,f4,f5,f6,f7,f8,f9,f10,f11,f12,y"
      echo "-0.53598516,0.91324755,0.10479359,-0.69539349,-0.25781119,0.80843615,0.64920267,0.97481699,-0.87683221,1.00150113,-0.57946723,-0.57638802,0"; } >"$WORK/churn.csv"
    "$DPTRAIN" data csv "$WORK/churn.csv" --label y --out "$WORK/churn.h5" >/dev/null
    "$DPTRAIN" predict "$fx/model.h5" --config "$WORK/churn.json" --data "$WORK/churn.h5" \
        --out "$WORK/churn_pred.h5" >"$WORK/k.out" 2>&1
    got=$(h5mean "$WORK/churn_pred.h5" /pred)
    awk -v g="$got" 'BEGIN{d=g-0.01505672; exit !(d < 1e-5 && d > -1e-5)}' &&
        ok "Keras 3.8 weights: predict gives $got, Keras gave 0.01505672" ||
        not_ok "Keras fixture prediction: $got" "$(cat "$WORK/k.out")"
else
    echo "# Keras fixtures not present: fixture check not run"
fi

expect_fail "predict without --out" 2 '--out' 10 "$DPTRAIN" predict "$WORK/run/last.h5" --data "$data"
expect_fail "Keras weights without --config" 5 'not a dptrain checkpoint' 10 \
    $MPIRUN -np 2 "$DPTRAIN" predict "$WORK/run/final.h5" --data "$data" --out "$WORK/x.h5"
printf 'not hdf5' >"$WORK/bad.h5"
expect_fail "evaluate a file that is not HDF5" 5 "$WORK/bad.h5" 10 \
    $MPIRUN -np 3 "$DPTRAIN" evaluate "$WORK/bad.h5" --data "$data"
finish
