r"""Seed 004's SimpleCNN on CIFAR-10.

Online (tfds downloads CIFAR-10 the first time):

  python -m isovolnet_jax.main --config=configs/cifar10_simple_cnn.py --workdir=runs/cifar10_simple_cnn

Offline, on the JPEG copy of CIFAR-10:

  python -m isovolnet_jax.main --config=configs/cifar10_simple_cnn.py --workdir=runs/cifar10_simple_cnn \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg
"""

from isovolnet_jax import config_defaults


def get_config():
  config = config_defaults.get_base_config()
  config.model.update(name='simple_cnn', widths=(64, 128, 256), hidden=128,
                      dropout=0.5, norm='batch', activation='relu')
  config.optimizer.update(name='sgd', learning_rate=0.1, momentum=0.9,
                          nesterov=True, weight_decay=5e-4, schedule='onecycle')
  config.label_smoothing = 0.1
  config.num_epochs = 100
  config.batch_size = 256
  return config
