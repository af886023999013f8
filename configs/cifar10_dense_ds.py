r"""Seed 003's dense-block depthwise-separable net on CIFAR-10 (100 epochs).

Online (tfds downloads CIFAR-10 the first time):

  python -m isovolnet_jax.main --config=configs/cifar10_dense_ds.py --workdir=runs/cifar10_dense_ds

Offline, on the JPEG copy of CIFAR-10:

  python -m isovolnet_jax.main --config=configs/cifar10_dense_ds.py --workdir=runs/cifar10_dense_ds \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg

The seed's comparison with traditional convolutions: add
--config.model.conv=standard (372,714 -> 1,619,274 params).
"""

from isovolnet_jax import config_defaults


def get_config():
  config = config_defaults.get_base_config()
  config.model.update(
      name='dense_ds', growth_rate=32, layers_per_block=6, num_blocks=4,
      compression=0.5, stem_features=0, dropout=0.1, conv='separable',
      norm='batch', activation='relu', conv_impl='auto')
  # SGD + one-cycle, the usual CIFAR recipe for a BatchNorm net (untuned here).
  config.optimizer.update(name='sgd', learning_rate=0.1, momentum=0.9,
                          nesterov=True, weight_decay=5e-4, schedule='onecycle')
  config.label_smoothing = 0.1
  config.num_epochs = 100
  config.batch_size = 256
  return config
