"""The data: `dataset(config)` is what training and evaluation read.

  sources.py   tfds datasets and image folders, their splits, the checks on config.data
  order.py     steps per epoch, the epoch's permutation, batches' rows, padding
  augment.py   crop and flip (in the train step, or on the host); airbench's
               translation and alternating flip: isovolnet_jax/airbench/augment.py
  memory.py    data.pipeline='memory': whole splits as uint8 arrays
  stream.py    data.pipeline='stream': read, decoded and augmented on the fly
  resident.py  the memory pipeline's training split on the devices, batches gathered in the step

Both pipelines give a dataset with `num_classes`, `image_shape`,
`class_names`, `num_examples(split)`, `train_batches(...)` (the position a
function of the step), `eval_batches(...)` and `device_prefetch`; which one
runs is this package's business alone. The memory pipeline's training split
may live on the devices instead (resident.py, `data.device_resident`).
"""

import queue
import threading

import jax
import ml_collections

from isovolnet_jax.data import augment
from isovolnet_jax.data import memory
from isovolnet_jax.data import resident
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
  load = memory.load if _pipeline(config) == 'memory' else stream.load
  return load(config)


def augment_in_step(key: jax.Array, images, config: ml_collections.ConfigDict):
  """The train step's augmentation of its uint8 batch: the memory pipeline's
  crop (or translation) and random flip; the stream pipeline's images come
  augmented already."""
  if _pipeline(config) == 'stream':
    return images
  aug = config.augment
  return augment.augment(key, images, aug.crop_padding, aug.flip, aug.translate)


class _Raised:
  def __init__(self, error: BaseException):
    self.error = error


_END = object()


def prefetch(iterator, size: int):
  """Yields `iterator`'s items in order, produced by a background thread that
  keeps up to `size` of them ready (batches already sent to the devices, the
  transfers asynchronous), so the step never waits for the host to read,
  gather or transfer a batch. size <= 0: in the caller's thread. An error in
  the thread is raised here, at the item where it happened."""
  if size <= 0:
    yield from iterator
    return
  ready, stop = queue.Queue(maxsize=size), threading.Event()

  def put(item) -> bool:
    while not stop.is_set():
      try:
        ready.put(item, timeout=0.05)
        return True
      except queue.Full:
        pass
    return False

  def produce():
    try:
      for item in iterator:
        if not put(item):
          return
      put(_END)
    except BaseException as e:  # pylint: disable=broad-except
      put(_Raised(e))

  thread = threading.Thread(target=produce, name='isovolnet-prefetch', daemon=True)
  thread.start()
  try:
    while (item := ready.get()) is not _END:
      if isinstance(item, _Raised):
        raise item.error
      yield item
  finally:
    # Wait for the producer: a thread still inside tf.data or a transfer when
    # the interpreter exits can abort the process.
    stop.set()
    thread.join(timeout=30)
