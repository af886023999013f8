r"""Seed 003, learning rates: AdamW peak rate in factors of 2 around 2e-3.

  LD_PRELOAD=libtcmalloc.so.4 python -m isovolnet_jax.sweep --config=configs/cifar10.py \
    --sweep=configs/sweeps/learning_rate.py --workdir=runs/sweeps/learning_rate --results=results/learning_rate \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.num_epochs=10

15 points (5 rates x 3 seeds). Peak of configs/cifar10.py's
onecycle schedule: 5e-4, 1e-3, 2e-3 (the config's), 4e-3, 8e-3; everything
else as configs/cifar10.py. A rate that diverges is recorded as failed in
results.md and the sweep goes on.

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
LEARNING_RATES = (5e-4, 1e-3, 2e-3, 4e-3, 8e-3)


def get_sweep():
  return [{'optimizer.learning_rate': lr, 'seed': s}
          for s in SEEDS for lr in LEARNING_RATES]
