#!/usr/bin/env bash
# Training throughput of the recurrent layers against PyTorch, one thread each, interleaved
# REPS times (medians printed): the Fashion-MNIST shape (28 steps x 28 features -> LSTM or GRU
# 128 -> Dense 10 softmax, Adam, batch 128, dropout 0), SAMPLES synthetic samples per epoch.
# dptrain: `dptrain fit` of examples/fmnist_{lstm,gru}.json with dropout set to 0, the epoch
# time of its second epoch; PyTorch: bench/peers/torch_lstm.py (nn.LSTM / nn.GRU, batch_first).
# Both with the OpenBLAS kernel given by OPENBLAS_CORETYPE when set (PyTorch's Debian build
# uses the system BLAS too).
#
#   bench/rnn_throughput.sh [BUILD_DIR]     env: SAMPLES (12800), REPS (3), CELLS ("lstm gru")
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${1:-build}
samples=${SAMPLES:-12800} reps=${REPS:-3}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" - "$tmp" "$samples" <<'PY'
import json, sys
import h5py, numpy as np
tmp, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
with h5py.File(tmp + "/seq.h5", "w") as f:
    g = f.create_group("train")
    g["x"] = rng.uniform(size=(n, 28, 28)).astype(np.float32)
    g["y"] = rng.integers(0, 10, size=n)
for cell in ("lstm", "gru"):
    c = json.load(open("examples/fmnist_%s.json" % cell))
    for l in c["model"]["config"]["layers"]:
        if l["class_name"] in ("LSTM", "GRU"):
            l["config"]["dropout"] = l["config"]["recurrent_dropout"] = 0.0
    c["fit"].update(epochs=2, validation_split=0.0)
    c["data"] = {"path": tmp + "/seq.h5", "train": "train"}
    json.dump(c, open("%s/%s.json" % (tmp, cell), "w"))
PY
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
for cell in ${CELLS:-lstm gru}; do
    : >"$tmp/d" && : >"$tmp/t"
    for r in $(seq "$reps"); do
        s=$("$build/dptrain" fit "$tmp/$cell.json" --verbose 1 | awk '/^Epoch 2\//{print $4}' | tr -d s)
        awk -v n="$samples" -v s="$s" 'BEGIN{printf "%.1f\n", n / s}' >>"$tmp/d"
        "$py" bench/peers/torch_lstm.py --cell "$cell" --samples "$samples" --epochs 1 |
            sed 's/.*samples_per_s=\([0-9.]*\).*/\1/' >>"$tmp/t"
    done
    d=$(median <"$tmp/d") t=$(median <"$tmp/t")
    echo "$cell: dptrain $d samples/s, PyTorch $t samples/s, ratio $(awk -v a="$d" -v b="$t" 'BEGIN{printf "%.2f", a / b}') (medians of $reps; kernel ${OPENBLAS_CORETYPE:-default})"
done
