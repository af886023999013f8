r"""MobileNetV2 (width 1.0) on ImageNet-2012 at 224x224, streaming input.

Streams the data (`data.pipeline='stream'`): tf.data reads, decodes and
augments (random-resized crop + flip; eval: centre crop) on each host, each
process its own share, so nothing like the ~190 GB of decoded images is held
in memory. Evaluation reads `validation` (imagenet2012 has no `test`); the
last 10,000 training images are held out as `val` for the best checkpoint.

Prepare ImageNet once (tfds cannot download it): put ILSVRC2012_img_train.tar
and ILSVRC2012_img_val.tar in DATA_DIR/downloads/manual/, run
`tfds build imagenet2012 --data_dir=DATA_DIR` (DATA_DIR may be gs://BUCKET/tfds),
then on one machine:

  python -m isovolnet_jax.main --config=configs/imagenet_mobilenet_v2.py \
    --workdir=runs/imagenet_mobilenet_v2 --config.data.tfds_data_dir=DATA_DIR

On a Cloud TPU pod slice: the same command on every host, the data on a
bucket, the workdir on a file system all hosts share (e.g. a gcsfuse or
Filestore mount):

  gcloud compute tpus tpu-vm ssh TPU_NAME --zone=ZONE --worker=all --command="
    cd isovolnet_jax && python -m isovolnet_jax.main \
    --config=configs/imagenet_mobilenet_v2.py --workdir=/mnt/shared/imagenet_mnv2 \
    --config.data.tfds_data_dir=gs://BUCKET/tfds --jax_distributed_auto"

Offline, on an image folder (train/<class>/*.jpg and validation/ or test/):

  python -m isovolnet_jax.main --config=configs/imagenet_mobilenet_v2.py \
    --workdir=runs/imagenet_mobilenet_v2 \
    --config.data.source=folder --config.data.path=/path/to/imagenet_jpeg

The number of classes comes from the dataset (1000) at train time. Tests run
this config on `tfds.testing.mock_data` and on a generated folder of 224x224
JPEGs (tests/test_data_stream_imagenet.py).

  python -m isovolnet_jax.summary --config=configs/imagenet_mobilenet_v2.py
prints the per-layer table: 3,504,872 params, 601.5 MFLOPs (300.8M MACs).
"""

from isovolnet_jax import config_defaults


def get_config():
  config = config_defaults.get_base_config()
  # eval_split '' = the dataset's 'test', else 'validation' (ImageNet's).
  config.data.update(source='tfds', name='imagenet2012', pipeline='stream',
                     image_size=224, eval_resize=256, val_size=10000,
                     shuffle_window=10000)
  config.augment.update(area_range=(0.08, 1.0), aspect_range=(0.75, 1.3333), flip=True)
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
