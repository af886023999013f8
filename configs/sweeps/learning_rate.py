r"""Seed 003, learning rates: AdamW peak rate in factors of 2 around 2e-3.

  python -m isovolnet_jax.sweep --config=configs/cifar10.py \
    --sweep=configs/sweeps/learning_rate.py --workdir=runs/sweeps/learning_rate \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.max_train_time_minutes=5

15 points (5 rates x 3 seeds): at most 15 x 5 minutes of training, plus evaluation. Peak of configs/cifar10.py's
onecycle schedule: 5e-4, 1e-3, 2e-3 (the config's), 4e-3, 8e-3; everything
else as configs/cifar10.py. A rate that diverges is recorded as failed in
results.md and the sweep goes on.

Budget: every point trains for at most 5 minutes of wall time
(--config.max_train_time_minutes=5, equal compute on one machine) and stops
cleanly there with a checkpoint and a final val/test evaluation. Where 100
epochs do not fit in 5 minutes the onecycle schedule is cut where it stands;
for schedules that finish inside the budget add --config.num_epochs=N, with N
the epochs the slowest point trains in 5 minutes (images_per_sec is in each
point's metrics.jsonl).

Seeds 0, 1, 2 of every value, seed-major: a sweep stopped early has whole
comparisons. Rerunning the command skips finished points and resumes the
interrupted one; results: WORKDIR/results.{md,csv,png}.
"""

SEEDS = (0, 1, 2)
LEARNING_RATES = (5e-4, 1e-3, 2e-3, 4e-3, 8e-3)


def get_sweep():
  return [{'optimizer.learning_rate': lr, 'seed': s}
          for s in SEEDS for lr in LEARNING_RATES]
