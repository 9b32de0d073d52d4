#!/usr/bin/env bash
# The Python package installs the way scientific Python packages do: a clean copy of the
# repository (the files git knows), a fresh venv, `pip install ./python` (scikit-build-core builds
# the C binary with CMake), then `python -c "import dptrain"` and the `dptrain` console entry.
# Needs network access to PyPI (or a pip cache) for scikit-build-core, numpy and h5py; without
# it the test reports itself skipped (77). Slow (the C build): ctest gives it 600 s.
#   tests/interop/python_install.sh
set -u
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
py=${DPT_PYTHON:-/usr/bin/python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/dpt-pyinstall-XXXXXX")
trap 'rm -rf "$work"' EXIT
"$py" -m venv "$work/venv" >/dev/null 2>&1 || { echo "skipped: $py -m venv failed (python3-venv)"; exit 77; }
# a clean clone of the working tree: tracked and new files, no build outputs
(cd "$src" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | (mkdir -p "$work/repo" && tar -C "$work/repo" -xf -)
[ -f "$work/repo/python/pyproject.toml" ] || { echo "FAIL: python/pyproject.toml not in the copy"; exit 1; }
t0=$(date +%s)
if ! (cd "$work/repo" && env -u DPTRAIN_BINARY "$work/venv/bin/pip" install --disable-pip-version-check ./python) \
    >"$work/pip.log" 2>&1; then
    if grep -qiE 'could not find a version|connection|network is unreachable|temporary failure in name resolution|no matching distribution' "$work/pip.log"; then
        echo "skipped: pip could not reach PyPI"; tail -3 "$work/pip.log"; exit 77
    fi
    echo "FAIL: pip install ./python"; tail -40 "$work/pip.log"; exit 1
fi
echo "ok - pip install ./python in a fresh venv ($(($(date +%s) - t0)) s)"
mv "$work/repo" "$work/repo.away" # nothing may depend on the clone after install
fail=0
cd "$work"
if out=$("$work/venv/bin/python" -c "import dptrain, os; b = dptrain.find_binary(); print(b); assert b.startswith(os.path.dirname(dptrain.__file__)), b" 2>&1); then
    echo "ok - import dptrain; the binary inside the package: $out"
else echo "FAIL: import dptrain: $out"; fail=1; fi
if out=$(env -u DPTRAIN_BINARY PATH="$work/venv/bin:$PATH" dptrain --version 2>&1) && [[ $out == dptrain\ * ]]; then
    echo "ok - the dptrain console entry: $out"
else echo "FAIL: dptrain --version: $out"; fail=1; fi
if "$work/venv/bin/dptrain" data synth --samples 50 --out "$work/s.h5" >/dev/null 2>&1 && [ -s "$work/s.h5" ]; then
    echo "ok - dptrain data synth through the console entry"
else echo "FAIL: dptrain data synth"; fail=1; fi
# DPTRAIN_BINARY at install time: that binary is copied into the package, nothing is built
bin=${DPT_BUILD_DIR:+$DPT_BUILD_DIR/dptrain}
if [ -n "$bin" ] && [ -x "$bin" ]; then
    mv "$work/repo.away" "$work/repo"
    t0=$(date +%s)
    if (cd "$work/repo" && DPTRAIN_BINARY="$bin" "$work/venv/bin/pip" install --disable-pip-version-check \
        --no-deps --force-reinstall ./python) >"$work/pip2.log" 2>&1 &&
        cmp -s "$bin" "$("$work/venv/bin/python" -c "import dptrain; print(dptrain.find_binary())")"; then
        echo "ok - DPTRAIN_BINARY=$bin pip install ./python copies that binary ($(($(date +%s) - t0)) s)"
    else echo "FAIL: DPTRAIN_BINARY install"; tail -20 "$work/pip2.log"; fail=1; fi
fi
exit $fail
