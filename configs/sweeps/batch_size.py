r"""Seed 003, batch sizes: 64, 128, 256 (configs/cifar10.py's), 512.

  python -m isovolnet_jax.sweep --config=configs/cifar10.py \
    --sweep=configs/sweeps/batch_size.py --workdir=runs/sweeps/batch_size \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.max_train_time_minutes=5

12 points (4 batch sizes x 3 seeds): at most 12 x 5 minutes of training, plus evaluation. The peak learning rate
stays at configs/cifar10.py's 2e-3 for every batch size (no scaling rule), so
the sweep measures the batch size as the recipe is written. Under the equal
time budget a smaller batch takes more, noisier steps.

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
BATCH_SIZES = (64, 128, 256, 512)


def get_sweep():
  return [{'batch_size': b, 'seed': s} for s in SEEDS for b in BATCH_SIZES]
