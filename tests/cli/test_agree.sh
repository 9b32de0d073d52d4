#!/usr/bin/env bash
# Ranks that see different files (a dataset replaced or appended while the job starts, stale NFS
# attributes) must not enter mismatched collectives and hang: they agree on the split's metadata
# first and fail naming the file and what differs. Simulated with mpirun's MPMD form, each rank
# given another file under the same option.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC"
"$DPTRAIN" data synth --samples 600 --features 20 --seed 1 --out "$WORK/a.h5" >/dev/null
"$DPTRAIN" data synth --samples 700 --features 20 --seed 1 --out "$WORK/b.h5" >/dev/null
"$DPTRAIN" data synth --samples 600 --features 21 --seed 1 --out "$WORK/c.h5" >/dev/null
ln -s "$WORK/a.h5" "$WORK/same.h5"
expect_fail "ranks see files of another length" 4 \
    "the ranks see different files (the number of samples: 600 on some, 700 on others" 30 \
    $MPIRUN -np 1 "$DPTRAIN" fit examples/tutorial.json --data "$WORK/a.h5" --epochs 1 --verbose 0 : \
    -np 1 "$DPTRAIN" fit examples/tutorial.json --data "$WORK/b.h5" --epochs 1 --verbose 0
expect_fail "ranks see samples of another size" 4 "the ranks see different files (the sample size" 30 \
    $MPIRUN -np 1 "$DPTRAIN" fit examples/tutorial.json --data "$WORK/a.h5" --epochs 1 --verbose 0 : \
    -np 1 "$DPTRAIN" fit examples/tutorial.json --data "$WORK/c.h5" --epochs 1 --verbose 0
run_cmd "$WORK/same" 60 $MPIRUN -np 1 "$DPTRAIN" fit examples/tutorial.json --data "$WORK/a.h5" \
    --epochs 1 --verbose 0 : -np 1 "$DPTRAIN" fit examples/tutorial.json --data "$WORK/same.h5" \
    --epochs 1 --verbose 0
[ "$RC" -eq 0 ] && ok "the same file under two names trains" || not_ok "same file: exit $RC" "$(tail -2 "$WORK/same.err")"
finish
