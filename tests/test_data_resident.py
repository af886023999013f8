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

from helpers import metrics, run_main, smoke_config


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


@pytest.mark.long
def test_on_eight_devices_resident_training_equals_host_fed(small_cifar, tmp_path):
  """Through `main`, data parallel over 8 CPU devices: the split replicated
  on each, each device gathering its block of the batch: the same losses, bit
  for bit, as the host-fed run on the same devices."""
  losses = {}
  for mode in ('on', 'off'):
    out = run_main(tmp_path / mode, '--config.num_train_steps=20', '--config.log_every_steps=5',
                   f'--config.data.device_resident={mode}',
                   env={'XLA_FLAGS': '--xla_force_host_platform_device_count=8'},
                   data_path=small_cifar, cache_dir=tmp_path / 'cache')
    assert out.returncode == 0, out.stderr[-3000:]
    assert '8 devices' in out.stderr
    assert ('Training split on the devices' in out.stderr) == (mode == 'on')
    losses[mode] = [(r['step'], r['loss'], r['accuracy']) for r in metrics(tmp_path / mode)]
  assert len(losses['on']) > 4 and losses['on'] == losses['off']


class Accelerator:
  platform = 'gpu'

  def __init__(self, limit=1000):
    self.limit = limit

  def memory_stats(self):
    return {'bytes_limit': self.limit}


def test_auto_is_resident_on_accelerators_for_memory_data_that_fits(monkeypatch):
  monkeypatch.setattr(jax, 'local_devices', lambda: [Accelerator(80 << 30)] * 2)
  assert resident.wanted('auto', 'memory', 150 << 20)
  assert not resident.wanted('auto', 'memory', 64 << 30)  # Over a quarter of it.
  assert not resident.wanted('auto', 'stream', 1)
  assert not resident.wanted('off', 'memory', 1)
  assert resident.wanted('on', 'memory', 64 << 30)


def test_auto_keeps_the_split_on_the_host_on_cpu():
  assert jax.local_devices()[0].platform == 'cpu'
  assert not resident.wanted('auto', 'memory', 150 << 20)
  assert resident.wanted('on', 'memory', 150 << 20)


def test_fits_reads_an_accelerators_memory_limit():
  assert resident.fits(250, [Accelerator()])
  assert not resident.fits(251, [Accelerator()])
  assert not resident.fits(251, [Accelerator(), Accelerator(100)])


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
