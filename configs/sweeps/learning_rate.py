r"""Seed 003, learning rates: AdamW peak rate in factors of 2, 5e-4 to 1.28e-1.

  LD_PRELOAD=libtcmalloc.so.4 python -m isovolnet_jax.tools.sweep --config=configs/cifar10.py \
    --sweep=configs/sweeps/learning_rate.py --workdir=runs/sweeps/learning_rate --results=results/learning_rate \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.num_epochs=10 --config.optimizer.learning_rate=2e-3 \
    --reuse=results/activation,results/learning_rate,results/dropout,results/batch_size \
    --config.label_smoothing=0.1 --config.optimizer.lookahead_every=0 --config.eval_tta=  # the default before 2026-12-03

27 points (9 rates x 3 seeds). Peak of configs/cifar10.py's
onecycle schedule: 5e-4, 1e-3, 2e-3 (the config's then), 4e-3, ..., 1.28e-1 in
factors of 2; everything else as configs/cifar10.py. The range grew as seed 0
came in: twice the best point was at its edge
(results/learning_rate/README.md), and a sweep whose best point is its edge
has not found the best rate. A rate that diverges is
recorded as failed in results.md and the sweep goes on.

The default point (configs/cifar10.py at rate 2e-3) is in four sweeps (the
activation sweep's swish point): whichever sweep trains a seed of it first,
the others copy it with --reuse instead of retraining it.

--config.optimizer.learning_rate=2e-3 keeps the base the sweeps ran
around: configs/cifar10.py before configs/sweeps/learning_rate.py moved its rate
to 3.2e-2.

Budget and model: results/learning_rate/README.md, seed 003's plan (10 complete epochs on
the default IsoVolNet: 4 blocks, average pooling, swish; seeds 0-2 seed-major;
committed points are skipped on rerun).
"""

SEEDS = (0, 1, 2)
LEARNING_RATES = (5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2, 6.4e-2, 1.28e-1)


def get_sweep():
  return [{'optimizer.learning_rate': lr, 'seed': s}
          for s in SEEDS for lr in LEARNING_RATES]
