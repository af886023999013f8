#!/usr/bin/env bash
# FastCNN's 3-channel stem (fast_cnn.Stem) as one oneDNN call in inference,
# like every ConvNormAct (2026-12-05): FastCNN's training (a control: the
# change is inference only) and inference before -> after (bench.benchmark
# --skip_torch, the config as it is) on 2 CPU devices and on one core, from a
# checkout of the commit before the change ($BEFORE, its extension built) and
# from this one, in three interleaved rounds (every other round in the reverse
# order). Run from the repository root with nothing else running:
#   git worktree add ../before 6d32ad8 && (cd ../before && python setup.py build_ext --inplace)
#   BEFORE=../before bash results/onednn/fused_inference/stem/run.sh
# About 5 minutes on the 2-core EPYC.
set -euo pipefail
out=${OUT:-results/onednn/fused_inference/stem}
before=${BEFORE:?BEFORE=a checkout of the commit before the change}
steps=(--steps=20 --warmup=3 --repeats=3)
mkdir -p "$out"
here=$(pwd)
run=(python -m isovolnet_jax.bench.benchmark --config=configs/cifar10_fast_cpu.py "${steps[@]}")
. "$(dirname "$0")/../../before_after.sh"  # bench, sides
for round in ${ROUNDS:-1 2 3}; do
  for side in $(sides "$round"); do
    bench cifar10_fast_cpu "$side" "$round" "${run[@]}"
    bench cifar10_fast_cpu-1core "$side" "$round" taskset -c 0 "${run[@]}" --cpu_devices=1
  done
done
