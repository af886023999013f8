r"""IsoVolNet on CIFAR-10, the default: the seed's design with 4 blocks, average
pooling, swish, a peak learning rate of 3.2e-2 and 6-view test-time augmentation.

Online (tfds downloads CIFAR-10 the first time):

  python -m isovolnet_jax.main --config=configs/cifar10.py --workdir=runs/cifar10

Offline, on the JPEG copy of CIFAR-10 (or any image folder with train/ and test/):

  python -m isovolnet_jax.main --config=configs/cifar10.py --workdir=runs/cifar10 \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg

configs/cifar10_isovolnet_seed.py (the seed's exact design: 5 blocks, max
pooling, ReLU) with the changes the design and recipe leave free that were
measured to help, each adopted by a rule fixed before its seeds ran:
- 4 blocks instead of 5: results/isovolnet_equal_time/README.md
  (configs/sweeps/isovolnet_equal_time.py);
- 2x2 average pooling in the blocks (global pooling stays max) and swish
  instead of ReLU: results/isovolnet_variants/README.md
  (configs/sweeps/isovolnet_variants.py);
- peak learning rate 3.2e-2 instead of 2e-3 (AdamW, one-cycle):
  results/learning_rate/README.md (configs/sweeps/learning_rate.py);
- airbench's 6-view test-time augmentation (evaluation only):
  results/airbench/zoo/README.md (configs/sweeps/zoo_airbench_equal_time.py).
  That study's other two tricks, label smoothing 0.2 and lookahead, lost in
  every seed, so they are off: docs/defaults.md has the rule and the table.
The figures are in those READMEs and in results/README.md.
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
  config.eval_tta = 'airbench6'  # 6 forward passes an image in evaluation.
  # bfloat16 convolutions where the CPU has native bfloat16, float32 elsewhere:
  # faster with float32's accuracy (docs/defaults.md, "Precision").
  config.dtype = 'auto'
  return config
