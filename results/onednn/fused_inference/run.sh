#!/usr/bin/env bash
# Inference with and without the fused conv + BatchNorm + activation (one
# oneDNN call a ConvNormAct): bench.fused_inference, one process per config,
# both traced in it and timed in alternating rounds. Every CIFAR-10 zoo config
# as it is (its dtype, conv_impl 'auto'). About 6 minutes on the 2-core EPYC.
# Run from the repository root with nothing else running:
#   bash results/onednn/fused_inference/run.sh [CONFIG ...]
# Raw output: results/onednn/fused_inference/<config>.txt (last line JSON);
# the table: python -m isovolnet_jax.tools.results_tables
set -euo pipefail
out=${OUT:-results/onednn/fused_inference}
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(cifar10 cifar10_fast_cpu cifar10_resnet20 \
  cifar10_isovolnet_seed cifar10_mobilenet_v2 cifar10_dilated_ds cifar10_dense_ds)
mkdir -p "$out"
for c in "${configs[@]}"; do
  case $c in  # Fewer calls where one inference batch takes most of a second.
    cifar10|cifar10_fast_cpu|cifar10_resnet20|cifar10_isovolnet_seed) steps=(--steps=20 --warmup=3) ;;
    *) steps=(--steps=5 --warmup=2) ;;
  esac
  python -m isovolnet_jax.bench.fused_inference --json --config="configs/$c.py" \
    --rounds=4 "${steps[@]}" > "$out/$c.txt"
  grep -E '^(model|median)' "$out/$c.txt" | sed "s/^/[$c] /"
done
