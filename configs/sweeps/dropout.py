r"""Seed 003, dropout rates before the classifier: 0 (configs/cifar10.py's), 0.1, 0.3, 0.5.

  LD_PRELOAD=libtcmalloc.so.4 python -m isovolnet_jax.tools.sweep --config=configs/cifar10.py \
    --sweep=configs/sweeps/dropout.py --workdir=runs/sweeps/dropout --results=results/dropout \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.num_epochs=10 --config.optimizer.learning_rate=2e-3 \
    --reuse=results/activation,results/learning_rate,results/dropout,results/batch_size \
    --config.label_smoothing=0.1 --config.optimizer.lookahead_every=0 --config.eval_tta=  # the default before 2026-12-03

12 points (4 rates x 3 seeds). IsoVolNet's dropout sits
between global max pooling and the dense classifier (model.dropout).

The default point (configs/cifar10.py at rate 2e-3) is in four sweeps (the
activation sweep's swish point): whichever sweep trains a seed of it first,
the others copy it with --reuse instead of retraining it.

--config.optimizer.learning_rate=2e-3 keeps the base the sweeps ran
around: configs/cifar10.py before configs/sweeps/learning_rate.py moved its rate
to 3.2e-2.

Budget and model: results/dropout/README.md, seed 003's plan (10 complete epochs on
the default IsoVolNet: 4 blocks, average pooling, swish; seeds 0-2 seed-major;
committed points are skipped on rerun).
"""

SEEDS = (0, 1, 2)
RATES = (0.0, 0.1, 0.3, 0.5)


def get_sweep():
  return [{'model.dropout': r, 'seed': s} for s in SEEDS for r in RATES]
