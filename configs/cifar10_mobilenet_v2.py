r"""MobileNetV2 (width 1.0, CIFAR stem) on CIFAR-10.

Online (tfds downloads CIFAR-10 the first time):

  python -m isovolnet_jax.main --config=configs/cifar10_mobilenet_v2.py --workdir=runs/cifar10_mobilenet_v2

Offline, on the JPEG copy of CIFAR-10:

  python -m isovolnet_jax.main --config=configs/cifar10_mobilenet_v2.py --workdir=runs/cifar10_mobilenet_v2 \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg
"""

from isovolnet_jax import config_defaults


def get_config():
  config = config_defaults.get_base_config()
  # cifar_stem: stem stride 1 and the first stride-2 stage at stride 1, so a
  # 32x32 image ends at 4x4 instead of 1x1 (2,236,682 params for 10 classes).
  config.model.update(
      name='mobilenet_v2', width_multiplier=1.0, cifar_stem=True, expansion=6,
      dropout=0.2, norm='batch', activation='relu6', conv_impl='auto')
  config.optimizer.update(name='sgd', learning_rate=0.1, momentum=0.9,
                          nesterov=True, weight_decay=5e-4, schedule='onecycle')
  config.label_smoothing = 0.1
  config.num_epochs = 100
  config.batch_size = 256
  return config
