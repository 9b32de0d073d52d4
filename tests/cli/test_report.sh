#!/usr/bin/env bash
# Rank 0's output and the run directory's history: the epoch line in a file (no carriage
# returns), the progress bar on a real terminal (script(1) gives mpirun a pty) and never in a
# log, --verbose 0/1/2, history.csv / history.jsonl / history.svg contents, resume keeping the
# earlier epochs in all three, `dptrain plot` (same SVG as fit's; every error path with its exit
# code, file and line), and `dptrain help COMMAND` listing every option the parsers accept.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC"

EPOCH_RE='^Epoch [0-9]+/[0-9]+ - [0-9.]+s - loss: [0-9.]+ - accuracy: [0-9.]+ - val_loss: [0-9.]+ - val_accuracy: [0-9.]+$'
data="$WORK/tutorial.h5"
run_cmd "$WORK/synth" 60 "$DPTRAIN" data synth --samples 2000 --features 20 --seed 3 --out "$data"
[ "$RC" -eq 0 ] || { not_ok "data synth" "$(cat "$WORK/synth.err")"; finish; exit 1; }
FIT=($MPIRUN -np 2 "$DPTRAIN" fit examples/tutorial.json --data "$data")
has_cr() { grep -q $'\r' "$1"; }

# ---- a log file: one line per epoch, nothing else -------------------------------------------
run_cmd "$WORK/fit" 120 "${FIT[@]}" --epochs 3 --run-dir "$WORK/run"
n=$(grep -cE "$EPOCH_RE" "$WORK/fit.out")
if [ "$RC" -eq 0 ] && [ "$n" -eq 3 ] && ! has_cr "$WORK/fit.out" && ! grep -q $'\e' "$WORK/fit.out"; then
    ok "fit to a file under mpirun: 3 epoch lines, no carriage return, no escape code"
else not_ok "fit to a file" "exit $RC, $n epoch lines" "$(cat -A "$WORK/fit.out" | tail -4)"; fi
grep -q '^data: .*train, .*validation samples; about .* per rank$' "$WORK/fit.out" &&
    grep -q '^placement: 2 ranks' "$WORK/fit.out" && grep -q "^run directory: $WORK/run$" "$WORK/fit.out" &&
    ok "fit prints data sizes per rank, placement and run directory first" ||
    not_ok "fit preamble" "$(head -20 "$WORK/fit.out")"

csv="$WORK/run/history.csv"
[ "$(head -1 "$csv")" = "epoch,loss,accuracy,val_loss,val_accuracy,seconds,samples_per_s,learning_rate,ranks" ] &&
    ok "history.csv header: the original 7 columns first, learning_rate,ranks appended" ||
    not_ok "history.csv header" "$(head -1 "$csv")"
bad=$(tail -n +2 "$csv" | awk -F, 'NF != 9 || $1 != NR || $8 != "0.001" || $9 != "2" || $2 == "" || $4 == ""' | wc -l)
[ "$(tail -n +2 "$csv" | wc -l)" -eq 3 ] && [ "$bad" -eq 0 ] &&
    ok "history.csv: 3 rows, epochs 1..3, learning rate 0.001, 2 ranks" || not_ok "history.csv rows" "$(cat "$csv")"
# the epoch lines print what history.csv holds (4 decimals of the 6)
l2=$(awk -F, 'NR == 3 { printf "loss: %.4f - accuracy: %.4f - val_loss: %.4f", $2, $3, $4 }' "$csv")
grep -qF -- "- $l2 -" "$WORK/fit.out" && ok "epoch line and history.csv agree" ||
    not_ok "epoch 2 line vs csv" "$l2" "$(grep 'Epoch 2/' "$WORK/fit.out")"

if command -v python3 >/dev/null; then
    py_out=$(python3 - "$WORK/run/history.jsonl" "$csv" <<'EOF' 2>&1
import csv, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds",
        "samples_per_s", "ranks"]
assert len(rows) == 3, len(rows)
for i, r in enumerate(rows):
    assert list(r) == keys, list(r)
    assert r["epoch"] == i + 1 and r["ranks"] == 2 and r["learning_rate"] == 0.001, r
c = list(csv.DictReader(open(sys.argv[2])))
for r, k in zip(rows, c):
    for key in keys:
        assert abs(float(k[key]) - r[key]) < 1e-9, (key, k[key], r[key])
