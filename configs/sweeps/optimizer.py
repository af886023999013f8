r"""Seed 003, optimizers: SGD with momentum vs Adam vs RMSprop.

  python -m isovolnet_jax.sweep --config=configs/cifar10.py \
    --sweep=configs/sweeps/optimizer.py --workdir=runs/sweeps/optimizer \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.max_train_time_minutes=5

9 points (3 optimizers x 3 seeds): at most 9 x 5 minutes of training, plus evaluation. Peak learning rates
(onecycle schedule, as in configs/cifar10.py):

  sgd      0.05   momentum 0.9, Nesterov
  adam     2e-3   (configs/cifar10.py's AdamW rate)
  rmsprop  1e-3   decay 0.9, no momentum (PyTorch's and Keras' default; with
                  the config's momentum 0.9 the step would be ~10x larger)

All three take L2 weight decay 5e-4 added to the gradient (PyTorch's
`weight_decay`): configs/cifar10.py's 5e-2 is AdamW's decoupled decay, which as
an L2 term would be 100x too strong. configs/cifar10.py notes that SGD at 0.05
diverged on this net in a 150-step probe; a diverging point is recorded as
failed in results.md and the sweep goes on.

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
OPTIMIZERS = (
    {'optimizer.name': 'sgd', 'optimizer.learning_rate': 0.05},
    {'optimizer.name': 'adam', 'optimizer.learning_rate': 2e-3},
    {'optimizer.name': 'rmsprop', 'optimizer.learning_rate': 1e-3,
     'optimizer.momentum': 0.0},
)


def get_sweep():
  return [{**o, 'optimizer.weight_decay': 5e-4, 'seed': s}
          for s in SEEDS for o in OPTIMIZERS]
