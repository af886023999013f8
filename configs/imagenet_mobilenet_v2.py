r"""MobileNetV2 (width 1.0) on ImageNet-2012 at 224x224: 3,504,872 params.

tfds cannot download ImageNet: put ILSVRC2012_img_train.tar and
ILSVRC2012_img_val.tar in <tfds_data_dir>/downloads/manual/ first. Then:

  python -m isovolnet_jax.main --config=configs/imagenet_mobilenet_v2.py --workdir=runs/imagenet_mobilenet_v2

Offline, on an image folder (train/<class>/*.jpg, test/<class>/*.jpg):

  python -m isovolnet_jax.main --config=configs/imagenet_mobilenet_v2.py --workdir=runs/imagenet_mobilenet_v2 \
    --config.data.source=folder --config.data.path=/path/to/imagenet_jpeg

The number of classes comes from the dataset (1000) at train time.

Scale: 1.28M training images are ~190 GB as 224x224 uint8 arrays, so the
input pipeline must stream them rather than hold them in memory, and tfds
names ImageNet's held-out split 'validation', not 'test'.

  python -m isovolnet_jax.summary --config=configs/imagenet_mobilenet_v2.py
prints the per-layer table: 3,504,872 params, 601.5 MFLOPs (300.8M MACs).
"""

from isovolnet_jax import config_defaults


def get_config():
  config = config_defaults.get_base_config()
  config.data.update(source='tfds', name='imagenet2012', image_size=224,
                     val_size=10000)
  config.model.update(
      name='mobilenet_v2', width_multiplier=1.0, cifar_stem=False, expansion=6,
      dropout=0.2, norm='batch', activation='relu6')
  # SGD + cosine at batch 256; weight decay 4e-5 as the MobileNetV2 paper
  # (small models underfit ImageNet, so they take little regularisation).
  config.optimizer.update(name='sgd', learning_rate=0.1, momentum=0.9,
                          nesterov=True, weight_decay=4e-5, schedule='cosine')
  config.label_smoothing = 0.1
  config.num_epochs = 150
  config.batch_size = 256
  config.eval_batch_size = 250  # 50,000 validation images; 224x224 is big.
  config.checkpoint_every_steps = 5000
  return config
