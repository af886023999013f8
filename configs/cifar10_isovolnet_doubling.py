r"""IsoVolNet's channel-doubling baseline on CIFAR-10.

configs/cifar10_isovolnet_seed.py (the seed's 5-block design) with
model.channel_multiplier=2 and nothing else changed:
channels x2 per block instead of x4, so the feature volume H*W*C halves at
every block (the usual CNN habit) instead of staying constant (8,503 params
against 2,566,747).

Online (tfds downloads CIFAR-10 the first time):

  python -m isovolnet_jax.main --config=configs/cifar10_isovolnet_doubling.py --workdir=runs/cifar10_isovolnet_doubling

Offline, on the JPEG copy of CIFAR-10:

  python -m isovolnet_jax.main --config=configs/cifar10_isovolnet_doubling.py --workdir=runs/cifar10_isovolnet_doubling \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg
"""

import os

from isovolnet_jax import config_defaults


def _base_config():
  # The seed's design itself, so the two runs differ in the one knob below.
  return config_defaults.load_config_file(
      os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cifar10_isovolnet_seed.py'))


def get_config():
  config = _base_config()
  config.model.channel_multiplier = 2
  return config
