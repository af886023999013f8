"""The data package's entry point: `dataset(config)` and what the step asks of it."""

import jax
import numpy as np
import pytest

from isovolnet_jax import config_defaults
from isovolnet_jax import data
from isovolnet_jax.data import augment
from isovolnet_jax.errors import InputError

from test_data_sources import PIPELINES, folder_config, write_folder


def test_unknown_pipeline_is_refused():
  config = config_defaults.get_base_config()
  config.data.pipeline = 'disk'
  with pytest.raises(InputError, match="data.pipeline='disk'.*'memory' or 'stream'"):
    data.dataset(config)


@pytest.mark.parametrize('pipeline', PIPELINES)
def test_both_pipelines_give_the_interface_train_reads(tmp_path, pipeline):
  ds = data.dataset(folder_config(write_folder(tmp_path / 'f'), pipeline, val_size=2))
  assert ds.num_classes == 2 and ds.class_names == ['a', 'b']
  assert tuple(ds.image_shape) == (32, 32, 3)
  assert [ds.num_examples(s) for s in ('train', 'val', 'test')] == [4, 2, 6]
  step, x, y = next(ds.train_batches(seed=0, batch_size=2, start_step=3))
  assert step == 3 and x.shape == (2, 32, 32, 3) and x.dtype == np.uint8
  assert y.dtype == np.int32
  x, y, mask = next(ds.eval_batches('test', 4))
  assert x.shape == (4, 32, 32, 3) and mask.tolist() == [1, 1, 1, 1]
  assert ds.device_prefetch == 2  # config.data.prefetch: a thread sends batches ahead.


def test_the_step_augments_only_what_the_pipeline_did_not():
  config = config_defaults.get_base_config()
  images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
  key = jax.random.key(0)
  np.testing.assert_array_equal(
      data.augment_in_step(key, images, config),
      augment.augment(key, images, config.augment.crop_padding, config.augment.flip))
  assert not np.array_equal(data.augment_in_step(key, images, config), images)
  config.data.pipeline = 'stream'  # Cropped and flipped on the host already.
  assert data.augment_in_step(key, images, config) is images


@pytest.mark.parametrize('size', [0, 1, 3])
def test_prefetch_yields_every_item_in_order(size):
  pulled = []

  def items():
    for i in range(5):
      pulled.append(i)
      yield i
  it = data.prefetch(items(), size)
  assert next(it) == 0
  assert len(pulled) == 1 + size  # `size` items read ahead of the one yielded.
  assert [0, *it] == list(range(5))
