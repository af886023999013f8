"""The data: `dataset(config)` is what training and evaluation read.

  sources.py   tfds datasets and image folders, their splits, the checks on config.data
  order.py     steps per epoch, the epoch's permutation, batches' rows, padding
  augment.py   crop, translation and flips (in the train step, or on the host)
  memory.py    data.pipeline='memory': whole splits as uint8 arrays
  stream.py    data.pipeline='stream': read, decoded and augmented on the fly

Both pipelines give a dataset with `num_classes`, `image_shape`,
`class_names`, `num_examples(split)`, `train_batches(...)` (the position a
function of the step), `eval_batches(...)` and `device_prefetch`; which one
runs is this package's business alone.
"""

import collections

import jax
import ml_collections

from isovolnet_jax.data import augment
from isovolnet_jax.data import memory
from isovolnet_jax.data import stream
from isovolnet_jax.data.augment import normalize
from isovolnet_jax.data.order import steps_per_epoch
from isovolnet_jax.errors import InputError

PIPELINES = ('memory', 'stream')


def _pipeline(config: ml_collections.ConfigDict) -> str:
  if config.data.pipeline not in PIPELINES:
    raise InputError(f"unknown data.pipeline={config.data.pipeline!r}; "
                     f"choose 'memory' or 'stream'")
  return config.data.pipeline


def dataset(config: ml_collections.ConfigDict) -> memory.Dataset | stream.StreamDataset:
  """`data.pipeline`: 'memory' (whole splits as arrays) or 'stream' (read and
  augmented on the fly)."""
  augment.check(config.augment, _pipeline(config))
  load = memory.load if _pipeline(config) == 'memory' else stream.load
  return load(config)


def augment_in_step(key: jax.Array, images, config: ml_collections.ConfigDict):
  """The train step's augmentation of its uint8 batch: the memory pipeline's
  crop (or translation) and random flip; the stream pipeline's images come
  augmented already."""
  if _pipeline(config) == 'stream':
    return images
  aug = config.augment
  return augment.augment(key, images, aug.crop_padding, aug.flip, aug.get('translate', 0))


def prefetch(iterator, size: int):
  """Keeps `size` items ahead: batches already sent to the devices (the
  transfer is asynchronous) overlap with the step that runs."""
  queue = collections.deque()
  for item in iterator:
    queue.append(item)
    if len(queue) > size:
      yield queue.popleft()
  yield from queue
