r"""IsoVolNet on CIFAR-10, the default: the seed's design with 4 blocks, average
pooling, swish and a peak learning rate of 3.2e-2.

Online (tfds downloads CIFAR-10 the first time):

  python -m isovolnet_jax.main --config=configs/cifar10.py --workdir=runs/cifar10

Offline, on the JPEG copy of CIFAR-10 (or any image folder with train/ and test/):

  python -m isovolnet_jax.main --config=configs/cifar10.py --workdir=runs/cifar10 \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg

configs/cifar10_isovolnet_seed.py (the seed's exact design: 5 blocks, max
pooling, ReLU, 2,566,747 params) with four changes the design and recipe
leave free, each measured on the JPEG copy of CIFAR-10 on 2 CPU cores with 3
seeds (results/README.md); the first three at seed 000's equal training time
(315 s of training steps):
- 4 blocks (32x32x3 -> 2x2x768, 169,819 params; the volume is still
  constant): 66.3 +- 0.8% test accuracy against the 5 blocks' 62.2 +- 0.8%
  (configs/sweeps/isovolnet_equal_time.py). The 5th block's 768 -> 3072
  pointwise conv holds 92% of the parameters and costs 44% of the training
  time, for less accuracy per second.
- 2x2 average pooling in the blocks instead of max (global pooling stays max)
  and swish instead of ReLU: 70.8 +- 0.5% test accuracy against the 4 blocks'
  66.3 +- 0.8% (configs/sweeps/isovolnet_variants.py, the arm with the best
  validation accuracy of the variants searched).
- Peak learning rate 3.2e-2 instead of 2e-3 (AdamW, one-cycle): at 10 epochs,
  77.6 +- 0.3% validation accuracy (test 77.4 +- 0.3%) against 68.0 +- 0.6%
  (test 67.5 +- 0.9%), the best of 5e-4 ... 1.28e-1 in factors of 2
  (configs/sweeps/learning_rate.py, 3 seeds). The rule, fixed before
  seeds 1-2 ran: a rate whose mean validation accuracy leads 2e-3's by more
  than 1 point becomes the default. Not measured: the rate at 100 epochs.
Then airbench's three tricks that add nothing to a step's cost (2026-12-03,
configs/sweeps/zoo_airbench_equal_time.py, 3 seeds at the same 315 s):
label smoothing 0.2 instead of 0.1, lookahead every 5 steps from 30% of the
run, and the 6-view test-time augmentation: 81.11 +- 0.15% validation
accuracy against 78.87 +- 0.14% (test 80.69 +- 0.15% against 78.82 +- 0.13%).
The rule, fixed before any point finished: the three join if they lead by
more than 1 point of validation accuracy. The TTA carries it; the two
training tricks alone are within noise (results/airbench/zoo/README.md).
"""

import os

from isovolnet_jax import config_defaults


def get_config():
  config = config_defaults.load_config_file(os.path.join(
      os.path.dirname(os.path.abspath(__file__)), 'cifar10_isovolnet_seed.py'))
  config.model.update(num_blocks=4, pool='avg', activation='swish')
  # AdamW's decoupled weight decay is scaled by the rate in optax, so 16x the
  # rate is also 16x the decay per step; the sweep measured the two together.
  config.optimizer.learning_rate = 3.2e-2
  config.label_smoothing = 0.2
  # From epoch 30 of 100, as airbench94 from 3 of 9.9; a shorter run
  # (--config.num_epochs=N) wants --config.optimizer.lookahead_start_epochs=0.3N.
  config.optimizer.update(lookahead_every=5, lookahead_start_epochs=30.0)
  config.eval_tta = 'airbench6'  # 6 forward passes an image in evaluation.
  return config
