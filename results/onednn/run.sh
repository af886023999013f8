#!/usr/bin/env bash
# The oneDNN study's benchmark: one bench.benchmark run per config, JAX before
# (float32 with XLA's convs and the shifted-slice depthwise convs, 'unrolled')
# and after (the config as it is, and float32, bfloat16 and mixed_bfloat16 with
# oneDNN), against
# PyTorch's eager, channels_last, compiled and bfloat16-autocast variants.
# Run from the repository root with nothing else running:
#   bash results/onednn/run.sh [CONFIG ...]
set -euo pipefail
out=results/onednn
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(cifar10_fast_cpu cifar10 resnet20 mobilenet_v2 \
  dilated_ds dense_ds isovolnet_seed)
for c in "${configs[@]}"; do
  case $c in  # Fewer steps where one training step takes seconds.
    cifar10_fast_cpu|cifar10|resnet20) steps=(--steps=20 --warmup=3 --repeats=3) ;;
    *) steps=(--steps=4 --warmup=2 --repeats=3) ;;
  esac
  config=configs/$c.py
  [ -f "$config" ] || config=configs/cifar10_$c.py
  before=float32:unrolled,
  if [ "$c" = dilated_ds ]; then
    # Its 'unrolled' step holds ~10 GB at batch 256; the bfloat16 variant after
    # it in the same process ran out of the machine's 24 GB (tcmalloc keeps
    # freed memory). The before is timed in a process of its own.
    before=
    python -m isovolnet_jax.bench.benchmark --json --config="$config" "${steps[@]}" \
      --skip_torch --config.model.conv_impl=unrolled --jax_variants= > "$out/${c}_before.txt"
  fi
  python -m isovolnet_jax.bench.benchmark --json --config="$config" "${steps[@]}" \
    --jax_variants=${before}float32:onednn,bfloat16:onednn,mixed_bfloat16:onednn \
    --torch_variants=nchw,channels_last,compile,bf16,bf16_compile > "$out/$c.txt"
  grep -E '^(model|CPU|jax|torch|JAX|best)' "$out/$c.txt"
done
