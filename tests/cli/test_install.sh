#!/usr/bin/env bash
# `cmake --install` into a temporary prefix (the build directory is the one holding the dptrain
# binary given as $1), then examples/embed.c — a user's MPI program calling the library — built
# against the INSTALLED copy twice: by a tiny CMake project with find_package(dptrain), and by
# `mpicc $(pkg-config --cflags --libs dptrain)`; each runs on 2 ranks and must exit 0 with its
# "embed: ok" line, its epoch lines and its history files. The installed binary runs too.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC"

build=$(cd "$(dirname "$DPTRAIN")" && pwd)
[ -f "$build/CMakeCache.txt" ] || { echo "# $build is not a CMake build directory: skipped"; exit 77; }
prefix="$WORK/prefix"

run_cmd "$WORK/install" 60 cmake --install "$build" --prefix "$prefix"
lib=$(find "$prefix" -name libdptrain.a | head -1)
pc=$(find "$prefix" -name dptrain.pc | head -1)
cfg=$(find "$prefix" -name dptrainConfig.cmake | head -1)
if [ "$RC" -eq 0 ] && [ -n "$lib" ] && [ -x "$prefix/bin/dptrain" ] && [ -f "$prefix/include/dptrain/dptrain.h" ] &&
    [ -n "$pc" ] && [ -n "$cfg" ] && [ -f "$(dirname "$cfg")/dptrainTargets.cmake" ]; then
    ok "cmake --install: library, headers, binary, CMake package config, pkg-config file"
else not_ok "cmake --install" "exit $RC" "$(tail -5 "$WORK/install.err")" "$(find "$prefix" -type f | head -30)"; fi
n_src=$(ls include/dptrain/*.h | wc -l)
n_inst=$(ls "$prefix"/include/dptrain/*.h | wc -l)
[ "$n_src" -eq "$n_inst" ] && ok "all $n_src public headers installed" || not_ok "headers: $n_inst of $n_src installed"
grep -rq -- "$SRC\|$build" "$pc" "$(dirname "$cfg")" 2>/dev/null &&
    not_ok "the installed package files name the source or build tree" || ok "installed package files do not point into the source or build tree"

run_cmd "$WORK/ver" 10 "$prefix/bin/dptrain" --version
[ "$RC" -eq 0 ] && ok "installed dptrain runs: $(cat "$WORK/ver.out")" || not_ok "installed dptrain --version"

# embed OUT_PREFIX BIN: runs BIN on 2 ranks in a fresh directory and checks what it did
check_embed() {
    local name=$1 bin=$2 dir="$WORK/run-$1"
    run_cmd "$WORK/$name" 120 $MPIRUN -np 2 "$bin" "$dir"
    if [ "$RC" -eq 0 ] && grep -q '^embed: ok: 2 ranks, fit 2 epochs' "$WORK/$name.out" &&
        [ "$(grep -cE '^Epoch [12]/2 - .* - val_loss: ' "$WORK/$name.out")" -eq 2 ] &&
        [ "$(tail -n +2 "$dir/history.csv" | wc -l)" -eq 2 ] && [ -s "$dir/pred.h5" ] && [ -s "$dir/mc.h5" ]; then
        ok "$name: embed on 2 ranks: fit, evaluate, predict, Monte Carlo predict ($(grep -o 'evaluate [0-9]* samples' "$WORK/$name.out"))"
    else not_ok "$name: embed run" "exit $RC" "$(tail -3 "$WORK/$name.out")" "$(tail -5 "$WORK/$name.err")"; fi
}

# ---- CMake: find_package(dptrain) --------------------------------------------------------------
mkdir -p "$WORK/proj"
cat >"$WORK/proj/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.20)
project(embed_user LANGUAGES C)
find_package(dptrain 0.1 REQUIRED)
add_executable(embed "$SRC/examples/embed.c")
target_link_libraries(embed PRIVATE dptrain::dptrain)
target_compile_options(embed PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla)
EOF
run_cmd "$WORK/cm-conf" 90 cmake -S "$WORK/proj" -B "$WORK/proj/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release
if [ "$RC" -eq 0 ]; then
    run_cmd "$WORK/cm-build" 90 cmake --build "$WORK/proj/build"
    if [ "$RC" -eq 0 ] && [ -x "$WORK/proj/build/embed" ] && ! grep -q 'warning:' "$WORK/cm-build.out"; then
        ok "find_package(dptrain) + dptrain::dptrain: embed.c builds without warnings"
        check_embed cmake "$WORK/proj/build/embed"
    else not_ok "CMake build of embed.c" "exit $RC" "$(grep -E 'error|warning' "$WORK/cm-build.out" | head -5)"; fi
else not_ok "find_package(dptrain)" "exit $RC" "$(tail -8 "$WORK/cm-conf.err")"; fi

# ---- pkg-config ----------------------------------------------------------------------------------
if command -v pkg-config >/dev/null && command -v mpicc >/dev/null; then
    export PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    flags=$(pkg-config --cflags --libs dptrain 2>"$WORK/pc.err")
    run_cmd "$WORK/pc-build" 90 mpicc -std=c11 -Wall -Wextra -Wpedantic "$SRC/examples/embed.c" $flags -o "$WORK/embed-pc"
    if [ "$RC" -eq 0 ] && [ -x "$WORK/embed-pc" ] && [ "$(pkg-config --modversion dptrain)" = "$("$prefix/bin/dptrain" --version | cut -d' ' -f2)" ]; then
        ok "mpicc \$(pkg-config --cflags --libs dptrain): embed.c builds; version matches"
        check_embed pkgconfig "$WORK/embed-pc"
    else not_ok "pkg-config build of embed.c" "exit $RC; flags: $flags" "$(cat "$WORK/pc.err")" "$(head -5 "$WORK/pc-build.err")"; fi
else
    echo "# pkg-config or mpicc missing: the pkg-config build is skipped"
fi

finish
