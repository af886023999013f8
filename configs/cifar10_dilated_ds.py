r"""Seed 002's dilated grouped-conv residual net on CIFAR-10, under 200k params.

Online (tfds downloads CIFAR-10 the first time):

  python -m isovolnet_jax.main --config=configs/cifar10_dilated_ds.py --workdir=runs/cifar10_dilated_ds

Offline, on the JPEG copy of CIFAR-10:

  python -m isovolnet_jax.main --config=configs/cifar10_dilated_ds.py --workdir=runs/cifar10_dilated_ds \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg

Add --config.data.val_size=0 to train on all 50,000 images, as the seed did.
Its accuracy and time after these 100 epochs, against the seed's own:
results/seed002_gpu/README.md.
"""

from isovolnet_jax import config_defaults


def get_config():
  config = config_defaults.get_base_config()
  # The seed's architecture (isovolnet_jax/models/dilated_ds.py says how the
  # torchsummary table fixes it).
  config.model.update(
      name='dilated_ds', width=64, expanded=128, groups=32,
      dilations=(1, 1, 2, 4, 8, 12, 16, 20, 22), valid_blocks=2, dropout=0.05,
      norm='batch', activation='relu', conv_impl='auto')
  # The seed does not give its recipe: SGD + one-cycle, the usual CIFAR recipe
  # for a BatchNorm net (untuned here).
  config.optimizer.update(name='sgd', learning_rate=0.1, momentum=0.9,
                          nesterov=True, weight_decay=5e-4, schedule='onecycle')
  config.label_smoothing = 0.1
  config.num_epochs = 100
  config.batch_size = 256
  return config
