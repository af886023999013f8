"""Data: whole splits as uint8 arrays in memory, batches by index, augmentation on device.

CIFAR-sized data fits in memory, so the splits are loaded once (tfds or an
image folder) into uint8 numpy arrays. A training batch is a host-side gather
by a permutation derived from (seed, epoch): the data position is a pure
function of the step, which makes resuming exact without saving any iterator
state. Crop and flip run inside the jitted train step (`augment`), as in
airbench, so no CPU input thread competes with XLA for the two cores.
"""

import dataclasses
import hashlib
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from isovolnet_jax.errors import InputError

MIN_SIDE = 32
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png')


@dataclasses.dataclass
class Dataset:
  train_images: np.ndarray  # uint8 [N, H, W, 3]
  train_labels: np.ndarray  # int32 [N]
  val_images: np.ndarray
  val_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  class_names: list[str]

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train_images.shape[1:])

  def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
    return getattr(self, f'{name}_images'), getattr(self, f'{name}_labels')

  # The interface train.py shares with input_stream.StreamDataset.
  def num_examples(self, split: str) -> int:
    return len(self.split(split)[0])

  def train_batches(self, **kwargs):
    return train_batches(self.train_images, self.train_labels, **kwargs)

  def eval_batches(self, split: str, batch_size: int, process_index: int = 0,
                   process_count: int = 1):
    return eval_batches(*self.split(split), batch_size, process_index, process_count)


def dataset(config: ml_collections.ConfigDict):
  """`data.pipeline`: 'memory' (`load`, whole splits as arrays) or 'stream'
  (`input_stream.load`, read and augmented on the fly)."""
  pipeline = config.data.get('pipeline', 'memory')
  if pipeline == 'memory':
    return load(config)
  if pipeline == 'stream':
    from isovolnet_jax import input_stream  # pylint: disable=import-outside-toplevel
    return input_stream.load(config)
  raise InputError(f"unknown data.pipeline={pipeline!r}; choose 'memory' or 'stream'")


def load(config: ml_collections.ConfigDict) -> Dataset:
  """Loads train/val/test as uint8 arrays; val = the last `val_size` of train."""
  cfg = config.data
  if cfg.source == 'tfds':
    (train_x, train_y), (test_x, test_y), names = _load_tfds(cfg)
  elif cfg.source == 'folder':
    (train_x, train_y), (test_x, test_y), names = _load_folder_cached(cfg)
  else:
    raise InputError(f"unknown data.source={cfg.source!r}; choose 'tfds' or 'folder'")
  _check_min_size(train_x.shape, cfg)
  if not 0 <= cfg.val_size < len(train_x):
    raise InputError(f'data.val_size={cfg.val_size} must be in [0, {len(train_x)}) '
                     f'for a training split of {len(train_x)} images')
  cut = len(train_x) - cfg.val_size
  return Dataset(train_x[:cut], train_y[:cut], train_x[cut:], train_y[cut:],
                 test_x, test_y, list(names))


def _check_min_size(shape, cfg):
  h, w = shape[1:3]
  if h < MIN_SIDE or w < MIN_SIDE:
    raise InputError(
        f'images are {h}x{w}, smaller than the {MIN_SIDE}x{MIN_SIDE} minimum; '
        f'use larger images or resize them with --config.data.image_size={MIN_SIDE}')


def _to_arrays(ds, image_size: int) -> tuple[np.ndarray, np.ndarray]:
  """A tf.data (image, label) dataset -> uint8 images, int32 labels."""
  import tensorflow as tf  # Only the loaders need TensorFlow...
  tf.config.set_visible_devices([], 'GPU')  # ...and must leave the GPU to JAX.
  if image_size:
    ds = ds.map(lambda x, y: (tf.cast(tf.clip_by_value(tf.round(
        tf.image.resize(x, (image_size, image_size), antialias=True)), 0, 255),
                                      tf.uint8), y))
  images, labels = [], []
  try:
    for x, y in ds.batch(1024).as_numpy_iterator():
      images.append(x)
      labels.append(y)
  except tf.errors.InvalidArgumentError as e:
    raise InputError('images have different sizes; resize them all with '
                     '--config.data.image_size=N') from e
  return np.concatenate(images), np.concatenate(labels).astype(np.int32)


