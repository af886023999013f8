r"""Seed 003, batch sizes: 64, 128, 256 (configs/cifar10.py's), 512.

  LD_PRELOAD=libtcmalloc.so.4 python -m isovolnet_jax.sweep --config=configs/cifar10.py \
    --sweep=configs/sweeps/batch_size.py --workdir=runs/sweeps/batch_size --results=results/batch_size \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.num_epochs=10

12 points (4 batch sizes x 3 seeds). The peak learning rate
stays at configs/cifar10.py's 2e-3 for every batch size (no scaling rule), so
the sweep measures the batch size as the recipe is written. At equal epochs a
smaller batch takes more, noisier steps (batch 64: 7,030 steps).

Budget: 10 epochs per point (--config.num_epochs=10: 1,750 steps of batch
256), the one-cycle schedule complete, the seed-003 plan's minimum; IsoVolNet
(configs/cifar10.py), the zoo's fastest separable net on this CPU (1,430 img/s:
about 6 minutes a point alone on 2 cores), as the model for the sweeps: the
plan's dense DS net trains at 35 img/s here, 3.6 hours a point. Seeds 0, 1, 2
of every value, seed-major: a sweep stopped early has whole comparisons.
Rerunning the command skips the points whose result.json is in --results
(committed) and resumes the interrupted one.
"""

SEEDS = (0, 1, 2)
BATCH_SIZES = (64, 128, 256, 512)


def get_sweep():
  return [{'batch_size': b, 'seed': s} for s in SEEDS for b in BATCH_SIZES]
