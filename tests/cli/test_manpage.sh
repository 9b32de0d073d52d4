#!/usr/bin/env bash
# The man page's fit options are the CLI's: docs/dptrain.1 holds exactly what `dptrain help
# --man` generates from the option table (src/cli/fit_opts.c), and man renders the page.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
page="$SRC/docs/dptrain.1"
run_cmd "$WORK/man" 10 "$DPTRAIN" help --man
sed -n '/^\.\\" BEGIN fit options/,/^\.\\" END fit options/p' "$page" | sed '1d;$d' >"$WORK/page-opts"
if [ "$RC" -eq 0 ] && [ -s "$WORK/man.out" ] && cmp -s "$WORK/man.out" "$WORK/page-opts"; then
    ok "docs/dptrain.1: the fit options are the generated ones"
else
    not_ok "docs/dptrain.1: fit options differ from 'dptrain help --man' (regenerate the block)" \
        "$(diff "$WORK/man.out" "$WORK/page-opts" | head -5)"
fi
n_table=$(grep -c '^\.TP' "$WORK/man.out")
n_parsed=$("$DPTRAIN" --help | grep -cE '^      --')
[ "$n_table" -eq "$n_parsed" ] && ok "overview and man page list the same $n_table options" ||
    not_ok "overview lists $n_parsed options, man page $n_table"
if command -v man >/dev/null 2>&1; then
    MANWIDTH=80 man -l "$page" >"$WORK/rendered" 2>"$WORK/man.err" &&
        grep -q -- "--checkpoint-every" "$WORK/rendered" && ok "man renders the page" ||
        not_ok "man -l docs/dptrain.1" "$(head -3 "$WORK/man.err")"
fi
finish
