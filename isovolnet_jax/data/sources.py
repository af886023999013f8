"""Where the images come from: tfds datasets and image folders, their splits,
and the checks on `config.data` that both pipelines share.

The memory pipeline reads a source whole into uint8 arrays (`tfds_arrays`,
`folder_arrays`); the streaming pipeline opens it as records (`data.stream`)
with the same split names, the same class order and the same checks.
"""

import hashlib
import logging
import os
import socket
from pathlib import Path

import numpy as np

from isovolnet_jax.errors import InputError

SOURCES = ('tfds', 'folder')
MIN_SIDE = 32
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png')


# ---------------------------------------------------------------- checks

def check_source(cfg) -> None:
  if cfg.source not in SOURCES:
    raise InputError(f"unknown data.source={cfg.source!r}; choose 'tfds' or 'folder'")


def val_cut(num_train: int, val_size: int) -> int:
  """Where the training split is cut: train = [:cut], val = [cut:] (the last
  `val_size` examples, so the held-out images are the same on every run)."""
  if not 0 <= val_size < num_train:
    raise InputError(f'data.val_size={val_size} must be in [0, {num_train}) '
                     f'for a training split of {num_train} images')
  return num_train - val_size


def check_min_size(height: int, width: int) -> None:
  if height < MIN_SIDE or width < MIN_SIDE:
    raise InputError(
        f'images are {height}x{width}, smaller than the {MIN_SIDE}x{MIN_SIDE} minimum; '
        f'use larger images or resize them with --config.data.image_size={MIN_SIDE}')


def resolve_splits(available, cfg) -> tuple[str, str]:
  """(train, eval) split names: the overrides, else 'train' and the
  dataset's 'test', or 'validation' when it has no test split."""
  available = list(available)
  train = cfg.train_split or 'train'
  evaluation = cfg.eval_split or next(
      (s for s in ('test', 'validation', 'val') if s in available), 'test')
  for key, name in (('train_split', train), ('eval_split', evaluation)):
    if available and name not in available:
      raise InputError(f'{cfg.name if cfg.source == "tfds" else cfg.path} has no split '
                       f'{name!r} (it has {", ".join(sorted(available))}); set '
                       f'--config.data.{key}=NAME')
  return train, evaluation


# ---------------------------------------------------------------- tfds

def online(host='www.cs.toronto.edu', port=443, timeout=3.0) -> bool:
  try:
    socket.create_connection((host, port), timeout=timeout).close()
    return True
  except OSError:
    return False


def may_download(cfg) -> bool:
  """tfds' downloader retries for minutes offline: only try it with a network."""
  return cfg.download == 'auto' and online()


def tfds_builder(cfg):
  """The dataset's tfds builder, prepared or not."""
  import tensorflow_datasets as tfds
  if cfg.download not in ('auto', 'never'):
    raise InputError(f"data.download={cfg.download!r}; choose 'auto' or 'never'")
  try:
    return tfds.builder(cfg.name, data_dir=cfg.tfds_data_dir or None)
  except tfds.core.DatasetNotFoundError as e:
    raise InputError(f'tfds has no dataset {cfg.name!r}; check data.name') from e


def tfds_arrays(cfg):
  """((train images, labels), (eval images, labels), class names) of a tfds dataset."""
  import tensorflow_datasets as tfds

  def read(download):
    splits = list(resolve_splits(tfds_builder(cfg).info.splits.keys(), cfg))
    (train, test), info = tfds.load(
        cfg.name, split=splits, data_dir=cfg.tfds_data_dir or None, as_supervised=True,
        download=download, with_info=True)
    return (to_arrays(train, cfg.image_size), to_arrays(test, cfg.image_size),
            info.features['label'].names)

  try:
    return read(download=False)
  except AssertionError:
    pass  # Not prepared yet. (tfds asserts; the message is long.)
  if may_download(cfg):
    logging.info('Downloading and preparing %s with tfds.', cfg.name)
    return read(download=True)
  raise InputError(
      f'tfds dataset {cfg.name!r} is not prepared in '
      f'{cfg.tfds_data_dir or "~/tensorflow_datasets"} and cannot be downloaded here; '
      f'train on an image folder instead: '
      f'--config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg')


def to_arrays(ds, image_size: int) -> tuple[np.ndarray, np.ndarray]:
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


# ---------------------------------------------------------------- folders

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


def folder_arrays(cfg):
  """((train images, labels), (test images, labels), class names) of an
  image folder. Decoding is slow, so the decoded arrays are cached, keyed by
  the folder's fingerprint."""
  root = folder_root(cfg)
  cache = Path(cfg.cache_dir or default_cache_dir())
  cache_file = cache / f'folder-{folder_fingerprint(root, cfg.image_size)}.npz'
  if cache_file.exists():
    with np.load(cache_file) as z:
      return ((z['train_x'], z['train_y']), (z['test_x'], z['test_y']),
              [str(n) for n in z['names']])
  train, test, names = _decode_folder(root, cfg.image_size)
  cache.mkdir(parents=True, exist_ok=True)
  tmp = cache_file.with_suffix(f'.tmp{os.getpid()}.npz')
  np.savez(tmp, train_x=train[0], train_y=train[1], test_x=test[0],
           test_y=test[1], names=np.array(names))
  os.replace(tmp, cache_file)  # Atomic: a killed run leaves no half file.
  logging.info('Cached decoded images in %s', cache_file)
  return train, test, names


def _decode_folder(root: Path, image_size: int):
  import tensorflow_datasets as tfds
  builder = tfds.folder_dataset.ImageFolder(str(root))
  names = builder.info.features['label'].names
  splits = []
  for split in ('train', 'test'):
    ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    splits.append(to_arrays(ds, image_size))
  return splits[0], splits[1], names