# ---------------------------------------------------------------- tfds

def _online(host='www.cs.toronto.edu', port=443, timeout=3.0) -> bool:
  try:
    socket.create_connection((host, port), timeout=timeout).close()
    return True
  except OSError:
    return False


def _load_tfds(cfg):
  import tensorflow_datasets as tfds
  data_dir = cfg.tfds_data_dir or None
  if cfg.download not in ('auto', 'never'):
    raise InputError(f"data.download={cfg.download!r}; choose 'auto' or 'never'")

  def read(download):
    builder = tfds.builder(cfg.name, data_dir=data_dir)
    from isovolnet_jax import input_stream  # pylint: disable=import-outside-toplevel
    splits = list(input_stream.resolve_splits(builder.info.splits.keys(), cfg))
    (train, test), info = tfds.load(
        cfg.name, split=splits, data_dir=data_dir, as_supervised=True,
        download=download, with_info=True)
    return (_to_arrays(train, cfg.image_size), _to_arrays(test, cfg.image_size),
            info.features['label'].names)

  try:
    return read(download=False)
  except tfds.core.DatasetNotFoundError as e:
    raise InputError(f'tfds has no dataset {cfg.name!r}; check data.name') from e
  except AssertionError:
    pass  # Not prepared yet. (tfds asserts; the message is long.)
  # tfds' downloader retries for minutes offline: only try it with a network.
  if cfg.download == 'auto' and _online():
    logging.info('Downloading and preparing %s with tfds.', cfg.name)
    return read(download=True)
  raise InputError(
      f'tfds dataset {cfg.name!r} is not prepared in {data_dir or "~/tensorflow_datasets"} '
      f'and cannot be downloaded here; train on an image folder instead: '
      f'--config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg')


# ---------------------------------------------------------------- folder

def _list_split(root: Path, split: str) -> list[tuple[str, int, int]]:
  """(relative path, size, mtime_ns) of every image under root/split."""
  split_dir = root / split
  if not split_dir.is_dir():
    raise InputError(f'data folder {root} has no {split}/ folder; it needs '
                     f'{split}/<class name>/<image>.jpg|png (set data.path)')
  entries = []
  for dirpath, _, files in os.walk(split_dir):
    for f in files:
      if f.lower().endswith(IMAGE_SUFFIXES):
        st = os.stat(os.path.join(dirpath, f))
        entries.append((os.path.relpath(os.path.join(dirpath, f), root),
                        st.st_size, st.st_mtime_ns))
  if not entries:
    raise InputError(f'no .jpg/.png images under {split_dir}; it needs '
                     f'{split}/<class name>/<image> (set data.path)')
  return sorted(entries)


def folder_fingerprint(root: Path, image_size: int) -> str:
  """Changes whenever an image is added, removed, replaced or touched."""
  h = hashlib.sha256(f'{root.resolve()}|{image_size}|v1'.encode())
  for split in ('train', 'test'):
    for entry in _list_split(root, split):
      h.update(repr(entry).encode())
  return h.hexdigest()[:20]


def default_cache_dir() -> Path:
  base = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
  return Path(base) / 'isovolnet_jax'


def folder_root(cfg) -> Path:
  """data.path as an existing folder, or a one-line InputError naming the fix."""
  if not cfg.path:
    raise InputError('data.source=folder needs --config.data.path=DIR '
                     '(DIR/train/<class>/*.jpg, DIR/test/<class>/*.jpg)')
  root = Path(cfg.path).expanduser()
  if not root.is_dir():
    raise InputError(f'data folder {root} does not exist; pass '
                     f'--config.data.path=DIR with train/ and test/ class folders')
  return root


