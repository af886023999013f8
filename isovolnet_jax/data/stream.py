"""Streaming input (`data.pipeline='stream'`): datasets larger than memory.

Nothing is loaded whole. tf.data reads, decodes and augments the examples on
host threads while the devices run the previous step (ImageNet style:
random-resized crop + flip for training, centre crop + resize for
evaluation), and `data.prefetch` puts batches on the devices ahead of the step.
Each process reads only its share of every epoch.

The data position is a function of the step, as in the memory path, so a
resumed run reads the same examples in the same order; each example's
augmentation comes from a stateless seed (config seed, its ordinal in the
run), so it is the same too.

- Image folders are random access: epoch e is
  `order.epoch_permutation(seed, e, N)`, the global batch of a step
  is the memory path's, and each process reads only its rows of it.
- tfds datasets are TFRecord files, read in sequence: of P processes, process
  p reads examples [p*M, (p+1)*M), M = N // P, in windows of
  `data.shuffle_window` consecutive examples; an epoch visits the windows in
  a random order and each window in a random order (tfds shuffles a dataset
  when it prepares it, so a window is already a mix of classes). The next
  window is read while the current one is consumed (2 windows of encoded
  bytes in memory). A resume rereads, without decoding, at most one window.

Why tf.data and not Grain: Grain reads by index, which tfds offers only for
datasets prepared as ArrayRecord; ImageNet and most tfds datasets are
prepared as TFRecord. tf.data reads both tfds and folders, TensorFlow is
already a dependency, and its C++ threads do not hold the GIL.
"""

import dataclasses
import functools
import logging
import math
from collections.abc import Iterator

import numpy as np

from isovolnet_jax.data import augment
from isovolnet_jax.data import order
from isovolnet_jax.data import sources
from isovolnet_jax.errors import InputError


# ---------------------------------------------------------------- records

