"""Streaming input (data.pipeline='stream'): splits, per-process shards,
resume, bounded memory, and two real processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from isovolnet_jax import config_defaults
from isovolnet_jax import data as data_lib
from isovolnet_jax import preemption
from isovolnet_jax import sharding
from isovolnet_jax import train
from isovolnet_jax.errors import InputError

from helpers import ROOT, metrics, smoke_config


# ---------------------------------------------------------------- data

def id_image(i: int, h: int = 40, w: int = 48) -> np.ndarray:
  """A constant image whose colour encodes i: every crop and resize keeps it."""
  return np.broadcast_to(np.array([i % 256, i // 256, 128], np.uint8), (h, w, 3)).copy()


def image_ids(images: np.ndarray) -> list[int]:
  assert (images == images[:, :1, :1]).all(), 'an id image was not constant'
  return [int(x[0, 0, 0]) + 256 * int(x[0, 0, 1]) for x in images]


def write_id_folder(root, splits=(('train', 64), ('test', 20)), classes=('a', 'b', 'c')):
  """split/<class>/<id>.png, ids numbered across splits; label = id % classes."""
  i = 0
  for split, n in splits:
    for _ in range(n):
      d = root / split / classes[i % len(classes)]
      d.mkdir(parents=True, exist_ok=True)
      Image.fromarray(id_image(i)).save(d / f'{i}.png')
      i += 1
  return root


def write_jpegs(root, splits, seed, size=40, classes=3):
  """Random JPEGs; size=None: heights 36, 37, ... (mixed sizes)."""
  rng = np.random.default_rng(seed)
  for split, n in splits:
    for i in range(n):
      d = root / split / f'c{i % classes}'
      d.mkdir(parents=True, exist_ok=True)
      h = size or 36 + i
      Image.fromarray(rng.integers(0, 256, (h, 40, 3), np.uint8)).save(d / f'{i}.jpg')
  return root


class StreamTestImages(tfds.core.GeneratorBasedBuilder):
  """60 train and 20 validation id images, 3 classes, no test split."""
  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(None, None, 3)),
        'label': tfds.features.ClassLabel(names=['x', 'y', 'z'])}),
                                 supervised_keys=('image', 'label'))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {'train': self._generate_examples(0, 60),
            'validation': self._generate_examples(60, 80)}

  def _generate_examples(self, lo, hi):  # pylint: disable=arguments-differ
    for i in range(lo, hi):
      yield i, {'image': id_image(i), 'label': i % 3}


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp('tfds')
  StreamTestImages(data_dir=str(data_dir)).download_and_prepare()
  return data_dir


def stream_config(**data):
  config = config_defaults.get_base_config()
  config.data.update({'pipeline': 'stream', 'image_size': 32, 'val_size': 0, **data})
  return config


def tfds_config(tfds_dir, **data):
  return stream_config(source='tfds', name='stream_test_images',
                       tfds_data_dir=str(tfds_dir), **data)


def epoch_ids(data, batch_size, process_index=0, process_count=1, start_step=0, steps=None,
              seed=0):
  n = steps or data_lib.steps_per_epoch(data.num_examples('train'), batch_size)
  it = data.train_batches(seed=seed, batch_size=batch_size, start_step=start_step,
                          process_index=process_index, process_count=process_count)
  return [next(it) for _ in range(n)]


# ---------------------------------------------------------------- splits

def test_split_names_come_from_the_dataset(tfds_dir):
  data = data_lib.dataset(tfds_config(tfds_dir, val_size=10))
  # No 'test' split: evaluation reads 'validation' (ids 60-79).
  assert data.split_names == {'train': 'train', 'test': 'validation'}
  assert [data.num_examples(s) for s in ('train', 'val', 'test')] == [50, 10, 20]
  ids = np.concatenate([image_ids(x[m > 0]) for x, _, m in data.eval_batches('test', 8)])
  assert sorted(ids) == list(range(60, 80))
  # Two processes evaluate disjoint halves, in as many batches each (padded).
  parts = [list(data.eval_batches('test', 8, p, 2)) for p in (0, 1)]
  assert len(parts[0]) == len(parts[1]) == 3 and all(len(x) == 4 for x, _, _ in parts[1])
  halves = [sum([image_ids(x[m > 0]) for x, _, m in part], []) for part in parts]
  assert sorted(halves[0] + halves[1]) == list(range(60, 80)) and len(halves[0]) == 10
  # The memory path resolves the same way.
  config = tfds_config(tfds_dir, val_size=10, pipeline='memory', image_size=0)
  assert sorted(image_ids(data_lib.dataset(config).test_images)) == list(range(60, 80))
  # Overrides, and a missing split refused naming the override.
  data = data_lib.dataset(tfds_config(tfds_dir, eval_split='train'))
  assert data.num_examples('test') == 60
  with pytest.raises(InputError, match=r"no split 'test' \(it has train, validation\).*"
                                       r"--config.data.eval_split"):
    data_lib.dataset(tfds_config(tfds_dir, eval_split='test'))
  with pytest.raises(InputError, match='data.image_size'):
    data_lib.dataset(tfds_config(tfds_dir, image_size=0))
  with pytest.raises(InputError, match="data.pipeline='disk'.*'memory' or 'stream'"):
    data_lib.dataset(tfds_config(tfds_dir, pipeline='disk'))


def test_folder_split_names_and_errors(tmp_path):
  root = write_id_folder(tmp_path / 'f', (('train', 12), ('validation', 6)))
  data = data_lib.dataset(stream_config(source='folder', path=str(root)))
  assert data.split_names['test'] == 'validation' and data.num_examples('test') == 6
  with pytest.raises(InputError, match='does not exist.*data.path'):
    data_lib.dataset(stream_config(source='folder', path=str(tmp_path / 'no')))
  (tmp_path / 'empty' / 'train' / 'a').mkdir(parents=True)
  with pytest.raises(InputError, match='no .jpg/.png images.*data.path'):
    data_lib.dataset(stream_config(source='folder', path=str(tmp_path / 'empty')))
  with pytest.raises(InputError, match=r"no split 'val'.*--config.data.eval_split"):
    data_lib.dataset(stream_config(source='folder', path=str(root), eval_split='val'))


# ---------------------------------------------------------------- order

def test_folder_stream_reads_the_memory_paths_batches(tmp_path):
  """Same examples at the same step as the memory path, augmented on the host."""
  root = write_id_folder(tmp_path / 'f')
  stream = data_lib.dataset(stream_config(source='folder', path=str(root)))
  memory = data_lib.dataset(stream_config(source='folder', path=str(root),
                                          pipeline='memory', cache_dir=str(tmp_path)))
  got = epoch_ids(stream, 16, steps=10)  # 4 steps per epoch: epochs 0, 1, 2.
  want = epoch_ids(memory, 16, steps=10)
  for (s1, x1, y1), (s2, x2, y2) in zip(got, want):
    assert s1 == s2 and image_ids(x1) == image_ids(x2)
    np.testing.assert_array_equal(y1, y2)
    assert x1.shape == (16, 32, 32, 3) and x1.dtype == np.uint8
  assert image_ids(got[0][1]) != image_ids(got[4][1])  # A new order each epoch.


def test_tfds_stream_shards_cover_the_epoch_and_resume_exactly(tfds_dir):
  data = data_lib.dataset(tfds_config(tfds_dir, shuffle_window=7))
  # 60 examples, batch 8: 7 steps per epoch, 56 examples.
  one = [image_ids(x) for _, x, _ in epoch_ids(data, 8)]
  assert len(set(sum(one, []))) == 56
  # Two processes: each reads only its half of the split; disjoint, and
  # together an epoch.
  halves = [sum([image_ids(x) for _, x, _ in epoch_ids(data, 8, p, 2)], []) for p in (0, 1)]
  assert [len(h) for h in halves] == [28, 28]
  assert not set(halves[0]) & set(halves[1]) and len(set(sum(halves, []))) == 56
  # Process 0 reads split examples [0, 30), process 1 [30, 60) (tfds' order).
  order = [image_ids(x)[0] for x, in tfds.as_numpy(tfds.builder(
      'stream_test_images', data_dir=str(tfds_dir)).as_dataset(
          split='train', shuffle_files=False).map(lambda e: (e['image'][None],)))]
  assert set(halves[0]) <= set(order[:30]) and set(halves[1]) <= set(order[30:])
  # Windows of 7 in a random order, shuffled inside: not the file order, and
  # each epoch another order.
  assert sum(one[:4], []) != order[:32]
  full = epoch_ids(data, 8, 1, 2, steps=17)  # Epochs 0, 1, 2 of process 1.
  assert image_ids(full[0][1]) != image_ids(full[7][1])
  # Resumed at any step (mid-window, mid-epoch, a later epoch): the same
  # examples, the same augmentation, bit for bit.
  for start in (3, 7, 12):
    resumed = epoch_ids(data, 8, 1, 2, start_step=start, steps=17 - start)
    for (s1, x1, y1), (s2, x2, y2) in zip(full[start:], resumed):
      assert s1 == s2
      np.testing.assert_array_equal(x1, x2)
      np.testing.assert_array_equal(y1, y2)


def test_stream_augmentation_is_the_same_after_resume(tmp_path):
  """Real images (not id images): crops and flips depend on the step only."""
  root = write_jpegs(tmp_path / 'f', (('train', 40), ('test', 4)), seed=1, size=None)
  data = data_lib.dataset(stream_config(source='folder', path=str(root)))
  full = epoch_ids(data, 8, steps=12)  # 5 steps per epoch.
  for start in (3, 5, 7):  # Mid-epoch, at an epoch's start, in the next epoch.
    resumed = epoch_ids(data, 8, start_step=start, steps=12 - start)
    for (_, a, _), (_, b, _) in zip(full[start:], resumed):
      np.testing.assert_array_equal(a, b)
  other_seed = epoch_ids(data, 8, steps=1, seed=1)
  assert not np.array_equal(other_seed[0][1], full[0][1])


# ---------------------------------------------------------------- training

def test_stream_training_resumes_bit_identically(tmp_path, monkeypatch):
  """Preempted at step 8 (mid-epoch) and rerun = one uninterrupted run: the
  same metrics, exactly."""
  root = write_jpegs(tmp_path / 'f', (('train', 96), ('test', 24)), seed=2)
  config = smoke_config(root, tmp_path / 'cache', **{
      'data.pipeline': 'stream', 'data.image_size': 32, 'data.val_size': 16,
      'num_train_steps': 16, 'batch_size': 16, 'eval_batch_size': 16,
      'log_every_steps': 2, 'checkpoint_every_steps': 100})
  final = train.train_and_evaluate(config, tmp_path / 'straight')

  real = preemption.agreed_signal
  monkeypatch.setattr(preemption, 'agreed_signal', lambda signals, step, every: (
      signal.SIGTERM if step == 8 else real(signals, step, every)))
  with pytest.raises(train.Preempted):
    train.train_and_evaluate(config, tmp_path / 'resumed')
  monkeypatch.undo()
  resumed = train.train_and_evaluate(config, tmp_path / 'resumed')
  assert resumed == final  # Bit-identical floats.
  after = [r for r in metrics(tmp_path / 'resumed', 'train') if r['step'] > 8]
  straight = [r for r in metrics(tmp_path / 'straight', 'train') if r['step'] > 8]
  assert [(r['step'], r['loss']) for r in after] == [(r['step'], r['loss']) for r in straight]
  assert json.loads((tmp_path / 'straight' / 'dataset.json').read_text())['num_val'] == 16


# ---------------------------------------------------------------- memory

MEMORY_SCRIPT = textwrap.dedent('''
    import json, sys
    from isovolnet_jax import config_defaults, data as data_lib
    config = config_defaults.get_base_config()
    config.data.update(source='folder', path=sys.argv[1], pipeline='stream',
                       image_size=224, val_size=0)
    data = data_lib.dataset(config)
    n_steps = data_lib.steps_per_epoch(data.num_examples('train'), 50)
    seen = set()
    for step, images, labels in data.train_batches(seed=0, batch_size=50, start_step=0):
      seen.update(labels.tolist())
      if step + 1 == n_steps:
        break
    # VmHWM, the peak RSS of this program (getrusage's ru_maxrss would include
    # the parent's, pytest's, from before the exec).
    peak_kib = next(int(line.split()[1]) for line in open('/proc/self/status')
                    if line.startswith('VmHWM:'))
    print(json.dumps({'steps': step + 1, 'classes': sorted(seen), 'peak_mib': peak_kib / 1024}))
''')


@pytest.mark.long
def test_streaming_a_folder_larger_than_the_memory_budget(tmp_path):
  """2,000 JPEGs of 512x512 (1.5 GiB decoded) through a process allowed 1 GiB."""
  budget_mib, n, side = 1024, 2000, 512
  root = tmp_path / 'big'
  yy, xx = np.mgrid[:side, :side]
  base = np.stack([xx, yy, xx + yy], -1) % 256
  for i in range(n):
    d = root / ('train' if i >= 50 else 'test') / f'c{i % 4}'
    d.mkdir(parents=True, exist_ok=True)
    Image.fromarray(((base + 7 * i) % 256).astype(np.uint8)).save(d / f'{i}.jpg', quality=80)
  decoded_mib = n * side * side * 3 / 2**20
  assert decoded_mib > 1.4 * budget_mib
  out = subprocess.run([sys.executable, '-c', MEMORY_SCRIPT, str(root)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  print('streamed a folder of', round(decoded_mib), 'MiB decoded:', result)  # pytest -s
  assert result['steps'] == 39 and result['classes'] == [0, 1, 2, 3]  # The whole epoch.
  assert result['peak_mib'] < budget_mib, result


# ---------------------------------------------------------------- two processes

SHARD_SCRIPT = textwrap.dedent('''
    import json, sys
    import jax
    from isovolnet_jax import config_defaults, data as data_lib, sharding
    port, pid, out, folder, tfds_dir = sys.argv[1:]
    jax.distributed.initialize(f'127.0.0.1:{port}', 2, int(pid))
    mesh = sharding.make_mesh(8)
    shard = sharding.DataShard(mesh)
    result = {'index': shard.index, 'count': shard.count, 'devices': jax.device_count()}
    for name, data in (('folder', dict(source='folder', path=folder)),
                       ('tfds', dict(source='tfds', name='stream_test_images',
                                     tfds_data_dir=tfds_dir, shuffle_window=7))):
      config = config_defaults.get_base_config()
      config.data.update(pipeline='stream', image_size=32, val_size=0, **data)
      ds = data_lib.dataset(config)
      n = data_lib.steps_per_epoch(ds.num_examples('train'), 8)
      ids = []
      for step, x, y in ds.train_batches(seed=0, batch_size=8, start_step=0,
                                         process_index=shard.index,
                                         process_count=shard.count):
        if step == n:
          break
        ids += [int(i[0, 0, 0]) + 256 * int(i[0, 0, 1]) for i in x]
      result[name] = ids
    json.dump(result, open(out, 'w'))
''')


def run_two_processes(tmp_path, args, devices_per_process=2):
  """`python ARGS... PORT PROCESS_ID` twice (a coordinator on 127.0.0.1)."""
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2',
         'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices_per_process}'}
  procs, logs = [], [tmp_path / f'process{i}.log' for i in range(2)]
  try:
    for i in range(2):
      with open(logs[i], 'w') as log:  # A file: a full pipe would block a collective.
        procs.append(subprocess.Popen([sys.executable, *args(port, i)], cwd=ROOT, env=env,
                                      stdout=log, stderr=subprocess.STDOUT))
    for p in procs:
      p.wait(timeout=300)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log.read_text()[-3000:]
  return [log.read_text() for log in logs]


def test_two_processes_read_disjoint_shards_covering_the_epoch(tmp_path, tfds_dir):
  root = write_id_folder(tmp_path / 'f')
  run_two_processes(tmp_path, lambda port, i: [
      '-c', SHARD_SCRIPT, str(port), str(i), str(tmp_path / f'{i}.json'), str(root),
      str(tfds_dir)])
  out = [json.loads((tmp_path / f'{i}.json').read_text()) for i in range(2)]
  assert [(o['index'], o['count'], o['devices']) for o in out] == [(0, 2, 4), (1, 2, 4)]
  memory = data_lib.dataset(stream_config(source='folder', path=str(root),
                                          pipeline='memory', cache_dir=str(tmp_path)))
  memory_epoch = sum([image_ids(x) for _, x, _ in epoch_ids(memory, 8)], [])
  for name, epoch in (('folder', 64), ('tfds', 56)):
    a, b = out[0][name], out[1][name]
    assert len(a) == len(b) == epoch // 2
    assert not set(a) & set(b), name  # Disjoint...
    assert len(set(a) | set(b)) == epoch, name  # ...and together the epoch.
  # The folder's global batches are the one-process (and memory) batches.
  rows = [out[i]['folder'][s * 4:(s + 1) * 4] for s in range(8) for i in (0, 1)]
  assert sum(rows, []) == memory_epoch


@pytest.mark.slow  # ~40-90 s; the shard test above covers the default run.
def test_two_processes_train_as_one_on_the_stream(tmp_path):
  """2 processes x 2 CPU devices = 1 process x 4 devices, streaming a folder:
  the same global batches and crops whatever the topology (a folder's batch
  is the memory path's; each example's seed is its row in the global batch)."""
  root = write_jpegs(tmp_path / 'f', (('train', 80), ('test', 16)), seed=3)
  flags = ['--config=configs/smoke.py', '--config.data.source=folder',
           f'--config.data.path={root}', '--config.data.pipeline=stream',
           '--config.data.image_size=32', '--config.data.val_size=16',
           '--config.num_train_steps=6', '--config.batch_size=16',
           '--config.eval_batch_size=16', '--config.log_every_steps=2']
  one = subprocess.run([sys.executable, '-m', 'isovolnet_jax.main', *flags,
                        f'--workdir={tmp_path / "1x4"}'], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env={
                           **os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2',
                           'XLA_FLAGS': '--xla_force_host_platform_device_count=4'})
  assert one.returncode == 0, one.stderr[-3000:]
  logs = run_two_processes(tmp_path, lambda port, i: [
      '-m', 'isovolnet_jax.main', *flags, f'--workdir={tmp_path / "2x2"}',
      f'--jax_coordinator_address=127.0.0.1:{port}', '--jax_num_processes=2',
      f'--jax_process_id={i}'])
  assert 'this one feeds batch slice 1 of 2' in logs[1]
  losses = {name: [r['loss'] for r in metrics(tmp_path / name, 'train')]
            for name in ('1x4', '2x2')}
  assert len(losses['2x2']) == 3
  np.testing.assert_allclose(losses['2x2'], losses['1x4'], rtol=1e-3)
  test = {name: metrics(tmp_path / name, 'test')[0] for name in ('1x4', '2x2')}
  assert test['2x2']['accuracy'] == test['1x4']['accuracy']
