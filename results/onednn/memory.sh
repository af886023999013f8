#!/usr/bin/env bash
# The training step's peak memory, JAX (float32, the config's conv_impl) against
# PyTorch (float32, channels_last, eager), at each config's own batch; one
# bench.step_memory run per config. Run from the repository root:
#   bash results/onednn/memory.sh [CONFIG ...]
set -euo pipefail
out=results/onednn/memory
mkdir -p "$out"
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(cifar10_fast_cpu cifar10 resnet20 mobilenet_v2 \
  dilated_ds dense_ds isovolnet_seed)
for c in "${configs[@]}"; do
  config=configs/$c.py
  [ -f "$config" ] || config=configs/cifar10_$c.py
  python -m isovolnet_jax.bench.step_memory --json --config="$config" > "$out/$c.txt"
  head -n -1 "$out/$c.txt"
done
