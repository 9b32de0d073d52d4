# Bad files for tests/bad_inputs/cases.txt, made at test time under $W (sourced by run.sh).
# Needs: $DPT (the binary), $W (an empty work dir), $MPI; sets HAVE_MKH5 and HAVE_MOUNT (0/1).
# Everything here is small (the largest file is a ~20 KB checkpoint); about 5 s in all.

# mkh5 (tests/bad_inputs/mkh5.c) writes HDF5 files the way any h5py user could. Built here with
# whatever compiler wrapper knows where parallel HDF5 lives; DPT_MKH5 may name a prebuilt one.
build_mkh5() {
    local src=$HERE/mkh5.c out=$W/bin/mkh5
    if [ -n "${DPT_MKH5:-}" ] && [ -x "$DPT_MKH5" ]; then ln -sf "$DPT_MKH5" "$out"; return 0; fi
    if command -v h5pcc >/dev/null && h5pcc -shlib -O1 -o "$out" "$src" -lm 2>"$W/mkh5.log"; then return 0; fi
    local cc=${CC:-cc}
    command -v mpicc >/dev/null && cc=mpicc
    if pkg-config --exists hdf5-openmpi 2>/dev/null &&
        $cc -O1 -o "$out" "$src" $(pkg-config --cflags --libs hdf5-openmpi) -lm 2>>"$W/mkh5.log"; then
        return 0
    fi
    echo "# mkh5 could not be built (no h5pcc, no pkg-config hdf5-openmpi): HDF5 cases skipped" >&2
    cat "$W/mkh5.log" >&2
    return 1
}

