"""Scale out: several processes (multi-host), the mesh from the config, bfloat16
compute with float32 state, and gradient accumulation."""

import os
import socket
import subprocess
import sys
import time
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from isovolnet_jax import config_defaults
from isovolnet_jax import models
from isovolnet_jax import optim
from isovolnet_jax import sharding
from isovolnet_jax import train
from isovolnet_jax.data import augment
from isovolnet_jax.errors import InputError

from helpers import ROOT, last_line, metrics, run_main, smoke_config

# ---------------------------------------------------------------- several processes


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def run_processes(workdir, n_proc, devices_per_proc, *flags, data_path, cache_dir,
                  timeout=900):
  """The main job as n_proc processes on this machine (a coordinator on
  127.0.0.1); returns [(returncode, stderr)] in process order.

  Output goes to files (a full pipe would block a process mid-collective);
  on a timeout or any error every process still running is killed.
  """
  port = free_port()
  env = {**os.environ,
         'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices_per_proc}'}
  procs, logs = [], []
  try:
    for i in range(n_proc):
      log = open(workdir.parent / f'{workdir.name}.process{i}.log', 'w+')
      logs.append(log)
      procs.append(subprocess.Popen(
          [sys.executable, '-m', 'isovolnet_jax.main', '--config=configs/smoke.py',
           f'--workdir={workdir}', '--config.data.source=folder',
           f'--config.data.path={data_path}', f'--config.data.cache_dir={cache_dir}',
           f'--jax_coordinator_address=127.0.0.1:{port}',
           f'--jax_num_processes={n_proc}', f'--jax_process_id={i}', *flags],
          cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True))
    deadline = time.time() + timeout
    for p in procs:
      p.wait(timeout=max(1, deadline - time.time()))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  out = []
  for p, log in zip(procs, logs):
    log.seek(0)
    out.append((p.returncode, log.read()))
    log.close()
  return out


def assert_all_ok(results):
  for i, (rc, text) in enumerate(results):
    assert rc == 0, f'process {i} exited {rc}:\n{text[-3000:]}'


@pytest.mark.long
def test_two_processes_match_one_process_and_one_device(small_cifar, tmp_path):
  """2 processes x 2 CPU devices = 1 process x 4 devices = 1 device.

  Each process feeds its half of the same global batch (same augmentation,
  same BatchNorm statistics over the whole batch); only the order of
  floating-point reductions differs: as for 8 devices in test_train, the
  first logged loss (from the same initial params) agrees to rtol 1e-5, the
  later ones, where training amplifies those roundings, to rtol 1e-3. Then the
  2-process run is resumed, on a 2-D ('data', 'model') mesh, from the
  checkpoint it saved.
  """
  data = dict(data_path=small_cifar, cache_dir=tmp_path / 'cache')
  steps = ('--config.num_train_steps=20', '--config.log_every_steps=2')
  losses = {}
  for name, n in (('1x1', 1), ('1x4', 4)):
    out = run_main(tmp_path / name, *steps,
                   env={'XLA_FLAGS': f'--xla_force_host_platform_device_count={n}'},
                   **data)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f'{n} devices' in out.stderr
    losses[name] = [r['loss'] for r in metrics(tmp_path / name, 'train')]

  workdir = tmp_path / '2x2'
  results = run_processes(workdir, 2, 2, *steps, **data)
  assert_all_ok(results)
  for i, (_, text) in enumerate(results):
    assert f'JAX process {i}/2' in text
    assert '4 devices' in text
  rows = metrics(workdir)
  # Only process 0 wrote: each (step, split) once.
  assert not [k for k, c in Counter((r['step'], r['split']) for r in rows).items()
              if c > 1], rows
  assert [r['step'] for r in rows if r['split'] == 'train'] == list(range(2, 21, 2))
  losses['2x2'] = [r['loss'] for r in metrics(workdir, 'train')]
  assert len(losses['1x1']) == 10 and all(np.isfinite(losses['1x1']))
  for name in ('1x4', '2x2'):
    np.testing.assert_allclose(losses[name][0], losses['1x1'][0], rtol=1e-5)
    np.testing.assert_allclose(losses[name], losses['1x1'], rtol=1e-3)
  # Every 10 steps, and at the evaluation at step 15 (an epoch).
  assert sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir()) == [10, 15, 20]

  # Resume both processes from step 20, now on a 2x2 (data, model) mesh:
  # each process holds one block of the batch, replicated along 'model'.
  results = run_processes(workdir, 2, 2, '--config.num_train_steps=30',
                          '--config.log_every_steps=2', '--config.mesh_shape=(2, 2)',
                          "--config.mesh_axes=('data', 'model')", **data)
  assert_all_ok(results)
  for _, text in results:
    assert 'Resumed from the checkpoint at step 20' in text, text[-3000:]
    assert "'data': 2, 'model': 2" in text
  new = [r for r in metrics(workdir, 'train')][len(losses['2x2']):]
  assert [r['step'] for r in new] == list(range(22, 31, 2))
  assert all(np.isfinite(r['loss']) for r in new)
  # The newest 3 (keep_checkpoints); the best by val accuracy is among them.
  assert sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir()) == [15, 20, 30]


