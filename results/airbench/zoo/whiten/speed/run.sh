#!/bin/bash
# The img/s behind configs/sweeps/zoo_airbench_whiten.py and
# dilated_airbench_equal_time.py: each config's bare training step, alone on
# the machine, two interleaved rounds (run from the repository root).
export LD_PRELOAD=libtcmalloc.so.4
OUT=results/airbench/zoo/whiten/speed
for r in 1 2; do
for v in "iso:--config=configs/cifar10.py" \
         "iso_w3:--config=configs/cifar10.py --config.model.whiten_stem=true --config.model.num_blocks=3" \
         "iso_w2:--config=configs/cifar10.py --config.model.whiten_stem=true --config.model.num_blocks=2" \
         "fast:--config=configs/cifar10_fast_cpu.py" \
         "fast_w:--config=configs/cifar10_fast_cpu.py --config.model.whiten_stem=true" \
         "dilated:--config=configs/cifar10_dilated_ds.py" \
         "dilated_w:--config=configs/cifar10_dilated_ds.py --config.model.whiten_stem=true"; do
  n=${v%%:*}; a=${v#*:}
  python -m isovolnet_jax.bench.benchmark $a --skip_torch --json --jax_variants= > $OUT/${n}_r$r.txt 2>&1
done; done
