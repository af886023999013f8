r"""Seed 003, optimizers: SGD with momentum vs Adam vs RMSprop.

  LD_PRELOAD=libtcmalloc.so.4 python -m isovolnet_jax.tools.sweep --config=configs/cifar10.py \
    --sweep=configs/sweeps/optimizer.py --workdir=runs/sweeps/optimizer --results=results/optimizer \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.num_epochs=10 \
    --config.label_smoothing=0.1 --config.optimizer.lookahead_every=0 --config.eval_tta=  # the default before 2026-12-03

9 points (3 optimizers x 3 seeds). Peak learning rates
(onecycle schedule, as in configs/cifar10.py):

  sgd      0.05   momentum 0.9, Nesterov
  adam     2e-3   (configs/cifar10.py's AdamW rate when this ran)
  rmsprop  1e-3   decay 0.9, no momentum (PyTorch's and Keras' default; with
                  the config's momentum 0.9 the step would be ~10x larger)

All three take L2 weight decay 5e-4 added to the gradient (PyTorch's
`weight_decay`): configs/cifar10.py's 5e-2 is AdamW's decoupled decay, which as
an L2 term would be 100x too strong. configs/cifar10_isovolnet_seed.py notes
that SGD at 0.05 diverged on the seed's 5-block net in a 150-step probe; on the
4-block default it trains (results/optimizer/README.md). A diverging point is recorded
as failed in results.md and the sweep goes on.

Budget and model: results/optimizer/README.md, seed 003's plan (10 complete epochs on
the default IsoVolNet: 4 blocks, average pooling, swish; seeds 0-2 seed-major;
committed points are skipped on rerun).
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
