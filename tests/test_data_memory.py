"""The memory pipeline: folder and tfds splits as arrays, the cache, batches by step."""

import shutil
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from isovolnet_jax import config_defaults
from isovolnet_jax.data import memory
from isovolnet_jax.data import sources
from isovolnet_jax.errors import InputError

CIFAR_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog',
                 'horse', 'ship', 'truck']


def folder_config(path, cache_dir, **data):
  config = config_defaults.get_base_config()
  config.data.update({'source': 'folder', 'path': str(path),
                      'cache_dir': str(cache_dir), 'val_size': 100, **data})
  return config


def write_pngs(root, sizes):
  """A tiny image folder: train/ and test/ with classes a and b."""
  rng = np.random.default_rng(0)
  for split in ('train', 'test'):
    for cls in ('a', 'b'):
      (root / split / cls).mkdir(parents=True, exist_ok=True)
      for i, (h, w) in enumerate(sizes):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / split / cls / f'{i}.png')
  return root


def test_folder_source_loads_the_jpeg_tree(small_cifar, cache_dir):
  data = memory.load(folder_config(small_cifar, cache_dir))
  assert data.class_names == CIFAR_CLASSES
  assert data.train_images.shape == (500, 32, 32, 3)
  assert data.val_images.shape == (100, 32, 32, 3)
  assert data.test_images.shape == (200, 32, 32, 3)
  assert data.train_images.dtype == np.uint8 and data.train_labels.dtype == np.int32
  assert np.bincount(data.test_labels).tolist() == [20] * 10
  # Validation = the last 100 training images, the same on every load.
  again = memory.load(folder_config(small_cifar, cache_dir, val_size=0))
  np.testing.assert_array_equal(again.train_images[-100:], data.val_images)
  np.testing.assert_array_equal(again.train_labels[:500], data.train_labels)


def test_cache_is_used_and_invalidated(small_cifar, cache_dir, tmp_path, monkeypatch):
  root = tmp_path / 'copy'
  shutil.copytree(small_cifar, root)
  first = memory.load(folder_config(root, cache_dir))
  assert len(list(cache_dir.glob('folder-*.npz'))) == 1

  def no_decoding(*args):
    raise AssertionError('decoded again although the folder did not change')
  monkeypatch.setattr(sources, '_decode_folder', no_decoding)
  cached = memory.load(folder_config(root, cache_dir))
  np.testing.assert_array_equal(cached.train_images, first.train_images)

  # Removing an image changes the fingerprint: the folder is decoded again.
  victim = next((root / 'train' / 'cat').iterdir())
  victim.unlink()
  with pytest.raises(AssertionError, match='decoded again'):
    memory.load(folder_config(root, cache_dir))
  monkeypatch.undo()
  fresh = memory.load(folder_config(root, cache_dir))
  assert len(fresh.train_images) + len(fresh.val_images) == 599


def test_folder_errors_name_the_fix(tmp_path, cache_dir):
  with pytest.raises(InputError, match='does not exist.*data.path'):
    memory.load(folder_config(tmp_path / 'nope', cache_dir))
  root = write_pngs(tmp_path / 'only_train', [(32, 32)])
  shutil.rmtree(root / 'test')
  with pytest.raises(InputError, match='no test/ folder'):
    memory.load(folder_config(root, cache_dir))
  for f in (root / 'train').rglob('*.png'):
    f.unlink()
  (root / 'test').mkdir()
  with pytest.raises(InputError, match='no .jpg/.png images'):
    memory.load(folder_config(root, cache_dir))
  with pytest.raises(InputError, match='needs --config.data.path'):
    memory.load(folder_config('', cache_dir))


def test_images_smaller_than_32_are_refused(tmp_path, cache_dir):
  root = write_pngs(tmp_path / 'small', [(20, 20)] * 3)
  with pytest.raises(InputError) as info:
    memory.load(folder_config(root, cache_dir, val_size=1))
  assert '20x20' in str(info.value) and 'data.image_size' in str(info.value)
  # Resizing, when asked for, makes them usable.
  data = memory.load(folder_config(root, cache_dir, val_size=1, image_size=32))
  assert data.image_shape == (32, 32, 3)


def test_mixed_sizes_need_image_size(tmp_path, cache_dir):
  root = write_pngs(tmp_path / 'mixed', [(40, 56), (32, 32)])
  with pytest.raises(InputError, match='different sizes.*image_size'):
    memory.load(folder_config(root, cache_dir, val_size=1))
  data = memory.load(folder_config(root, cache_dir, val_size=1, image_size=48))
  assert data.train_images.shape[1:] == (48, 48, 3)


def test_tfds_source_on_mock_data():
  config = config_defaults.get_base_config()
  config.data.val_size = 4
  with tfds.testing.mock_data(num_examples=12):
    data = memory.load(config)
  assert data.train_images.shape == (8, 32, 32, 3)
  assert data.val_images.shape == (4, 32, 32, 3)
  assert data.test_images.shape == (12, 32, 32, 3)
  assert data.num_classes == 10


def test_tfds_offline_fails_fast_naming_the_folder_option(tmp_path, monkeypatch):
  config = config_defaults.get_base_config()
  config.data.tfds_data_dir = str(tmp_path)
  monkeypatch.setattr(sources, 'online', lambda: False)
  start = time.time()
  with pytest.raises(InputError) as info:
    memory.load(config)
  assert time.time() - start < 30
  assert '--config.data.source=folder' in str(info.value)
  config.data.download = 'never'
  monkeypatch.setattr(sources, 'online', lambda: True)
  with pytest.raises(InputError, match='not prepared'):
    memory.load(config)


def take(it, n):
  return [next(it) for _ in range(n)]


def test_train_batches_are_a_function_of_the_step():
  images = np.arange(50)[:, None, None, None].astype(np.uint8)
  labels = np.arange(50, dtype=np.int32)
  kw = dict(seed=3, batch_size=8)
  full = take(memory.train_batches(images, labels, start_step=0, **kw), 15)
  # 6 steps per epoch (drop remainder); each epoch is a permutation.
  epoch0 = np.concatenate([b[2] for b in full[:6]])
  assert len(set(epoch0.tolist())) == 48
  assert not np.array_equal(full[0][2], full[6][2])
  # Resuming at step 9 gives exactly the batches of the uninterrupted run.
  resumed = take(memory.train_batches(images, labels, start_step=9, **kw), 6)
  for a, b in zip(full[9:], resumed):
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[2], b[2])
  # Two processes each get half; together they are the one-process batch.
  halves = [take(memory.train_batches(images, labels, start_step=4,
                                      process_index=i, process_count=2,
                                      **kw), 1)[0] for i in (0, 1)]
  np.testing.assert_array_equal(np.concatenate([h[2] for h in halves]), full[4][2])


def test_eval_batches_pad_and_mask():
  x = np.ones((10, 32, 32, 3), np.uint8)
  y = np.arange(10, dtype=np.int32)
  batches = list(memory.eval_batches(x, y, 4))
  assert [len(b[0]) for b in batches] == [4, 4, 4]
  assert sum(b[2].sum() for b in batches) == 10
  assert batches[-1][2].tolist() == [1, 1, 0, 0]
