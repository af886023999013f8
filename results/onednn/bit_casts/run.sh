#!/usr/bin/env bash
# The mixed_bfloat16 policy's casts as bit operations on CPU
# (models/bf16_casts.py), 2026-12-05: the four configs that default to
# dtype='auto' (mixed_bfloat16 on this CPU), before -> after, whole training
# and inference steps (bench.benchmark --skip_torch, each config as it is, 2
# CPU devices; IsoVolNet also on one core), from a checkout of the commit
# before the change ($BEFORE, its extension built) and from this one, in three
# interleaved rounds (every other round in the reverse order). Run from the
# repository root with nothing else running:
#   git worktree add ../before 88f75a1 && (cd ../before && python setup.py build_ext --inplace)
#   BEFORE=../before bash results/onednn/bit_casts/run.sh
# About 25 minutes on the 2-core EPYC.
set -euo pipefail
out=${OUT:-results/onednn/bit_casts}
before=${BEFORE:?BEFORE=a checkout of the commit before the change}
read -r -a steps <<< "${STEPS:---steps=20 --warmup=3 --repeats=3}"
mkdir -p "$out"
here=$(pwd)
run=(python -m isovolnet_jax.bench.benchmark)
. "$(dirname "$0")/../before_after.sh"  # bench, sides
for round in ${ROUNDS:-1 2 3}; do
  for side in $(sides "$round"); do
    for config in ${CONFIGS:-cifar10 cifar10_fast_cpu cifar10_isovolnet_seed cifar10_resnet20}; do
      bench "$config" "$side" "$round" "${run[@]}" --config="configs/$config.py" "${steps[@]}"
    done
    bench cifar10-1core "$side" "$round" taskset -c 0 "${run[@]}" \
      --config=configs/cifar10.py "${steps[@]}" --cpu_devices=1
  done
done
