"""airbench's tricks as training runs them: the whitening stem computed at
set-up, the alternating flip and the reflect translation in the memory
pipeline, the 6-view TTA in training's own evaluation, the test split watched
every epoch; and the one-line errors of knobs that cannot work together."""

import jax
import numpy as np
import optax
import pytest

from isovolnet_jax import checkpointing
from isovolnet_jax import config_defaults
from isovolnet_jax import data
from isovolnet_jax import inference
from isovolnet_jax import models
from isovolnet_jax import train
from isovolnet_jax.airbench import whitening
from isovolnet_jax.data import memory
from isovolnet_jax.errors import InputError

from helpers import load_config_file, metrics, smoke_config


def tiny_airbench(small_cifar, cache_dir, **overrides):
  """configs/cifar10_airbench94.py on 600 training images, narrow, 12 steps of
  100 (6 an epoch); the whitening bias freezes and lookahead starts after
  epoch 1 so that both happen."""
  return config_defaults.apply_overrides(load_config_file('cifar10_airbench94'), {
      'data.source': 'folder', 'data.path': str(small_cifar),
      'data.cache_dir': str(cache_dir), 'model.widths': (16, 32, 32),
      'batch_size': 100, 'num_train_steps': 12, 'log_every_steps': 6,
      'eval_batch_size': 100, 'whiten_images': 200,
      'optimizer.whiten_bias_epochs': 1.0, 'optimizer.lookahead_start_epochs': 1.0,
      **overrides})


def test_airbench_run_whitens_and_evaluates_the_test_split_with_tta(small_cifar, tmp_path):
  config = tiny_airbench(small_cifar, tmp_path / 'cache')
  final = train.train_and_evaluate(config, tmp_path / 'w')

  # The test split is watched every epoch, with the evaluation's own seconds
  # and the clock (bench.time_to_accuracy reads them); there is no val split.
  rows = metrics(tmp_path / 'w', 'test')
  assert [r['step'] for r in rows] == [6, 12]
  assert all(r['eval_seconds'] > 0 and r['unix_time'] > 1.7e9 for r in rows)
  assert not metrics(tmp_path / 'w', 'val') and set(final) == {'test'}

  run = checkpointing.load_run(tmp_path / 'w')
  dataset = data.dataset(config)
  # The whitening kernel: that of the first 200 images of epoch 0's order,
  # and frozen since (the final weights still hold it).
  rows200 = np.sort(data.order.epoch_permutation(config.seed, 0, 600)[:200])
  np.testing.assert_allclose(
      run.variables['params']['whiten']['kernel'],
      whitening.whitening_kernel(dataset.train_images[rows200], eps=config.whiten_eps),
      rtol=1e-6)

  # Training's test loss is that of the 6 weighted views, not of the plain image.
  model = models.create_model(config.model, 10)
  images, labels = dataset.test_images, dataset.test_labels
  def loss(tta):
    logits = inference.logits(model, run.variables, images,
                              config_defaults.apply_overrides(config, {'eval_tta': tta}))
    return float(optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean())
  assert final['test']['loss'] == pytest.approx(loss('airbench6'), rel=1e-5)
  assert final['test']['loss'] != pytest.approx(loss('none'), rel=1e-3)


def _images_with_ids(n=40, size=6):
  return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _flips_by_id(images, batch, ids):
  """{image id: mirrored?} of a batch whose labels are the images' ids."""
  out = {}
  for x, i in zip(batch, ids):
    same, mirror = np.array_equal(x, images[i]), np.array_equal(x, images[i][:, ::-1])
    assert same != mirror
    out[int(i)] = mirror
  return out


def test_memory_pipeline_alternates_each_images_flip_and_resumes_exactly():
  images = _images_with_ids()
  ids = np.arange(len(images), dtype=np.int32)  # The labels are the ids.
  def batches(start, count):
    it = memory.train_batches(images, ids, seed=3, batch_size=10, start_step=start,
                              alternating_flip=True)
    return [next(it) for _ in range(count)]
  run = batches(0, 12)  # 4 steps an epoch: epochs 0, 1, 2.
  per_epoch = [{} for _ in range(3)]
  for step, x, y in run:
    per_epoch[step // 4].update(_flips_by_id(images, x, y))
  assert all(len(e) == 40 for e in per_epoch)  # Every image, once an epoch.
  assert 10 <= sum(per_epoch[0].values()) <= 30
  assert all(per_epoch[1][i] != per_epoch[0][i] for i in range(40))  # Alternates...
  assert per_epoch[2] == per_epoch[0]                                  # ...and back.
  # A run resumed at step 5 reads what the uninterrupted one read.
  for (s1, x1, y1), (s2, x2, y2) in zip(run[5:], batches(5, 7)):
    assert s1 == s2
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)


def test_the_step_translates_by_reflection_in_place_of_the_zero_padded_crop():
  images = np.random.default_rng(0).integers(1, 256, (64, 8, 8, 3), dtype=np.uint8)
  config = config_defaults.apply_overrides(config_defaults.get_base_config(), {
      'augment.translate': 2, 'augment.crop_padding': 0, 'augment.flip': False})
  out = np.asarray(data.augment_in_step(jax.random.key(0), images, config))
  assert out.min() >= 1  # No zero padding came in.
  moved = ~(out == images).all(axis=(1, 2, 3))
  assert 0.8 < moved.mean() < 1.0  # 24 of 25 shifts move the image.


@pytest.mark.parametrize('overrides, match', [
    ({'augment.translate': 2, 'augment.crop_padding': 4}, 'crop_padding=0'),
    ({'augment.alternating_flip': True, 'augment.flip': True}, 'flip=False'),
    ({'augment.translate': 2, 'augment.crop_padding': 0, 'data.pipeline': 'stream',
      'data.image_size': 32}, 'pipeline=memory'),
    ({'whiten_images': 10}, "no 'whiten' layer"),
    ({'periodic_eval': 'train'}, "choose 'val' or 'test'"),
])
def test_knobs_that_cannot_work_are_one_line_errors(small_cifar, tmp_path, overrides, match):
  config = smoke_config(small_cifar, tmp_path / 'cache', **overrides)
  with pytest.raises(InputError, match=match) as e:
    train.train_and_evaluate(config, tmp_path / 'w')
  assert '\n' not in str(e.value)
