r"""Seed 003, batch sizes: 64, 128, 256 (configs/cifar10.py's), 512.

  LD_PRELOAD=libtcmalloc.so.4 python -m isovolnet_jax.tools.sweep --config=configs/cifar10.py \
    --sweep=configs/sweeps/batch_size.py --workdir=runs/sweeps/batch_size --results=results/batch_size \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.num_epochs=10 --config.optimizer.learning_rate=2e-3 \
    --reuse=results/activation,results/learning_rate,results/dropout,results/batch_size \
    --config.label_smoothing=0.1 --config.optimizer.lookahead_every=0 --config.eval_tta=  # the default before 2026-12-03

12 points (4 batch sizes x 3 seeds). The peak learning rate
stays at 2e-3 for every batch size (no scaling rule), so
the sweep measures the batch size as the recipe is written. At equal epochs a
smaller batch takes more, noisier steps (batch 64: 7,030 steps).

The default point (configs/cifar10.py at rate 2e-3) is in four sweeps (the
activation sweep's swish point): whichever sweep trains a seed of it first,
the others copy it with --reuse instead of retraining it.

--config.optimizer.learning_rate=2e-3 keeps the base the sweeps ran
around: configs/cifar10.py before configs/sweeps/learning_rate.py moved its rate
to 3.2e-2.

Budget and model: results/batch_size/README.md, seed 003's plan (10 complete epochs on
the default IsoVolNet: 4 blocks, average pooling, swish; seeds 0-2 seed-major;
committed points are skipped on rerun).
"""

SEEDS = (0, 1, 2)
BATCH_SIZES = (64, 128, 256, 512)


def get_sweep():
  return [{'batch_size': b, 'seed': s} for s in SEEDS for b in BATCH_SIZES]
