"""The training split on the devices: the same batches as the host pipeline,
bit for bit, and the same training run; the background prefetch thread."""

import hashlib
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from isovolnet_jax import data
from isovolnet_jax import sharding
from isovolnet_jax import train
from isovolnet_jax.data import memory, resident
from isovolnet_jax.errors import InputError

from helpers import metrics, smoke_config


def images_and_labels(n=103, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
          rng.integers(0, 10, n).astype(np.int32))


@pytest.mark.parametrize('alternating_flip', [False, True])
def test_resident_batches_equal_the_host_pipeline_bit_for_bit(alternating_flip):
  """Over 3 epochs and a resume mid-epoch (start_step 17): the rows, their
  order, the labels and the alternating flips, on every step."""
  images, labels = images_and_labels()
  mesh = sharding.make_mesh(8)
  split = resident.put(mesh, images, labels, 3, alternating_flip)
  gather = jax.jit(lambda sp, rows, step: resident.batch(sp, rows, step, alternating_flip))
  steps = 103 // 8
  for start in (0, 17):
    host = memory.train_batches(images, labels, seed=3, batch_size=8, start_step=start,
                                alternating_flip=alternating_flip)
    for _ in range(3 * steps):
      step, x, y = next(host)
      rows = resident.epoch_rows(mesh, 3, step // steps, len(images), 8)
      gx, gy = gather(split, rows, jnp.int32(step))
      np.testing.assert_array_equal(np.asarray(gx), x)
      np.testing.assert_array_equal(np.asarray(gy), y)


def test_alternating_flip_on_the_device_mirrors_alternate_epochs():
  """The flip is not a no-op: an image seen in epochs 0 and 1 is mirrored
  in exactly one of them."""
  images, labels = images_and_labels(n=16)
  mesh = sharding.make_mesh(16)
  split = resident.put(mesh, images, labels, 0, True)
  seen = []
  for epoch in (0, 1):
    rows = resident.epoch_rows(mesh, 0, epoch, 16, 16)
    x, _ = resident.batch(split, rows, jnp.int32(epoch), True)
    order = np.asarray(rows[0])
    seen.append(np.asarray(x)[np.argsort(order)])
  mirrored = [(s == images[:, :, ::-1]).all(axis=(1, 2, 3)) for s in seen]
  assert (mirrored[0] ^ mirrored[1]).all()
  assert 0 < mirrored[0].sum() < 16


def params_digest(workdir):
  from isovolnet_jax import checkpointing
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(checkpointing.load_run(workdir).variables):
    h.update(np.asarray(leaf).tobytes())
  return h.hexdigest()


@pytest.mark.parametrize('overrides', [
    {},
    {'augment.alternating_flip': True, 'augment.flip': False, 'augment.crop_padding': 0,
     'augment.translate': 2},
])
def test_resident_training_equals_host_fed_training_bit_for_bit(small_cifar, tmp_path,
                                                               caplog, overrides):
  """Two epochs (the smoke split is 500 images, batch 32: 15 steps an epoch)
  with the split on the device and fed from the host: the same logged
  metrics and the same final parameters, bit for bit."""
  runs = {}
  for mode in ('on', 'off'):
    config = smoke_config(small_cifar, tmp_path / 'cache', num_train_steps=32,
                          **{'data.device_resident': mode, **overrides})
    caplog.clear()
    with caplog.at_level('INFO'):
      train.train_and_evaluate(config, tmp_path / mode)
    assert ('Training split on the devices' in caplog.text) == (mode == 'on')
    runs[mode] = ([(r['step'], r['split'], r['loss'], r['accuracy'])
                   for r in metrics(tmp_path / mode)], params_digest(tmp_path / mode))
  assert runs['on'] == runs['off']


def test_auto_is_resident_for_cifar_sized_memory_data_only():
  assert resident.wanted('auto', 'memory', 150 << 20)
  assert not resident.wanted('auto', 'memory', 64 << 30)  # Larger than a CPU's share.
  assert not resident.wanted('auto', 'stream', 1)
  assert not resident.wanted('off', 'memory', 1)
  assert resident.wanted('on', 'memory', 64 << 30)


def test_fits_reads_an_accelerators_memory_limit():
  class Device:
    platform = 'gpu'
    def memory_stats(self):
      return {'bytes_limit': 1000}
  assert resident.fits(250, [Device()])
  assert not resident.fits(251, [Device()])


def test_bad_device_resident_values_name_the_fix():
  with pytest.raises(InputError, match="choose one of"):
    resident.wanted('yes', 'memory', 1)
  with pytest.raises(InputError, match='device_resident=auto'):
    resident.wanted('on', 'stream', 1)


# ---------------------------------------------------------------- prefetch thread

def test_prefetch_runs_ahead_in_a_thread_and_keeps_order():
  produced, main = [], threading.get_ident()

  def items():
    for i in range(10):
      produced.append((i, threading.get_ident()))
      yield i
  it = data.prefetch(items(), 3)
  assert next(it) == 0
  deadline = time.time() + 5
  while len(produced) < 4 and time.time() < deadline:  # 3 queued + 1 taken.
    time.sleep(0.01)
  assert len(produced) >= 4
  assert all(t != main for _, t in produced)
  assert list(it) == list(range(1, 10))


def test_prefetch_raises_the_producers_error_at_its_item():
  def items():
    yield 1
    raise InputError('bad image')
  it = data.prefetch(items(), 2)
  assert next(it) == 1
  with pytest.raises(InputError, match='bad image'):
    next(it)


def test_prefetch_stops_its_thread_when_closed():
  def forever():
    i = 0
    while True:
      yield i
      i += 1
  before = set(threading.enumerate())
  it = data.prefetch(forever(), 2)
  next(it)
  (thread,) = set(threading.enumerate()) - before
  assert thread.name == 'isovolnet-prefetch'
  it.close()
  deadline = time.time() + 5
  while thread.is_alive():
    assert time.time() < deadline, 'the prefetch thread outlived its iterator'
    time.sleep(0.02)
