"""The checks on config.data that both pipelines share, written once in sources."""

import numpy as np
import pytest
from PIL import Image

from isovolnet_jax import config_defaults
from isovolnet_jax import data
from isovolnet_jax.data import sources
from isovolnet_jax.errors import InputError


def write_folder(root, per_class=3, side=32):
  """train/ and test/, classes a and b, `per_class` PNGs each."""
  rng = np.random.default_rng(0)
  for split in ('train', 'test'):
    for cls in ('a', 'b'):
      (root / split / cls).mkdir(parents=True)
      for i in range(per_class):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(
            root / split / cls / f'{i}.png')
  return root


def folder_config(root, pipeline, **data_overrides):
  config = config_defaults.get_base_config()
  config.data.update({'source': 'folder', 'path': str(root), 'pipeline': pipeline,
                      'image_size': 32, 'cache_dir': str(root / 'cache'), 'val_size': 0,
                      **data_overrides})
  return config


PIPELINES = ('memory', 'stream')


@pytest.mark.parametrize('pipeline', PIPELINES)
def test_both_pipelines_refuse_an_unknown_source(tmp_path, pipeline):
  config = folder_config(write_folder(tmp_path / 'f'), pipeline, source='hf')
  with pytest.raises(InputError, match="unknown data.source='hf'; choose 'tfds' or 'folder'"):
    data.dataset(config)


@pytest.mark.parametrize('pipeline', PIPELINES)
def test_both_pipelines_hold_out_the_last_val_size_images_or_refuse(tmp_path, pipeline):
  root = write_folder(tmp_path / 'f')  # 6 training images.
  ds = data.dataset(folder_config(root, pipeline, val_size=2))
  assert (ds.num_examples('train'), ds.num_examples('val')) == (4, 2)
  for bad in (6, -1):
    with pytest.raises(InputError, match=rf'data.val_size={bad} must be in \[0, 6\)'):
      data.dataset(folder_config(root, pipeline, val_size=bad))


def test_val_cut_is_the_start_of_the_last_val_size():
  assert sources.val_cut(10, 0) == 10
  assert sources.val_cut(10, 3) == 7
  with pytest.raises(InputError, match='val_size=10'):
    sources.val_cut(10, 10)


def test_unknown_download_mode_is_refused():
  config = config_defaults.get_base_config()
  config.data.download = 'always'
  with pytest.raises(InputError, match="data.download='always'; choose 'auto' or 'never'"):
    sources.tfds_builder(config.data)


def test_split_overrides_and_defaults():
  cfg = config_defaults.get_base_config().data
  assert sources.resolve_splits(['train', 'test'], cfg) == ('train', 'test')
  assert sources.resolve_splits(['train', 'validation'], cfg) == ('train', 'validation')
  cfg.eval_split = 'extra'
  with pytest.raises(InputError, match="no split 'extra'.*--config.data.eval_split"):
    sources.resolve_splits(['train', 'test'], cfg)
