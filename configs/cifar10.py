r"""IsoVolNet on CIFAR-10, the default: the seed's design with 4 blocks (100 epochs).

Online (tfds downloads CIFAR-10 the first time):

  python -m isovolnet_jax.main --config=configs/cifar10.py --workdir=runs/cifar10

Offline, on the JPEG copy of CIFAR-10 (or any image folder with train/ and test/):

  python -m isovolnet_jax.main --config=configs/cifar10.py --workdir=runs/cifar10 \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg

configs/cifar10_isovolnet_seed.py (the seed's exact design: 5 blocks,
2,566,747 params) with one change: 4 blocks, 32x32x3 -> 2x2x768, 169,819
params (the volume is still constant). Measured on the JPEG copy of CIFAR-10,
2 CPU cores, equal training time (configs/sweeps/isovolnet_equal_time.py,
README "Results"): 66.3 +- 0.8% test accuracy against the 5-block net's
62.2 +- 0.8% (3 seeds each, 315 s of training), 75.5% against 73.2% at three
times that (seed 0). The 5th block's 768 -> 3072 pointwise conv holds 92% of
the parameters and costs 44% of the training time, for less accuracy per
second. configs/sweeps/isovolnet_variants.py searches further within the design.
"""

import os

from isovolnet_jax import config_defaults


def get_config():
  config = config_defaults.load_config_file(os.path.join(
      os.path.dirname(os.path.abspath(__file__)), 'cifar10_isovolnet_seed.py'))
  config.model.num_blocks = 4
  return config
