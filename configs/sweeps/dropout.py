r"""Seed 003, dropout rates before the classifier: 0 (configs/cifar10.py's), 0.1, 0.3, 0.5.

  LD_PRELOAD=libtcmalloc.so.4 python -m isovolnet_jax.sweep --config=configs/cifar10.py \
    --sweep=configs/sweeps/dropout.py --workdir=runs/sweeps/dropout --results=results/dropout \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.num_epochs=10

12 points (4 rates x 3 seeds). IsoVolNet's dropout sits
between global max pooling and the dense classifier (model.dropout).

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
RATES = (0.0, 0.1, 0.3, 0.5)


def get_sweep():
  return [{'model.dropout': r, 'seed': s} for s in SEEDS for r in RATES]