def test_distributed_flags_are_checked_in_one_line(tmp_path):
  out = run_main(tmp_path / 'w', '--jax_num_processes=2', '--jax_process_id=0')
  assert out.returncode == 2, out.stderr[-3000:]
  assert 'Traceback' not in out.stderr
  line = last_line(out.stderr)
  assert line.startswith('error: ') and '--jax_coordinator_address' in line, line


# ---------------------------------------------------------------- mesh


def test_mesh_shape_resolves_minus_one():
  assert sharding.mesh_sizes((-1,), ('data',), 4) == (4,)
  assert sharding.mesh_sizes((-1, 2), ('data', 'model'), 8) == (4, 2)
  assert sharding.mesh_sizes((1, -1), ('data', 'model'), 8) == (1, 8)


@pytest.mark.parametrize('shape, axes, needle', [
    ((3,), ('data',), 'does not cover the 4 devices'),
    ((-1, 3), ('data', 'model'), 'does not cover the 4 devices'),
    ((2, 2), ('data',), 'one size per axis'),
    ((4,), ('batch',), "include 'data'"),
    ((-1, -1), ('data', 'model'), 'at most one'),
    ((0, 4), ('data', 'model'), 'positive'),
])
def test_bad_mesh_shapes_are_input_errors(shape, axes, needle):
  with pytest.raises(InputError, match=needle) as e:
    sharding.mesh_sizes(shape, axes, 4)
  assert '\n' not in str(e.value)


def test_default_mesh_is_all_devices_on_data():
  mesh = sharding.make_mesh(jax.device_count() * 4)
  assert dict(mesh.shape) == {'data': jax.device_count()}
  shard = sharding.DataShard(mesh)
  assert (shard.index, shard.count) == (0, 1)


class _FakeMesh:
  """Just what DataShard reads: a `data` axis of 4 whose devices belong to
  the processes listed (this test process is process 0)."""

  def __init__(self, owners):
    self.shape = {'data': len(owners), 'model': 1}
    self.axis_names = ('data', 'model')
    devices = [type('Device', (), {'process_index': o})() for o in owners]
    self.devices = np.array(devices, dtype=object).reshape(len(owners), 1)


def test_data_shard_feeds_the_blocks_of_this_process():
  rows = np.arange(8)
  # Process 0 holds data blocks 2 and 3: the second half, as the data pipelines'
  # slice 1 of 2.
  shard = sharding.DataShard(_FakeMesh([1, 1, 0, 0]))
  assert (shard.contiguous, shard.index, shard.count) == (True, 1, 2)
  assert shard.local_rows(rows)[0] is rows
  # Blocks 0 and 2 (a mesh that interleaves hosts): the whole batch is read
  # and this process keeps rows 0-1 and 4-5, in block order.
  shard = sharding.DataShard(_FakeMesh([0, 1, 0, 1]))
  assert (shard.contiguous, shard.index, shard.count) == (False, 0, 1)
  np.testing.assert_array_equal(shard.local_rows(rows)[0], [0, 1, 4, 5])


