"""The memory pipeline (`data.pipeline='memory'`): whole splits as uint8 arrays.

CIFAR-sized data fits in memory, so the splits are loaded once (tfds or an
image folder) into uint8 numpy arrays. Training reads them from the devices
when the split fits there (`resident`: the batch gathered in the train step);
else a training batch is a host-side gather by the epoch's permutation
(`order`), with airbench's alternating flip applied where each row's index is
known (`airbench.augment.alternating_flip`), sent ahead by a thread (`data.prefetch`).
Crop and flip run in the train step either way (`augment.augment`).
"""

import dataclasses
from collections.abc import Iterator

import ml_collections
import numpy as np

from isovolnet_jax.airbench import augment as airbench_augment
from isovolnet_jax.data import order
from isovolnet_jax.data import sources


@dataclasses.dataclass
class Dataset:
  train_images: np.ndarray  # uint8 [N, H, W, 3]
  train_labels: np.ndarray  # int32 [N]
  val_images: np.ndarray
  val_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  class_names: list[str]
  device_prefetch: int = 0  # config.data.prefetch: batches sent ahead by a thread.
  alternating_flip: bool = False  # config.augment.alternating_flip

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train_images.shape[1:])

  def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
    return getattr(self, f'{name}_images'), getattr(self, f'{name}_labels')

  # The interface train.py shares with stream.StreamDataset.
  def num_examples(self, split: str) -> int:
    return len(self.split(split)[0])

  def train_batches(self, **kwargs):
    return train_batches(self.train_images, self.train_labels,
                         alternating_flip=self.alternating_flip, **kwargs)

  def eval_batches(self, split: str, batch_size: int, process_index: int = 0,
                   process_count: int = 1):
    return eval_batches(*self.split(split), batch_size, process_index, process_count)


def load(config: ml_collections.ConfigDict) -> Dataset:
  """Loads train/val/test as uint8 arrays; val = the last `val_size` of train."""
  cfg = config.data
  sources.check_source(cfg)
  read = sources.tfds_arrays if cfg.source == 'tfds' else sources.folder_arrays
  (train_x, train_y), (test_x, test_y), names = read(cfg)
  sources.check_min_size(*train_x.shape[1:3])
  cut = sources.val_cut(len(train_x), cfg.val_size)
  return Dataset(train_x[:cut], train_y[:cut], train_x[cut:], train_y[cut:],
                 test_x, test_y, list(names),
                 device_prefetch=cfg.prefetch,
                 alternating_flip=config.augment.alternating_flip)


def train_batches(images: np.ndarray, labels: np.ndarray, *, seed: int,
                  batch_size: int, start_step: int, process_index: int = 0,
                  process_count: int = 1, alternating_flip: bool = False,
                  ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
  """Yields (step, images, labels) from `start_step` on, forever.

  Each process yields only its slice of the global batch; the global batch of
  a step is the same whatever the number of processes or devices.
  `alternating_flip`: images mirrored by (seed, row, epoch), airbench's flip.
  """
  n_steps = order.steps_per_epoch(len(images), batch_size)
  mine = order.process_slice(process_index, process_count, batch_size)
  step, epoch, perm = start_step, -1, None
  while True:
    e, i = divmod(step, n_steps)
    if e != epoch:
      epoch, perm = e, order.epoch_permutation(seed, e, len(images))
    idx = order.batch_rows(perm, i, batch_size)[mine]
    batch = images[idx]
    if alternating_flip:
      batch = airbench_augment.alternating_flip(batch, idx, epoch, seed)
    yield step, batch, labels[idx]
    step += 1


def eval_batches(images: np.ndarray, labels: np.ndarray, batch_size: int,
                 process_index: int = 0, process_count: int = 1):
  """Yields (images, labels, mask): the last batch padded, mask 0 on padding."""
  mine = order.process_slice(process_index, process_count, batch_size)
  for start in range(0, len(images), batch_size):
    x, y, mask = order.padded(images[start:start + batch_size],
                              labels[start:start + batch_size], batch_size)
    yield x[mine], y[mine], mask[mine]
