r"""Seed 003, activation functions: ReLU vs Leaky ReLU (slope 0.01) vs Swish.

  LD_PRELOAD=libtcmalloc.so.4 python -m isovolnet_jax.tools.sweep --config=configs/cifar10.py \
    --sweep=configs/sweeps/activation.py --workdir=runs/sweeps/activation --results=results/activation \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.num_epochs=10 --config.optimizer.learning_rate=2e-3 \
    --reuse=results/activation,results/learning_rate,results/dropout,results/batch_size \
    --config.label_smoothing=0.1 --config.optimizer.lookahead_every=0 --config.eval_tta=  # the default before 2026-12-03

9 points (3 activations x 3 seeds). The rest of the recipe
is configs/cifar10.py's at rate 2e-3 (AdamW, onecycle).

--config.optimizer.learning_rate=2e-3 keeps the base the sweeps ran
around: configs/cifar10.py before configs/sweeps/learning_rate.py moved its rate
to 3.2e-2.

Budget and model: results/activation/README.md, seed 003's plan (10 complete epochs on
the default IsoVolNet: 4 blocks, average pooling, swish; seeds 0-2 seed-major;
committed points are skipped on rerun).
"""

SEEDS = (0, 1, 2)
ACTIVATIONS = ('relu', 'leaky_relu', 'swish')


def get_sweep():
  return [{'model.activation': a, 'seed': s} for s in SEEDS for a in ACTIVATIONS]
