r"""ResNet-20 (option A shortcuts) on CIFAR-10, He et al. (2016)'s recipe.

Online (tfds downloads CIFAR-10 the first time):

  python -m isovolnet_jax.main --config=configs/cifar10_resnet20.py --workdir=runs/cifar10_resnet20

Offline, on the JPEG copy of CIFAR-10:

  python -m isovolnet_jax.main --config=configs/cifar10_resnet20.py --workdir=runs/cifar10_resnet20 \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg
"""

from isovolnet_jax import config_defaults


def get_config():
  config = config_defaults.get_base_config()
  config.model.update(name='resnet20', depth=20, norm='batch', activation='relu')
  # The paper: SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128, 64k
  # iterations, rate / 10 at 32k and 48k; 4-pixel pad + crop and flips.
  config.optimizer.update(name='sgd', learning_rate=0.1, momentum=0.9,
                          nesterov=False, weight_decay=1e-4,
                          schedule='piecewise', boundaries=(0.5, 0.75),
                          decay_factor=0.1)
  config.label_smoothing = 0.0
  config.batch_size = 128
  config.num_train_steps = 64000
  config.num_epochs = 182  # What 64k steps are on a 45k-image training split.
  # bfloat16 convolutions where the CPU has native bfloat16, float32 elsewhere:
  # faster with float32's accuracy (docs/defaults.md, "Precision").
  config.dtype = 'auto'
  return config
