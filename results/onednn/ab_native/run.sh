#!/usr/bin/env bash
# The oneDNN kernels before (commit 48e3e08's conv.cc, built in a worktree at
# $OLD) and after the checks, probe and caches (this commit's), interleaved,
# alone on the machine: the config's own step (float32, oneDNN) and bfloat16.
#   OLD=/path/to/old/worktree bash results/onednn/ab_native/run.sh
set -euo pipefail
out=$(pwd)/results/onednn/ab_native
new=$(pwd)
for round in 1 2; do
  for config in cifar10 cifar10_fast_cpu; do
    for side in old new; do
      dir=$new; extra=(--loop_steps=0)
      if [ $side = old ]; then dir=$OLD; extra=(); fi
      (cd "$dir" && python -m isovolnet_jax.bench.benchmark --config="configs/$config.py" \
        --skip_torch --jax_variants=bfloat16:onednn --json "${extra[@]}") \
        > "$out/$config-$side-$round.txt" 2> /dev/null
    done
  done
done
