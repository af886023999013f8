r"""Which input path trains faster here: augmentation inside the jitted step, or tf.data?

  python benchmarks/input_pipeline.py --data_path=../shared/data/cifar10_jpeg \
    [--steps=40] [--batch_size=256]

(a) what train.py does: uint8 arrays in memory, a host-side gather per step,
    random crop + flip inside the jitted train step;
(b) the classic alternative: a tf.data pipeline (shuffle, crop + flip with
    tf.image, batch, prefetch) running on CPU threads beside XLA, feeding the
    same step with its own augmentation switched off.
Both train configs/cifar10.py's model; prints images/s of each after a warm-up.
"""

import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app
from absl import flags
import jax
import numpy as np
import tensorflow as tf

from isovolnet_jax import config_defaults
from isovolnet_jax import input_pipeline
from isovolnet_jax import models
from isovolnet_jax import train

flags.DEFINE_string('data_path', '../shared/data/cifar10_jpeg', 'Image folder.')
flags.DEFINE_integer('steps', 40, 'Timed steps per path (after 5 warm-up steps).')
flags.DEFINE_integer('batch_size', 256, 'Global batch size.')
FLAGS = flags.FLAGS


def cifar10_config():
  config = config_defaults.load_config_file(
      os.path.join(os.path.dirname(__file__), '..', 'configs', 'cifar10.py'))
  config.data.update({'source': 'folder', 'path': FLAGS.data_path})
  config.batch_size = FLAGS.batch_size
  return config


def timed(step_fn, batches, state):
  for _ in range(5):  # Compile and warm up.
    state, m = step_fn(state, *next(batches))
  jax.block_until_ready(m)
  start = time.perf_counter()
  for _ in range(FLAGS.steps):
    state, m = step_fn(state, *next(batches))
  jax.block_until_ready(m)
  return FLAGS.steps * FLAGS.batch_size / (time.perf_counter() - start)


def tf_data_batches(images, labels, batch_size, seed):
  def aug(x, y):
    x = tf.image.pad_to_bounding_box(x, 4, 4, 40, 40)
    x = tf.image.random_crop(x, (32, 32, 3), seed=seed)
    return tf.image.random_flip_left_right(x, seed=seed), y
  ds = (tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(len(images), seed=seed).repeat()
        .map(aug, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=True).prefetch(2))
  return ds.as_numpy_iterator()


def main(argv):
  del argv
  tf.config.set_visible_devices([], 'GPU')
  config = cifar10_config()
  data = input_pipeline.load(config)
  mesh = train.make_mesh(config.batch_size)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  model = models.create_model(config.model, data.num_classes)
  schedule = train.create_learning_rate_schedule(config.optimizer, 1000, 175)
  tx = train.create_optimizer(config.optimizer, schedule)
  key = jax.random.key(0)

  results = {}
  for name, augment_in_step in (('augment in the jitted step', True),
                                ('tf.data pipeline', False)):
    cfg = config.copy_and_resolve_references()
    if not augment_in_step:
      cfg.augment.update({'crop_padding': 0, 'flip': False})
    step = jax.jit(lambda s, x, y, c=cfg: train.train_step(
        s, *train.to_global(mesh, x, y), key, config=c, num_classes=10),
                   donate_argnums=0)
    state = train.create_train_state(cfg, model, data.image_shape, tx, key, replicated)
    if augment_in_step:
      batches = ((x, y) for _, x, y in input_pipeline.train_batches(
          data.train_images, data.train_labels, seed=0,
          batch_size=cfg.batch_size, start_step=0))
    else:
      batches = tf_data_batches(data.train_images, data.train_labels, cfg.batch_size, 0)
    results[name] = timed(step, batches, state)
    print(f'{name:28s} {results[name]:7.0f} img/s', flush=True)
  a, b = results.values()
  print(f'in-step / tf.data = {a / b:.2f}')


if __name__ == '__main__':
  app.run(main)
