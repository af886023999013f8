#!/usr/bin/env bash
# Two layer choices of 2026-12-05 (2x2 average pooling as four stride-2
# phases; a narrow depthwise conv's swish in XLA after the oneDNN call):
# 1. bench.layer_choices: each choice's two sides alone, one core, batch 128;
# 2. configs/cifar10.py (IsoVolNet, which has both) before -> after, whole
#    training and inference steps (bench.benchmark --skip_torch, the config as
#    it is), from a checkout of the commit before them ($BEFORE, its extension
#    built) and from this one, in three interleaved rounds (every other round
#    in the reverse order). Run from the repository root with nothing else running:
#   git worktree add ../before b6db449 && (cd ../before && python setup.py build_ext --inplace)
#   BEFORE=../before bash results/onednn/layer_choices/run.sh
# About 20 minutes on the 2-core EPYC.
set -euo pipefail
out=${OUT:-results/onednn/layer_choices}
before=${BEFORE:?BEFORE=a checkout of the commit before the change}
read -r -a steps <<< "${STEPS:---steps=20 --warmup=3 --repeats=3}"
mkdir -p "$out"
# ROUNDS='4 5 6' MICRO=0: three more rounds, the choices alone not re-timed.
[ "${MICRO:-1}" = 0 ] || python -m isovolnet_jax.bench.layer_choices --json \
  --choices=pooling,narrow_swish > "$out/layer_choices.txt"
here=$(pwd)
run=(python -m isovolnet_jax.bench.benchmark)
. "$(dirname "$0")/../before_after.sh"  # bench, sides
for round in ${ROUNDS:-1 2 3}; do
  for side in $(sides "$round"); do
    bench cifar10 "$side" "$round" "${run[@]}" --config=configs/cifar10.py "${steps[@]}"
    # The same on one core (one device, one oneDNN thread): no second device's
    # work on the shared caches and memory, the quieter figure.
    bench cifar10-1core "$side" "$round" taskset -c 0 "${run[@]}" \
      --config=configs/cifar10.py "${steps[@]}" --cpu_devices=1
  done
done
# The dense DS net (its transitions average-pool; no narrow swish): 2 devices,
# fewer steps (one takes seconds). DENSE=0 skips it.
[ "${DENSE:-1}" = 0 ] && exit 0
for round in ${DENSE_ROUNDS:-1 2}; do
  for side in $(sides "$round"); do
    bench cifar10_dense_ds "$side" "$round" "${run[@]}" --config=configs/cifar10_dense_ds.py \
      --steps=4 --warmup=2 --repeats=3
  done
done