print("ok")
EOF
    )
    [ "$py_out" = ok ] && ok "history.jsonl: one object per epoch, the same numbers as history.csv" ||
        not_ok "history.jsonl" "$py_out"
    py_out=$(python3 - "$WORK/run/history.svg" <<'EOF' 2>&1
import sys, xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
texts = [t.text or "" for t in root.iter(ns + "text")]
for need in ["loss", "accuracy", "train", "validation", "epoch"]:
    assert need in texts, (need, texts)
assert any("3 epochs, 2 ranks" in t for t in texts), texts
paths = list(root.iter(ns + "path"))
assert len(paths) == 4, len(paths)  # loss, val_loss, accuracy, val_accuracy
for p in paths:
    assert p.get("d").count("L") == 2, p.get("d")  # 3 points each
print("ok")
EOF
    )
    [ "$py_out" = ok ] && ok "history.svg: valid XML, two panels, 4 curves of 3 points, legend, axis labels" ||
        not_ok "history.svg" "$py_out"
else
    echo "# python3 missing: JSON and XML checks skipped"
fi

# ---- verbose levels and the progress bar ------------------------------------------------------
run_cmd "$WORK/v0" 120 "${FIT[@]}" --epochs 2 --verbose 0 --run-dir "$WORK/v0run"
[ "$RC" -eq 0 ] && [ ! -s "$WORK/v0.out" ] && [ "$(tail -n +2 "$WORK/v0run/history.csv" | wc -l)" -eq 2 ] &&
    ok "--verbose 0: nothing on stdout, history still written" || not_ok "--verbose 0" "exit $RC" "$(head -3 "$WORK/v0.out")"

run_cmd "$WORK/force" 120 env DPTRAIN_PROGRESS=1 COLUMNS=120 $MPIRUN -np 2 "$DPTRAIN" fit examples/tutorial.json \
    --data "$data" --epochs 2
if [ "$RC" -eq 0 ] && has_cr "$WORK/force.out" &&
    tr '\r' '\n' <"$WORK/force.out" | grep -qE '^Epoch 2/2  \[=+\] 50/50 - [0-9.ms]+ - [0-9.]+[kM]? samples/s - loss: [0-9.]+ - accuracy: [0-9.]+ *$' &&
    tr '\r' '\n' <"$WORK/force.out" | grep -qE "${EPOCH_RE%\$} *\$"; then
    ok "DPTRAIN_PROGRESS=1: the bar (steps, time, samples/s, loss, accuracy), then the epoch line"
else not_ok "forced bar" "exit $RC" "$(cat -A "$WORK/force.out" | tail -c 600)"; fi

if command -v script >/dev/null; then
    # script(1) runs mpirun on a pseudo-terminal (80 columns when it cannot learn a size)
    tty_run() { # NAME ARGS...: the typescript of fit ARGS under a pty
        local name=$1; shift
        timeout -k 2 120 script -qec "$MPIRUN -np 2 '$DPTRAIN' fit examples/tutorial.json --data '$data' $*" \
            "$WORK/$name.ts" </dev/null >/dev/null 2>&1
        RC=$?
    }
    tty_run tty1 --epochs 2 --batch-size 8
    eta=$(tr '\r' '\n' <"$WORK/tty1.ts" | grep -cE '^Epoch 1/2  \[[=>.]+\] +[0-9]+/200 .*- ETA [0-9.]+[smh]')
    wide=$(tr '\r' '\n' <"$WORK/tty1.ts" | grep -E '^Epoch [0-9/]+  \[' | awk 'length($0) > 79' | wc -l)
    final=$(tr '\r' '\n' <"$WORK/tty1.ts" | grep -cE "${EPOCH_RE%\$} *\$")
    if [ "$RC" -eq 0 ] && [ "$eta" -ge 1 ] && [ "$wide" -eq 0 ] && [ "$final" -eq 2 ]; then
        ok "terminal: the bar is redrawn with ETA ($eta draws in epoch 1), fits 80 columns, each epoch ends in its line"
    else not_ok "bar on a terminal" "exit $RC, $eta ETA draws, $wide bar lines over 79 columns, $final epoch lines" \
        "$(cat -A "$WORK/tty1.ts" | tail -c 600)"; fi
    tty_run tty2 --epochs 2 --verbose 2
    n=$(tr -d '\r' <"$WORK/tty2.ts" | grep -cE "$EPOCH_RE")
    [ "$RC" -eq 0 ] && [ "$n" -eq 2 ] && ! tr '\r' '\n' <"$WORK/tty2.ts" | grep -qE '^Epoch [0-9/]+  \[' &&
        ok "--verbose 2 on a terminal: one line per epoch, no bar" || not_ok "--verbose 2 on a tty" "exit $RC, $n lines"
    DPTRAIN_PROGRESS=0 tty_run tty3 --epochs 1
    ! tr '\r' '\n' <"$WORK/tty3.ts" | grep -qE '^Epoch [0-9/]+  \[' && ok "DPTRAIN_PROGRESS=0: no bar on a terminal" ||
        not_ok "DPTRAIN_PROGRESS=0"
