#!/usr/bin/env bash
# Regenerates the committed seed corpus tests/fuzz/corpus/<target>/ (small valid inputs, a few KB
# each). Run it when a format changes, then commit the result:
#   tests/fuzz/make_corpus.sh PATH/TO/dptrain
# fuzz_config: the example and Keras-form configs; fuzz_data: small datasets (dptrain data synth,
# mkh5: uint8 + scale, float64, (N, T) float targets, images, a validation group); fuzz_ckpt: a
# checkpoint and final weights of the fuzz target's fixed model, written by `dptrain fit`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
dpt=$(readlink -f "${1:?usage: $0 PATH/TO/dptrain}")
c=$here/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

rm -rf "$c"
mkdir -p "$c/fuzz_config" "$c/fuzz_data" "$c/fuzz_ckpt"

# --- configs
cp "$root/examples/tutorial.json" "$c/fuzz_config/tutorial.json"
for f in "$root"/tests/data/configs/forms/*.json; do cp "$f" "$c/fuzz_config/form_$(basename "$f")"; done
cp "$root/tests/bad_inputs/configs/good.json" "$c/fuzz_config/good.json"
cp "$here/model.json" "$c/fuzz_config/fuzz_model.json"
[ -f "$root/examples/fmnist_cnn.json" ] && cp "$root/examples/fmnist_cnn.json" "$c/fuzz_config/fmnist_cnn.json"
cp "$root/examples/conv1d.json" "$c/fuzz_config/conv1d.json"
cp "$root/tests/data/configs/seq_embedding.json" "$c/fuzz_config/seq_embedding.json"

# --- datasets
h5pcc -shlib -O1 -o "$tmp/mkh5" "$root/tests/bad_inputs/mkh5.c" -lm
m=$tmp/mkh5
"$dpt" data synth --samples 8 --features 4 --seed 1 --out "$c/fuzz_data/synth.h5" >/dev/null
$m "$c/fuzz_data/u8_scale.h5" dset /train/x u8 6x2x3 rand dset /train/y u8 6 mod:3 \
    attr /train/x scale f32 0.0039 attr /train/y n_classes i32 3
$m "$c/fuzz_data/f64_targets.h5" dset /train/x f64 5x3 rand dset /train/y f32 5x2 rand
$m "$c/fuzz_data/vector_x.h5" dset /train/x f32 7 rand dset /train/y i64 7x1 mod:2
$m "$c/fuzz_data/splits.h5" dset /train/x f32 4x2 rand dset /train/y i32 4 mod:2 \
    dset /validation/x f32 2x2 rand dset /validation/y i32 2 mod:2
printf 'a,b,label\n1,2,0\n3,4.5,1\n0.5,-1,2\n' >"$tmp/t.csv"
"$dpt" data csv "$tmp/t.csv" --label label --out "$c/fuzz_data/csv.h5" >/dev/null

# --- checkpoints of the fixed model (tests/fuzz/model.json)
$m "$tmp/d4.h5" dset /train/x f32 12x4 rand dset /train/y i32 12 mod:2
sed "s#\"model\": \"model.json\"#\"model\": \"$here/model.json\"#" "$here/fit.json" >"$tmp/fit.json"
"$dpt" fit "$tmp/fit.json" --data "$tmp/d4.h5" --run-dir "$tmp/run" --keep 0 --verbose 0
cp "$tmp/run/last.h5" "$c/fuzz_ckpt/last.h5"
cp "$tmp/run/final.h5" "$c/fuzz_ckpt/final.h5"
du -sh "$c"/*
