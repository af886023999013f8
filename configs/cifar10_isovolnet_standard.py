r"""IsoVolNet with standard 3x3 convs on CIFAR-10.

configs/cifar10_isovolnet_seed.py (the seed's 5-block design) with
model.conv='standard' and nothing else changed: the
standard-conv twin of the separable model (same widths and recipe), for
seed 003's separable-vs-standard comparison (22,688,134 params against
2,566,747).

Online (tfds downloads CIFAR-10 the first time):

  python -m isovolnet_jax.main --config=configs/cifar10_isovolnet_standard.py --workdir=runs/cifar10_isovolnet_standard

Offline, on the JPEG copy of CIFAR-10:

  python -m isovolnet_jax.main --config=configs/cifar10_isovolnet_standard.py --workdir=runs/cifar10_isovolnet_standard \
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
  config.model.conv = 'standard'
  return config