else
    echo "# script(1) missing: terminal checks skipped"
fi

# ---- resume keeps the earlier epochs in all three files ---------------------------------------
run_cmd "$WORK/r1" 120 "${FIT[@]}" --epochs 2 --run-dir "$WORK/res"
cp "$WORK/res/history.csv" "$WORK/res-2.csv"
run_cmd "$WORK/r2" 120 "${FIT[@]}" --epochs 4 --run-dir "$WORK/res" --resume
if [ "$RC" -eq 0 ] && [ "$(tail -n +2 "$WORK/res/history.csv" | cut -d, -f1 | tr '\n' ' ')" = "1 2 3 4 " ] &&
    [ "$(head -3 "$WORK/res/history.csv")" = "$(cat "$WORK/res-2.csv")" ] &&
    [ "$(cut -d, -f1 "$WORK/res/history.jsonl" | tr -dc '0-9\n' | tr '\n' ' ')" = "1 2 3 4 " ] &&
    grep -q '4 epochs, 2 ranks' "$WORK/res/history.svg"; then
    ok "resume: history.csv keeps epochs 1-2 byte for byte and adds 3-4; jsonl and svg have all 4"
else not_ok "resume history" "exit $RC" "$(cat "$WORK/res/history.csv")" "$(cat "$WORK/r2.err")"; fi
run_cmd "$WORK/r3" 120 "${FIT[@]}" --epochs 1 --run-dir "$WORK/res"
[ "$RC" -eq 0 ] && [ "$(tail -n +2 "$WORK/res/history.csv" | wc -l)" -eq 1 ] && grep -q '1 epoch, 2 ranks' "$WORK/res/history.svg" &&
    ok "a new run in the same directory (no --resume) starts the history afresh" || not_ok "fresh run history"

# ---- dptrain plot -------------------------------------------------------------------------------
mv "$WORK/run/history.svg" "$WORK/fit.svg"
run_cmd "$WORK/plot" 30 "$DPTRAIN" plot "$WORK/run"
[ "$RC" -eq 0 ] && cmp -s "$WORK/run/history.svg" "$WORK/fit.svg" && grep -q "wrote $WORK/run/history.svg: 3 epochs" "$WORK/plot.out" &&
    ok "plot RUN_DIR redraws exactly the SVG fit wrote" || not_ok "plot redraw" "exit $RC" "$(cat "$WORK/plot.err")"
run_cmd "$WORK/plot2" 30 $MPIRUN -np 2 "$DPTRAIN" plot "$WORK/run" --out "$WORK/other.svg"
[ "$RC" -eq 0 ] && [ -s "$WORK/other.svg" ] && [ "$(grep -c '^wrote' "$WORK/plot2.out")" -eq 1 ] &&
    ok "plot --out FILE under mpirun: written once" || not_ok "plot --out" "exit $RC" "$(cat "$WORK/plot2.err")"

# a history from an older dptrain (7 columns), metric off (empty accuracy), a gap (NaN val_loss)
mkdir -p "$WORK/old"
printf 'epoch,loss,accuracy,val_loss,val_accuracy,seconds,samples_per_s\n1,0.9,,0.95,,0.1,100.0\n2,0.7,,,,0.1,100.0\n3,0.5,,0.6,,0.1,100.0\n' \
    >"$WORK/old/history.csv"
run_cmd "$WORK/plot3" 30 "$DPTRAIN" plot "$WORK/old"
[ "$RC" -eq 0 ] && grep -q 'no accuracy recorded' "$WORK/old/history.svg" &&
    [ "$(grep -c '<path' "$WORK/old/history.svg")" -eq 2 ] && grep -q 'd="M[0-9. ]*M' "$WORK/old/history.svg" &&
    ok "plot: a 7-column history without accuracy; a missing val_loss breaks the curve" ||
    not_ok "old history" "exit $RC" "$(cat "$WORK/plot3.err")"
if command -v rsvg-convert >/dev/null; then
    rsvg-convert "$WORK/run/history.svg" -o "$WORK/h.png" 2>"$WORK/rsvg.err" && [ -s "$WORK/h.png" ] &&
        ok "rsvg-convert renders history.svg" || not_ok "rsvg-convert" "$(cat "$WORK/rsvg.err")"
fi

