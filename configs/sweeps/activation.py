r"""Seed 003, activation functions: ReLU vs Leaky ReLU (slope 0.01) vs Swish.

  LD_PRELOAD=libtcmalloc.so.4 python -m isovolnet_jax.sweep --config=configs/cifar10.py \
    --sweep=configs/sweeps/activation.py --workdir=runs/sweeps/activation --results=results/activation \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.num_epochs=10

9 points (3 activations x 3 seeds). The rest of the recipe
is configs/cifar10.py's (AdamW, lr 2e-3, onecycle).

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
ACTIVATIONS = ('relu', 'leaky_relu', 'swish')


def get_sweep():
  return [{'model.activation': a, 'seed': s} for s in SEEDS for a in ACTIVATIONS]
