#!/usr/bin/env bash
# Installs what dptrain needs to build, test and run, when it is missing.
# Debian/Ubuntu: apt-get (as root, or through sudo). Idempotent: installs only missing packages.
# Elsewhere: prints what to load (environment modules / Spack) and exits 2.
#   DPTRAIN_DEPS_EXTRA=0  skip the optional packages (Fashion-MNIST data, python3-h5py, Slurm for tests)
set -euo pipefail

required=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev libopenblas-dev
          libhdf5-openmpi-dev hdf5-tools libjansson-dev libcmocka-dev)
optional=(dataset-fashion-mnist python3-h5py python3-numpy python3-venv)

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    cat >&2 <<'MSG'
install-deps.sh: not a Debian/Ubuntu system; load or install these yourself:
  environment modules:  module load cmake openmpi openblas hdf5/parallel jansson cmocka
  Spack:                spack install cmake openmpi openblas hdf5+mpi jansson cmocka && spack load ...
  then build with:      cmake -S . -B build && cmake --build build -j
MSG
    exit 2
fi

want=("${required[@]}")
[ "${DPTRAIN_DEPS_EXTRA:-1}" = 0 ] || want+=("${optional[@]}")

missing=()
for p in "${want[@]}"; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "install-deps.sh: missing packages ${missing[*]}; run as root or install sudo" >&2
        exit 2
    fi
fi
echo "install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
