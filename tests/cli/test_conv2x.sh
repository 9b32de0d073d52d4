#!/usr/bin/env bash
# Weight constraints under mpirun: a CNN with ZeroPadding2D, SeparableConv2D, dilated Conv2D,
# UpSampling2D, Cropping2D and DepthwiseConv2D, MaxNorm / UnitNorm / NonNeg / MinMaxNorm on its
# kernels and an activity regularizer trains on 1, 2 and 3 ranks with both gradient exchanges,
# the replicas compared every step (constraints run on every rank's whole copy after the gather),
# and 3 ranks end with 1 rank's weights.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC"
cfg=tests/data/configs/cnn_constraints.json
data="$WORK/d.h5"
"$DPTRAIN" data synth --samples 240 --features 64 --seed 2 --out "$data" >/dev/null
for reduce in shm mpi; do
    for np in 1 2 3; do
        $MPIRUN -np "$np" "$DPTRAIN" fit "$cfg" --data "$data" --reduce "$reduce" --check-replicas 1 \
            --run-dir "$WORK/$reduce$np" --verbose 0 >"$WORK/$reduce$np.out" 2>&1; rc=$?
        [ "$rc" -eq 0 ] && ok "constrained CNN on $np rank(s), --reduce $reduce, replicas checked every step" ||
            not_ok "constrained CNN on $np ranks, --reduce $reduce: exit $rc" "$(tail -3 "$WORK/$reduce$np.out")"
    done
    h5diff -p 1e-4 "$WORK/${reduce}1/final.h5" "$WORK/${reduce}3/final.h5" >"$WORK/$reduce.diff" 2>&1 &&
        ok "--reduce $reduce: 3 ranks end with 1 rank's constrained weights (relative 1e-4)" ||
        not_ok "1 vs 3 ranks, --reduce $reduce" "$(head -5 "$WORK/$reduce.diff")"
done
# reproducible mode: constraints and the activity penalty give the same bits on 1 and 3 ranks
for np in 1 3; do
    $MPIRUN -np "$np" "$DPTRAIN" fit "$cfg" --data "$data" --reproducible --run-dir "$WORK/rep$np" \
        --verbose 0 >"$WORK/rep$np.out" 2>&1 || not_ok "reproducible on $np ranks" "$(tail -3 "$WORK/rep$np.out")"
done
cut -d, -f1-4 "$WORK/rep1/history.csv" >"$WORK/rep1.h"; cut -d, -f1-4 "$WORK/rep3/history.csv" >"$WORK/rep3.h"
h5diff "$WORK/rep1/final.h5" "$WORK/rep3/final.h5" >"$WORK/rep.diff" 2>&1 && cmp -s "$WORK/rep1.h" "$WORK/rep3.h" &&
    ok "--reproducible: 1 and 3 ranks give the same weights and losses, bit for bit" ||
    not_ok "--reproducible with constraints" "$(head -5 "$WORK/rep.diff")" "$(cat "$WORK/rep1.h" "$WORK/rep3.h")"
# an unknown constraint is refused naming the key (exit 3)
sed 's/"NonNeg"/"NonPositive"/' "$cfg" >"$WORK/bad.json"
"$DPTRAIN" fit "$WORK/bad.json" --data "$data" --run-dir "$WORK/bad" >"$WORK/bad.out" 2>&1; rc=$?
[ "$rc" -eq 3 ] && grep -q 'layers\[3\].config.pointwise_constraint: unknown constraint "NonPositive"' "$WORK/bad.out" &&
    ok "unknown constraint: exit 3 naming the key" || not_ok "unknown constraint: exit $rc" "$(cat "$WORK/bad.out")"
finish