make_fixtures() {
    mkdir -p "$W/bin" "$W/data" "$W/ck"
    HAVE_MKH5=0
    build_mkh5 && HAVE_MKH5=1
    local M=$W/bin/mkh5 d=$W/data

    # a good dataset and a good config (tests/bad_inputs/configs/good.json: 20 -> 8 -> 1)
    "$DPT" data synth --samples 120 --features 20 --seed 3 --out "$W/good.h5" >/dev/null

    # --- datasets that are not HDF5 or are damaged ---------------------------------------------
    echo 'hello, I am not an HDF5 file' >"$d/text.h5"
    : >"$d/zero.h5"
    head -c 3000 "$W/good.h5" >"$d/truncated.h5"
    head -c $(($(stat -c %s "$W/good.h5") - 1)) "$W/good.h5" >"$d/short1.h5"
    printf 'a,b,label\n1,2,0\n3,4\n' >"$d/fields.csv"
    printf 'a,b,label\n1,2,0\n3,x,1\n' >"$d/notnum.csv"
    printf 'a,b,label\n1,2,0\n3,nan,1\n' >"$d/nan.csv"

    if [ "$HAVE_MKH5" = 1 ]; then
        local y="dset /train/y i32 60 mod:2"
        $M "$d/nan.h5" dset /train/x f32 60x20 nan:37 $y
        $M "$d/inf.h5" dset /train/x f32 60x20 inf:5 $y
        $M "$d/f64big.h5" dset /train/x f64 60x20 big:1e300 $y
        $M "$d/label3.h5" dset /train/x f32 60x20 rand dset /train/y i32 60 mod:3
        $M "$d/shape10.h5" dset /train/x f32 60x10 rand $y
        $M "$d/img.h5" dset /train/x f32 60x4x5 rand $y
        $M "$d/lenmis.h5" dset /train/x f32 60x20 rand dset /train/y i32 59 mod:2
        $M "$d/noy.h5" dset /train/x f32 60x20 rand
        $M "$d/nogroup.h5" dset /other/x f32 60x20 rand dset /other/y i32 60 mod:2
        $M "$d/empty.h5" dset /train/x f32 0x20 rand dset /train/y i32 0 mod:2
        $M "$d/two.h5" dset /train/x f32 2x20 rand dset /train/y i32 2 mod:2
        $M "$d/strx.h5" dset /train/x str 60x20 rand $y
        $M "$d/rank6.h5" dset /train/x f32 4x2x2x2x2x2 rand dset /train/y i32 4 mod:2
        $M "$d/scale0.h5" dset /train/x u8 60x20 rand $y attr /train/x scale f32 0
        $M "$d/dim0.h5" dset /train/x f32 60x0 rand $y
        $M "$d/ywide.h5" dset /train/x f32 60x20 rand dset /train/y f32 60x3 rand
        $M "$d/xgroup.h5" group /train/x $y
        # token ids for an Embedding of input_dim 5 (configs/embedding.json): good, then bad
        $M "$d/ids.h5" dset /train/x i32 60x6 mod:5 $y
        $M "$d/ids_neg.h5" dset /train/x i32 60x6 modrow:5:7:-1 $y
        $M "$d/ids_frac.h5" dset /train/x f32 60x6 modrow:5:3:2.5 $y
        $M "$d/ids_big.h5" dset /train/x i64 60x6 modrow:5:9:5 $y
        $M "$d/valnan.h5" dset /train/x f32 60x20 rand $y \
            dset /validation/x f32 30x20 nan:29 dset /validation/y i32 30 mod:2
        $M "$d/testlabel.h5" dset /train/x f32 60x20 rand $y \
            dset /test/x f32 30x20 rand dset /test/y i32 30 const:7
    fi

    # --- checkpoints: a good run directory (last.h5 only), then damaged copies ------------------
    local cfg=$CF/good.json
    $MPI "$DPT" fit "$cfg" --data "$W/good.h5" --run-dir "$W/ck/good" --keep 0 --verbose 0 \
        >"$W/ck/good.log" 2>&1 || { echo "# fixture run failed:" >&2; cat "$W/ck/good.log" >&2; }
    local r
    for r in truncated text flip version dir arch; do cp -r "$W/ck/good" "$W/ck/$r"; done
    head -c 5000 "$W/ck/good/last.h5" >"$W/ck/truncated/last.h5"
    echo 'not a checkpoint' >"$W/ck/text/last.h5"
    rm "$W/ck/dir/last.h5" && mkdir "$W/ck/dir/last.h5"
    # one byte of the first kernel's data changed: the checksum must catch it
    local off
    off=$(h5dump -p -H -d '/d1/d1/kernel:0' "$W/ck/good/last.h5" 2>/dev/null | awk '/OFFSET/{print $2}')
    [ -n "$off" ] && printf '\x7f' | dd of="$W/ck/flip/last.h5" bs=1 seek=$((off + 5)) conv=notrunc 2>/dev/null
    [ "$HAVE_MKH5" = 1 ] && $M "$W/ck/version/last.h5" --edit setattr /dptrain format_version 99
    # a checkpoint of another architecture (Dense 9 units instead of 8)
    rm -rf "$W/ck/arch"
    sed 's/"units": 8/"units": 9/' "$cfg" >"$W/other_arch.json"
    $MPI "$DPT" fit "$W/other_arch.json" --data "$W/good.h5" --run-dir "$W/ck/arch" --keep 0 \
        --verbose 0 >"$W/ck/arch.log" 2>&1
    # a last.h5 that crashed HDF5 1.10's reader in the fuzzer (a damaged global heap behind a
    # variable-length string), for the fuzz target's model (tests/fuzz/model.json, 4 features)
    sed "s#\"model\": \"model.json\"#\"model\": \"$SRC/tests/fuzz/model.json\"#" \
        "$SRC/tests/fuzz/fit.json" >"$W/fuzzfit.json"
    mkdir -p "$W/ck/heap"
    cp "$SRC/tests/fuzz/regressions/fuzz_ckpt/hdf5-vlen-heap-memcpy-optimizer-kind.h5" "$W/ck/heap/last.h5"
    [ "$HAVE_MKH5" = 1 ] && $M "$W/d4.h5" dset /train/x f32 12x4 rand dset /train/y i32 12 mod:2
    # variants: no input shape (taken from the data), a validation group, a test group
    grep -v InputLayer "$cfg" >"$W/noinput.json"
    sed 's/^  "fit": {/  "data": {"validation": "validation"},\n  "fit": {/' "$cfg" >"$W/with_val.json"
    sed 's/^  "fit": {/  "data": {"test": "test"},\n  "fit": {/' "$cfg" >"$W/with_test.json"
    # a model big enough that its checkpoint (~1 MB) cannot fit 256 KiB
    sed 's/"units": 8/"units": 4096/' "$cfg" >"$W/big.json"

    # --- the environment --------------------------------------------------------------------------
    : >"$W/afile"
    # named pipes where a config, a dataset or a checkpoint is expected: open() would block
    mkfifo "$W/fifo.json" "$W/fifo.h5"
    echo 'not HDF5' >"$W/text.out"
    mkdir -p "$W/outdir"
    HAVE_MOUNT=0
    mkdir -p "$W/mnt/ro" "$W/mnt/full"
    if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=64k,ro tmpfs "$W/mnt/ro" 2>/dev/null; then
        if mount -t tmpfs -o size=256k tmpfs "$W/mnt/full" 2>/dev/null; then HAVE_MOUNT=1; else
            umount "$W/mnt/ro"; fi
    fi
}

unmount_fixtures() {
    local m
    for m in "$W/mnt/ro" "$W/mnt/full"; do mountpoint -q "$m" 2>/dev/null && umount "$m"; done
    return 0
}
