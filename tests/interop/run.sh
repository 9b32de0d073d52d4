#!/usr/bin/env bash
# Keras interop: dptrain's weight files and checkpoints load in real Keras, and Keras's load in
# dptrain, with equal predictions and equal training. Exit 77 (skipped) when Keras cannot be
# imported.
#   tests/interop/run.sh PATH/TO/predict_dump [SCRIPT.py]   (default keras_roundtrip.py)
# The script gets PREDICT_DUMP WORKDIR as arguments and DPTRAIN_BIN (the dptrain binary next to
# predict_dump) in its environment; tests/interop/parity.py is the shared harness.
# Python: $DPT_KERAS_PYTHON (e.g. a venv with `pip install keras jax h5py`), else python3.
# KERAS_BACKEND defaults to jax when jax is importable (a far smaller install than TensorFlow).
set -u
dump=${1:-${PREDICT_DUMP:-}}
script=${2:-keras_roundtrip.py}
[ -n "$dump" ] && [ -x "$dump" ] || { echo "usage: $0 PATH/TO/predict_dump [SCRIPT.py]" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=${DPT_KERAS_PYTHON:-python3}
if [ -z "${KERAS_BACKEND:-}" ] && "$py" -c "import jax" >/dev/null 2>&1; then
    export KERAS_BACKEND=jax
fi
if ! "$py" -c "import keras, numpy, h5py" >/dev/null 2>&1; then
    echo "skipped: keras is not importable by $py (set DPT_KERAS_PYTHON)"
    exit 77
fi
dump="$(cd "$(dirname "$dump")" && pwd)/$(basename "$dump")"
export DPTRAIN_BIN=${DPTRAIN_BIN:-$(dirname "$dump")/dptrain}
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
work=$(mktemp -d "${TMPDIR:-/tmp}/dpt-interop-XXXXXX")
trap 'rm -rf "$work"' EXIT
"$py" "$here/$script" "$dump" "$work"