mkdir -p "$WORK/empty" "$WORK/bad1" "$WORK/bad2" "$WORK/bad3" "$WORK/bad4"
printf 'epoch,loss\n1,0.5\n2,0.4,0.3\n' >"$WORK/bad1/history.csv"
printf 'epoch,loss,accuracy\n1,0.5,0.8\n2,oops,0.8\n' >"$WORK/bad2/history.csv"
printf 'when,what\n1,2\n' >"$WORK/bad3/history.csv"
printf 'epoch,loss\n' >"$WORK/bad4/history.csv"
expect_fail "plot: missing RUN_DIR is a data error" 4 "$WORK/nope: no such run directory" 10 "$DPTRAIN" plot "$WORK/nope"
expect_fail "plot: no history.csv names it" 4 "$WORK/empty/history.csv: cannot read" 10 "$DPTRAIN" plot "$WORK/empty"
expect_fail "plot: wrong field count names the line" 4 "$WORK/bad1/history.csv:3: expected 2 fields, got 3" 10 \
    "$DPTRAIN" plot "$WORK/bad1"
expect_fail "plot: a non-number names line and column" 4 "$WORK/bad2/history.csv:3: column loss: not a number: \"oops\"" 10 \
    $MPIRUN -np 2 "$DPTRAIN" plot "$WORK/bad2"
expect_fail "plot: not a history header" 4 "$WORK/bad3/history.csv:1: not a history header" 10 "$DPTRAIN" plot "$WORK/bad3"
expect_fail "plot: a header without rows" 4 "$WORK/bad4/history.csv: no epochs" 10 "$DPTRAIN" plot "$WORK/bad4"
expect_fail "plot: RUN_DIR is a file" 4 "not a directory" 10 "$DPTRAIN" plot "$csv"
expect_fail "plot: unwritable output is an I/O error" 7 "$WORK/no/dir/x.svg.tmp: cannot write" 10 \
    "$DPTRAIN" plot "$WORK/run" --out "$WORK/no/dir/x.svg"
expect_fail "plot without RUN_DIR" 2 'missing RUN_DIR' 10 "$DPTRAIN" plot
expect_fail "plot: unknown argument" 2 'unknown argument "--bogus"' 10 "$DPTRAIN" plot "$WORK/run" --bogus

# ---- dptrain help COMMAND -------------------------------------------------------------------------
# every option a parser accepts appears in that command's help
opts_in() { grep -hoE '"--[a-z][a-z-]+"' "$@" | tr -d '"' | sort -u; }
check_help() { # COMMAND SOURCE...
    local cmd=$1; shift
    run_cmd "$WORK/help-$cmd" 10 "$DPTRAIN" help "$cmd"
    local missing=""
    for o in $(opts_in "$@"); do
        case $o in --help | --version) continue ;; esac
        grep -qE -- "(^|[ [])$o([] =,]|$)" "$WORK/help-$cmd.out" || missing="$missing $o"
    done
    if [ "$RC" -eq 0 ] && [ -z "$missing" ] && grep -q 'exit codes' "$WORK/help-$cmd.out"; then
        ok "help $cmd: every option of $(basename -a "$@" | tr '\n' ' ')documented, exit codes listed"
    else not_ok "help $cmd" "exit $RC; missing:$missing"; fi
}
check_help fit src/cli/main.c src/cli/fit_opts.c
check_help predict src/cli/cmd_predict.c
check_help data src/cli/data_cmd.c
check_help plot src/cli/cmd_plot.c
run_cmd "$WORK/help-ev" 10 "$DPTRAIN" help evaluate
[ "$RC" -eq 0 ] && grep -q -- '--data FILE\[:GROUP\]' "$WORK/help-ev.out" && grep -q -- '--config' "$WORK/help-ev.out" &&
    ok "help evaluate" || not_ok "help evaluate"
run_cmd "$WORK/help-layers" 10 "$DPTRAIN" help layers
[ "$RC" -eq 0 ] && grep -qx "  LSTM" "$WORK/help-layers.out" && grep -qx "  Dense" "$WORK/help-layers.out" &&
    ok "help layers lists the registered classes" || not_ok "help layers" "exit $RC"
for cmd in summary help; do
    run_cmd "$WORK/help-$cmd" 10 "$DPTRAIN" help "$cmd"
    [ "$RC" -eq 0 ] && grep -q "usage: .*dptrain" "$WORK/help-$cmd.out" && ok "help $cmd" || not_ok "help $cmd"
done
# every command that --help lists has a help page
for cmd in $(sed -n '/^commands:/,/^$/p' <("$DPTRAIN" --help) | awk '/^  [a-z]/ {print $1}' | tr -d , | sort -u); do
    "$DPTRAIN" help "$cmd" >/dev/null 2>&1 || not_ok "--help lists $cmd but help $cmd fails"
done
expect_fail "help for an unknown command" 2 'help: unknown command "frob"' 10 "$DPTRAIN" help frob

finish
