"""The order of the examples: steps per epoch, permutations, batch rows, padding."""

import numpy as np
import pytest

from isovolnet_jax import config_defaults
from isovolnet_jax import data
from isovolnet_jax import train
from isovolnet_jax.data import order
from isovolnet_jax.errors import InputError

from test_data_sources import PIPELINES, folder_config, write_folder


def test_steps_per_epoch_drops_the_remainder_and_refuses_a_batch_above_the_split():
  assert order.steps_per_epoch(50, 8) == 6
  assert order.steps_per_epoch(8, 8) == 1
  with pytest.raises(InputError, match='batch_size=9 is larger than the 8 training images'):
    order.steps_per_epoch(8, 9)


@pytest.mark.parametrize('pipeline', PIPELINES)
def test_both_pipelines_and_the_loop_refuse_a_batch_above_the_split(tmp_path, pipeline):
  ds = data.dataset(folder_config(write_folder(tmp_path / 'f'), pipeline))  # 6 images.
  with pytest.raises(InputError, match='batch_size=7 is larger than the 6 training images'):
    next(ds.train_batches(seed=0, batch_size=7, start_step=0))
  config = config_defaults.get_base_config()
  config.batch_size = 7
  with pytest.raises(InputError, match='batch_size=7 is larger than the 6 training images'):
    train.Plan.of(config, ds.num_examples('train'), n_data=1)


def test_batch_rows_are_sorted_slices_of_the_permutation():
  perm = order.epoch_permutation(seed=1, epoch=2, n=20)
  assert sorted(perm.tolist()) == list(range(20))
  assert not np.array_equal(perm, order.epoch_permutation(seed=1, epoch=3, n=20))
  np.testing.assert_array_equal(order.batch_rows(perm, 1, 6), np.sort(perm[6:12]))
  np.testing.assert_array_equal(order.batch_rows(perm, np.arange(1, 3), 6),
                                [np.sort(perm[6:12]), np.sort(perm[12:18])])


def test_process_slices_tile_the_global_batch():
  rows = np.arange(8)
  parts = [rows[order.process_slice(i, 4, 8)] for i in range(4)]
  np.testing.assert_array_equal(np.concatenate(parts), rows)
  assert all(len(p) == 2 for p in parts)


def test_padded_appends_zeros_masked_out():
  x, y, mask = order.padded(np.ones((3, 2, 2, 3), np.uint8), np.arange(3, dtype=np.int32), 5)
  assert x.shape == (5, 2, 2, 3) and x.dtype == np.uint8 and x[3:].max() == 0
  assert y.tolist() == [0, 1, 2, 0, 0] and y.dtype == np.int32
  assert mask.tolist() == [1, 1, 1, 0, 0]