def test_bad_mesh_and_accumulation_are_one_line_cli_errors(small_cifar, tmp_path):
  data = dict(data_path=small_cifar, cache_dir=tmp_path / 'cache')
  for flags, needles in [
      (['--config.mesh_shape=(3,)'], ['mesh_shape=(3,)', '4 devices']),
      (['--config.grad_accum_steps=3'], ['batch_size=32', 'grad_accum_steps=3',
                                         'multiple of 12']),
  ]:
    out = run_main(tmp_path / 'w', *flags,
                   env={'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}, **data)
    assert out.returncode == 2, out.stderr[-3000:]
    assert 'Traceback' not in out.stderr, out.stderr[-3000:]
    line = last_line(out.stderr)
    assert line.startswith('error: '), line
    for needle in needles:
      assert needle in line, line


# ---------------------------------------------------------------- mixed precision


def _state_and_batch(config, dtype, batch=32, seed=0):
  model = models.create_model(config.model, 10, dtype)
  mesh = sharding.make_mesh(batch, grad_accum_steps=config.grad_accum_steps)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  tx = optim.create_optimizer(config.optimizer,
                              optax.constant_schedule(config.optimizer.learning_rate))
  state = train.create_train_state(model, (32, 32, 3), tx,
                                   jax.random.key(seed), replicated)
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
  labels = rng.integers(0, 10, batch).astype(np.int32)
  return model, mesh, state, images, labels


def _dtypes(tree):
  return {str(x.dtype) for x in jax.tree.leaves(tree)}


def test_bfloat16_computes_in_bf16_and_keeps_float32_state():
  config = config_defaults.get_base_config()
  config.model.update({'stem_features': 8, 'num_blocks': 3})
  config.optimizer.update({'name': 'adamw', 'learning_rate': 1e-3})
  model, mesh, state, images, labels = _state_and_batch(config, jnp.bfloat16)
  step = jax.jit(lambda s, x, y: train.train_step(
      s, x, y, jax.random.key(1), config=config, num_classes=10, mesh=mesh))
  for _ in range(2):
    state, m = step(state, images, labels)
  assert np.isfinite(float(m['loss']))
  assert _dtypes(state.params) == {'float32'}
  assert _dtypes(state.batch_stats) == {'float32'}
  assert _dtypes(state.opt_state) <= {'float32', 'int32'}  # int32: Adam's count.
  assert 'float32' in _dtypes(state.opt_state)

  x = augment.normalize(images[:4])
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  assert model.apply(variables, x, train=False).dtype == jnp.float32  # Cast back.
  # In training mode: in inference on CPU, conv + BatchNorm + activation are
  # one oneDNN call (layers.conv_bn_act_inference), with no Conv_0 to capture.
  logits, inter = model.apply(variables, x, train=True, capture_intermediates=True,
                              mutable=['intermediates', 'batch_stats'])
  assert logits.dtype == jnp.float32  # The models cast the logits back.
  flat = jax.tree_util.tree_flatten_with_path(inter['intermediates'])[0]
  conv_out = {jax.tree_util.keystr(p): v.dtype for p, v in flat if 'Conv_0' in
              jax.tree_util.keystr(p)}
  assert conv_out and set(conv_out.values()) == {jnp.dtype(jnp.bfloat16)}, conv_out
  norm_out = [v.dtype for p, v in flat if 'BatchNorm_0' in jax.tree_util.keystr(p)]
  assert norm_out and set(norm_out) == {jnp.dtype(jnp.bfloat16)}


def test_bfloat16_smoke_run_trains(small_cifar, tmp_path):
  config = smoke_config(small_cifar, tmp_path / 'cache', dtype='bfloat16',
                        num_train_steps=30, log_every_steps=5)
  final = train.train_and_evaluate(config, tmp_path / 'w')
  losses = [r['loss'] for r in metrics(tmp_path / 'w', 'train')]
  assert len(losses) == 6 and all(np.isfinite(losses)), losses
  # Mean of the first two logged losses -> the last two, measured here:
  # 2.80 -> 2.48 (float32: 2.80 -> 2.48). The run is deterministic.
  assert np.mean(losses[-2:]) < np.mean(losses[:2]) - 0.1, losses
  assert np.isfinite(final['test']['loss'])
  from isovolnet_jax import checkpointing
  run = checkpointing.load_run(tmp_path / 'w')
  assert _dtypes(run.variables) == {'float32'}


# ---------------------------------------------------------------- accumulation


def _sgd_config(norm):
  config = config_defaults.get_base_config()
  config.model.update({'stem_features': 8, 'num_blocks': 3, 'norm': norm})
  config.augment.update({'crop_padding': 4, 'flip': True})
  config.optimizer.update({'name': 'sgd', 'momentum': 0.9, 'learning_rate': 0.1,
                           'weight_decay': 0.0, 'schedule': 'constant'})
  return config


def test_accumulated_micro_batches_equal_one_big_batch_without_batchnorm():
  """norm='none': 4 micro-batches of 8 = one batch of 32, to float rounding.

  SGD with momentum from a zero trace: after one step the trace *is* the
  gradient the update used, compared without the rounding of params + update.
  The mean of 4 equal micro-batch means is the batch mean; only the summation
  order differs (float32: ~1e-7 relative), so rtol 1e-5, with an absolute
  floor of 1e-5 of each leaf's largest entry (entries near zero, where terms
  cancel, have no meaningful relative error).
  """
  grads, params, losses = {}, {}, {}
  for k in (1, 4):
    config = config_defaults.apply_overrides(_sgd_config('none'), {'grad_accum_steps': k})
    _, mesh, state, images, labels = _state_and_batch(config, jnp.float32)
    step = jax.jit(lambda s, x, y: train.train_step(
        s, x, y, jax.random.key(1), config=config, num_classes=10, mesh=mesh))
    state, m = step(state, images, labels)
    trace = optax.tree_utils.tree_get(jax.device_get(state.opt_state), 'trace')
    grads[k] = jax.tree.leaves(trace)
    params[k] = jax.tree.leaves(jax.device_get(state.params))
    losses[k] = (float(m['loss']), float(m['accuracy']))
  np.testing.assert_allclose(losses[4][0], losses[1][0], rtol=1e-5)
  assert losses[4][1] == losses[1][1]
  assert len(grads[1]) == len(params[1]) > 0  # One trace per parameter.
  for a, b in zip(grads[4], grads[1]):
    assert np.abs(b).max() > 0
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
  for a, b in zip(params[4], params[1]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


BN_MOMENTUM = 0.9  # flax's convention: new = 0.9 * running + 0.1 * batch.


@pytest.mark.parametrize('k', [1, 4])
def test_accumulation_with_batchnorm_updates_statistics_per_micro_batch(k):
  """Each of k micro-batches is normalized with its own statistics s_i, and
  the running averages take k momentum steps in order:
  r_i = 0.9 r_(i-1) + 0.1 s_i, r_0 the state's. s_i is read from one
  train-mode call on micro-batch i (the same params; the statistics a call
  computes do not depend on the running averages it starts from)."""
  config = config_defaults.apply_overrides(_sgd_config('batch'), {'grad_accum_steps': k})
  model, mesh, state, images, labels = _state_and_batch(config, jnp.float32)
  params, start = jax.device_get((state.params, state.batch_stats))
  # The step's own augmentation: its key is fold_in(base key, step 0).
  aug_key, _ = jax.random.split(jax.random.fold_in(jax.random.key(1), 0))
  x = augment.normalize(augment.augment(
      aug_key, images, config.augment.crop_padding, config.augment.flip))

  def batch_statistics(micro_batch):
    _, out = model.apply({'params': params, 'batch_stats': start}, micro_batch,
                         train=True, mutable=['batch_stats'])
    return jax.tree.map(lambda new, r: (new - BN_MOMENTUM * r) / (1 - BN_MOMENTUM),
                        jax.device_get(out['batch_stats']), start)

  expected = start
  for micro_batch in train.split_micro_batches(x, k):
    expected = jax.tree.map(lambda r, s: BN_MOMENTUM * r + (1 - BN_MOMENTUM) * s,
                            expected, batch_statistics(micro_batch))
  step = jax.jit(lambda s, x, y: train.train_step(
      s, x, y, jax.random.key(1), config=config, num_classes=10, mesh=mesh))
  state, m = step(state, images, labels)
  assert np.isfinite(float(m['loss']))
  got = jax.device_get(state.batch_stats)
  assert _dtypes(got) == {'float32'}
  flat_got = jax.tree_util.tree_flatten_with_path(got)[0]
  assert len(flat_got) == len(jax.tree.leaves(expected)) > 0
  for (path, a), b in zip(flat_got, jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5,
                               err_msg=jax.tree_util.keystr(path))


def test_accumulation_with_batchnorm_trains_and_is_deterministic(small_cifar, tmp_path):
  runs = []
  for name in ('a', 'b'):
    config = smoke_config(small_cifar, tmp_path / 'cache', grad_accum_steps=4,
                          num_train_steps=30, log_every_steps=5)
    train.train_and_evaluate(config, tmp_path / name)
    runs.append([(r['step'], r['split'], r['loss'], r['accuracy'])
                 for r in metrics(tmp_path / name)])
  assert runs[0] == runs[1]
  # Measured here: 2.79 -> 2.49 (first two -> last two logged losses).
  losses = [r[2] for r in runs[0] if r[1] == 'train']
  assert len(losses) == 6 and all(np.isfinite(losses)), losses
  assert np.mean(losses[-2:]) < np.mean(losses[:2]) - 0.1, losses


def test_micro_batches_are_strided_rows():
  x = jnp.arange(12)
  np.testing.assert_array_equal(train.split_micro_batches(x, 3),
                                [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]])


def test_batch_not_divisible_by_accumulation_is_an_input_error():
  n = jax.device_count()
  with pytest.raises(InputError, match=f'multiple of {4 * n}'):
    sharding.make_mesh(4 * n + 2 * n, grad_accum_steps=4)
  with pytest.raises(InputError, match='grad_accum_steps=0'):
    sharding.make_mesh(32, grad_accum_steps=0)