def _load_folder_cached(cfg):
  """Decoding 60k JPEGs takes ~15 s here; the decoded arrays are cached."""
  root = folder_root(cfg)
  cache = Path(cfg.cache_dir or default_cache_dir())
  cache_file = cache / f'folder-{folder_fingerprint(root, cfg.image_size)}.npz'
  if cache_file.exists():
    with np.load(cache_file) as z:
      return ((z['train_x'], z['train_y']), (z['test_x'], z['test_y']),
              [str(n) for n in z['names']])
  train, test, names = _load_folder(root, cfg.image_size)
  cache.mkdir(parents=True, exist_ok=True)
  tmp = cache_file.with_suffix(f'.tmp{os.getpid()}.npz')
  np.savez(tmp, train_x=train[0], train_y=train[1], test_x=test[0],
           test_y=test[1], names=np.array(names))
  os.replace(tmp, cache_file)  # Atomic: a killed run leaves no half file.
  logging.info('Cached decoded images in %s', cache_file)
  return train, test, names


def _load_folder(root: Path, image_size: int):
  import tensorflow_datasets as tfds
  builder = tfds.folder_dataset.ImageFolder(str(root))
  names = builder.info.features['label'].names
  splits = []
  for split in ('train', 'test'):
    ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    splits.append(_to_arrays(ds, image_size))
  return splits[0], splits[1], names


# ---------------------------------------------------------------- batches

def steps_per_epoch(num_train: int, batch_size: int) -> int:
  return num_train // batch_size  # Drop the remainder: every step is full.


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(n)


def train_batches(images: np.ndarray, labels: np.ndarray, *, seed: int,
                  batch_size: int, start_step: int, process_index: int = 0,
                  process_count: int = 1) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
  """Yields (step, images, labels) from `start_step` on, forever.

  Each process yields only its slice of the global batch; the global batch of
  a step is the same whatever the number of processes or devices.
  """
  n_steps = steps_per_epoch(len(images), batch_size)
  if n_steps == 0:
    raise InputError(f'batch_size={batch_size} is larger than the {len(images)} '
                     f'training images; lower --config.batch_size')
  local = batch_size // process_count
  step, epoch, perm = start_step, -1, None
  while True:
    e, i = divmod(step, n_steps)
    if e != epoch:
      epoch, perm = e, epoch_permutation(seed, e, len(images))
    # Sorted: the gather reads memory in order; the batch's members are the same.
    idx = np.sort(perm[i * batch_size:(i + 1) * batch_size])
    idx = idx[process_index * local:(process_index + 1) * local]
    yield step, images[idx], labels[idx]
    step += 1


def eval_batches(images: np.ndarray, labels: np.ndarray, batch_size: int,
                 process_index: int = 0, process_count: int = 1):
  """Yields (images, labels, mask): the last batch padded, mask 0 on padding."""
  local = batch_size // process_count
  for start in range(0, len(images), batch_size):
    x = images[start:start + batch_size]
    y = labels[start:start + batch_size]
    mask = np.ones(len(x), np.float32)
    pad = batch_size - len(x)
    if pad:
      x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
      y = np.concatenate([y, np.zeros(pad, y.dtype)])
      mask = np.concatenate([mask, np.zeros(pad, np.float32)])
    sl = slice(process_index * local, (process_index + 1) * local)
    yield x[sl], y[sl], mask[sl]


# ---------------------------------------------------------------- on device

def normalize(images: jnp.ndarray) -> jnp.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def augment(key: jax.Array, images: jnp.ndarray, crop_padding: int,
            flip: bool) -> jnp.ndarray:
  """Random crop after zero padding + horizontal flip, on uint8 images.

  Runs inside the jitted step; `key` is derived from (seed, step), so a step's
  augmentation is the same on every run and after every resume.
  """
  n, h, w, _ = images.shape
  crop_key, flip_key = jax.random.split(key)
  if crop_padding:
    p = crop_padding
    padded = jnp.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
    offsets = jax.random.randint(crop_key, (n, 2), 0, 2 * p + 1)
    images = jax.vmap(lambda img, o: jax.lax.dynamic_slice(
        img, (o[0], o[1], 0), (h, w, img.shape[-1])))(padded, offsets)
  if flip:
    do_flip = jax.random.bernoulli(flip_key, 0.5, (n, 1, 1, 1))
    images = jnp.where(do_flip, images[:, :, ::-1], images)
  return images
