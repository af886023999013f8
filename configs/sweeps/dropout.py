r"""Seed 003, dropout rates before the classifier: 0 (configs/cifar10.py's), 0.1, 0.3, 0.5.

  python -m isovolnet_jax.sweep --config=configs/cifar10.py \
    --sweep=configs/sweeps/dropout.py --workdir=runs/sweeps/dropout \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.max_train_time_minutes=5

12 points (4 rates x 3 seeds): at most 12 x 5 minutes of training, plus evaluation. IsoVolNet's dropout sits
between global max pooling and the dense classifier (model.dropout).

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
RATES = (0.0, 0.1, 0.3, 0.5)


def get_sweep():
  return [{'model.dropout': r, 'seed': s} for s in SEEDS for r in RATES]
