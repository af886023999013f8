r"""Seed 003, activation functions: ReLU vs Leaky ReLU (slope 0.01) vs Swish.

  python -m isovolnet_jax.sweep --config=configs/cifar10.py \
    --sweep=configs/sweeps/activation.py --workdir=runs/sweeps/activation \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.max_train_time_minutes=5

9 points (3 activations x 3 seeds): at most 9 x 5 minutes of training, plus evaluation. The rest of the recipe
is configs/cifar10.py's (AdamW, lr 2e-3, onecycle).

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
ACTIVATIONS = ('relu', 'leaky_relu', 'swish')


def get_sweep():
  return [{'model.activation': a, 'seed': s} for s in SEEDS for a in ACTIVATIONS]
