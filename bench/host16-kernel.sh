#!/usr/bin/env bash
# On the lent 16-core host (see host16.sh for the set-up): dptrain left to choose the OpenBLAS kernel
# itself (it restarts with OPENBLAS_CORETYPE when OpenBLAS picked a generic one), then forced onto
# the generic "Prescott" kernel for comparison. 16 ranks, MLP, 128 samples per rank per step.
source .mpibundle/env.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 OMPI_MCA_pml=ob1
unset OPENBLAS_CORETYPE
build-dev/dptrain data synth --samples 40960 --features 784 --seed 1 --out /tmp/m.h5 >/dev/null
for ct in auto Prescott; do
  echo "== OPENBLAS_CORETYPE: $ct"
  if [ $ct = auto ]; then e=(env -u OPENBLAS_CORETYPE); else e=(env OPENBLAS_CORETYPE=$ct); fi
  timeout 60 mpirun -np 16 --bind-to core "${e[@]}" build-dev/dptrain fit bench/configs/fmnist_mlp_flat.json --data /tmp/m.h5 --epochs 3 --batch-size 2048 --profile --verbose 2 2>&1 | grep -E "OpenBLAS|warning|placement|exchange|Epoch|profile"
done