class FolderRecords:
  """Examples of an image-folder split (paths and labels): random access."""

  def __init__(self, paths: np.ndarray, labels: np.ndarray):
    self.paths, self.labels = paths, labels

  def __len__(self):
    return len(self.paths)

  def sub(self, lo: int, hi: int) -> 'FolderRecords':
    return FolderRecords(self.paths[lo:hi], self.labels[lo:hi])

  def take(self, indices: np.ndarray):
    """(encoded image, label) of the examples at `indices`, in that order."""
    tf = augment.tf()
    ds = tf.data.Dataset.from_tensor_slices((self.paths[indices], self.labels[indices]))
    return ds.map(lambda p, y: (tf.io.read_file(p), y),
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  def range(self, lo: int, hi: int):
    return self.take(np.arange(lo, hi))


class TfdsRecords:
  """A tfds split, or examples [lo, hi) of it: read in sequence, not decoded."""

  def __init__(self, builder, split: str, lo: int, hi: int):
    self.builder, self.split, self.lo, self.hi = builder, split, lo, hi

  def __len__(self):
    return self.hi - self.lo

  def sub(self, lo: int, hi: int) -> 'TfdsRecords':
    return TfdsRecords(self.builder, self.split, self.lo + lo, self.lo + hi)

  def range(self, lo: int, hi: int):
    import tensorflow_datasets as tfds
    ds = self.builder.as_dataset(
        split=f'{self.split}[{self.lo + lo}:{self.lo + hi}]', shuffle_files=False,
        decoders={'image': tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(try_autocache=False))  # Never cache a split.
    return ds.map(lambda ex: (ex['image'], ex['label']))


# ---------------------------------------------------------------- dataset

@dataclasses.dataclass
class StreamDataset:
  """The splits as records; batches are read, decoded and augmented on demand."""
  splits: dict  # 'train', 'val', 'test' -> FolderRecords | TfdsRecords
  class_names: list[str]
  image_size: int
  eval_resize: int
  area_range: tuple[float, float]
  aspect_range: tuple[float, float]
  flip: bool
  shuffle_window: int
  split_names: dict  # 'train', 'test' -> the dataset's own split names
  device_prefetch: int  # Batches sent to the devices ahead of the step.

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return (self.image_size, self.image_size, 3)

  def num_examples(self, split: str) -> int:
    return len(self.splits[split])

  # ---------------------------------------------------------- training

  def epoch_records(self, seed: int, epoch: int, first: int, n_steps: int,
                    batch_size: int, process_index: int, process_count: int):
    """This process's (encoded, label) records of steps [first, n_steps) of `epoch`."""
    records, local = self.splits['train'], batch_size // process_count
    if isinstance(records, FolderRecords):
      # The memory pipeline's global batches, this process's rows of each.
      perm = order.epoch_permutation(seed, epoch, len(records))
      rows = order.batch_rows(perm, np.arange(first, n_steps), batch_size)
      return records.take(
          rows[:, order.process_slice(process_index, process_count, batch_size)].ravel())
    return self._tfds_epoch(records, seed, epoch, first * local, n_steps * local,
                            process_index, process_count)

  def _tfds_epoch(self, records, seed, epoch, skip, need, process_index, process_count):
    per_process = len(records) // process_count
    shard = records.sub(process_index * per_process, (process_index + 1) * per_process)
    starts = list(range(0, per_process, self.shuffle_window))
    rng = np.random.default_rng([seed, epoch, process_index])
    order, seeds = rng.permutation(len(starts)), rng.integers(2**31, size=len(starts))
    parts, pos = [], 0
    for w in order:
      lo = starts[w]
      n = min(lo + self.shuffle_window, per_process) - lo
      if pos + n > skip:  # Windows wholly before the resume point are not read.
        ds = shard.range(lo, lo + n).shuffle(n, seed=int(seeds[w]),
                                               reshuffle_each_iteration=False)
        parts.append(ds.skip(max(0, skip - pos)))
      pos += n
    # One window after the other, but the next one is opened (read into its
    # shuffle buffer) by a background thread while this one is consumed: a
    # deterministic interleave whose block spans a whole window.
    tf = augment.tf()
    windows = functools.reduce(lambda a, b: a.concatenate(b),
                               [tf.data.Dataset.from_tensors(p) for p in parts])
    return windows.interleave(lambda w: w, cycle_length=2, block_length=self.shuffle_window,
                              num_parallel_calls=2, deterministic=True).take(need - skip)

  def train_batches(self, *, seed: int, batch_size: int, start_step: int,
                    process_index: int = 0, process_count: int = 1
                    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yields (step, uint8 images, int32 labels) of this process, from `start_step` on."""
    tf = augment.tf()
    n_steps = order.steps_per_epoch(self.num_examples('train'), batch_size)
    local = batch_size // process_count
    crop = functools.partial(augment.train_image, size=self.image_size,
                             area_range=self.area_range, aspect_range=self.aspect_range,
                             flip=self.flip)
    step = start_step
    while True:
      epoch, first = divmod(step, n_steps)
      ds = self.epoch_records(seed, epoch, first, n_steps, batch_size, process_index,
                              process_count).enumerate()

      def prepare(k, record, base=step):
        # The example's row in the run's global batches: its own seed.
        ordinal = (base + k // local) * batch_size + process_index * local + k % local
        return crop(record[0], tf.stack([tf.constant(seed, tf.int64), ordinal])), record[1]
      ds = (ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(local, drop_remainder=True).prefetch(2))
      count = 0
      for images, labels in ds.as_numpy_iterator():
        yield step, images, labels.astype(np.int32)
        step, count = step + 1, count + 1
      if count != n_steps - first:
        raise InputError(f'the training split yielded {count} of {n_steps - first} batches '
                         f'of epoch {epoch}; is the dataset complete? (data.name, data.path)')

  # ---------------------------------------------------------- evaluation

  def eval_batches(self, split: str, batch_size: int, process_index: int = 0,
                   process_count: int = 1):
    """Yields (images, labels, mask): this process's contiguous part of the
    split, padded (mask 0) to the same number of batches on every process."""
    tf = augment.tf()
    records, local = self.splits[split], batch_size // process_count
    n = len(records)
    part = math.ceil(n / process_count)
    lo, hi = min(process_index * part, n), min((process_index + 1) * part, n)
    prep = functools.partial(augment.eval_image, size=self.image_size, resize=self.eval_resize)
    batches = iter(())
    if hi > lo:
      batches = (records.range(lo, hi).take(hi - lo)
                 .map(lambda x, y: (prep(x), y), num_parallel_calls=tf.data.AUTOTUNE,
                      deterministic=True).batch(local).prefetch(2).as_numpy_iterator())
    for _ in range(math.ceil(part / local)):
      x, y = next(batches, (np.zeros((0, *self.image_shape), np.uint8), np.zeros(0, np.int32)))
      yield order.padded(x, y.astype(np.int32), local)


# ---------------------------------------------------------------- loading

def _count(builder, split: str) -> int:
  if split in builder.info.splits:
    return builder.info.splits[split].num_examples
  n = int(builder.as_dataset(split=split).cardinality())  # tfds' mock data
  if n < 0:
    raise InputError(f'tfds does not know the size of split {split!r} of '
                     f'{builder.name}; prepare the dataset again')
  return n


def _open_tfds(cfg):
  builder = sources.tfds_builder(cfg)
  train, evaluation = sources.resolve_splits(builder.info.splits.keys(), cfg)
  try:
    counts = (_count(builder, train), _count(builder, evaluation))
  except AssertionError:  # Not prepared.
    if not sources.may_download(cfg):
      raise InputError(
          f'tfds dataset {cfg.name!r} is not prepared in '
          f'{cfg.tfds_data_dir or "~/tensorflow_datasets"}; prepare it (tfds build {cfg.name} '
          f'--data_dir=DIR) and set --config.data.tfds_data_dir=DIR') from None
    builder.download_and_prepare()
    counts = (_count(builder, train), _count(builder, evaluation))
  names = builder.info.features['label'].names
  return ((TfdsRecords(builder, train, 0, counts[0]),
           TfdsRecords(builder, evaluation, 0, counts[1])), names, (train, evaluation))


def _open_folder(cfg):
  import tensorflow_datasets as tfds
  root = sources.folder_root(cfg)
  builder = tfds.folder_dataset.ImageFolder(str(root))
  available = [s for s in builder.info.splits.keys() if builder._split_examples[s]]  # pylint: disable=protected-access
  if not available:
    raise InputError(f'no .jpg/.png images under {root}/<split>/<class>/; it needs '
                     f'train/<class name>/<image> and test/ or validation/ (set data.path)')
  train, evaluation = sources.resolve_splits(available, cfg)
  names = builder.info.features['label'].names
  out = []
  for split in (train, evaluation):
    # ImageFolder's own order (sorted, then shuffled with a fixed seed): the
    # memory path's order, so both paths see the same examples at a step.
    examples = builder._split_examples[split]  # pylint: disable=protected-access
    out.append(FolderRecords(
        np.array([e.image_path for e in examples]),
        np.array([names.index(e.label) for e in examples], np.int32)))
  return tuple(out), names, (train, evaluation)


def load(config) -> StreamDataset:
  """The splits of `config.data` as streams: train = the training split less
  its last `val_size` examples, val = those, test = the evaluation split."""
  cfg = config.data
  if not cfg.image_size:
    raise InputError('data.pipeline=stream crops every image to one size; set '
                     '--config.data.image_size=N (e.g. 224)')
  sources.check_source(cfg)
  open_source = _open_tfds if cfg.source == 'tfds' else _open_folder
  (train, test), names, split_names = open_source(cfg)
  cut = sources.val_cut(len(train), cfg.val_size)
  aug = config.augment
  logging.info('Streaming %s: train=%r (%d, %d held out for val), test=%r (%d).',
               cfg.name if cfg.source == 'tfds' else cfg.path, split_names[0], cut,
               cfg.val_size, split_names[1], len(test))
  return StreamDataset(
      splits={'train': train.sub(0, cut), 'val': train.sub(cut, len(train)), 'test': test},
      class_names=list(names), image_size=cfg.image_size,
      eval_resize=cfg.eval_resize or round(cfg.image_size / augment.CROP_FRACTION),
      area_range=tuple(aug.area_range), aspect_range=tuple(aug.aspect_range),
      flip=aug.flip, shuffle_window=cfg.shuffle_window,
      split_names={'train': split_names[0], 'test': split_names[1]},
      device_prefetch=cfg.prefetch)
