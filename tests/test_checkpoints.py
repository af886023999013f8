"""Checkpoints: exact resume after kill -9 or SIGTERM, keep policy, corruption,
the workdir lock, and load_run."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from isovolnet_jax import checkpointing
from isovolnet_jax import train
from isovolnet_jax.errors import InputError

from helpers import ROOT, metrics, run_main, smoke_config

STEPS = 120
SETTINGS = {'num_train_steps': STEPS, 'checkpoint_every_steps': 5,
            'log_every_steps': 5, 'eval_every_epochs': 2.0}
FLAGS = tuple(f'--config.{k}={v}' for k, v in SETTINGS.items())


def final_figures(workdir):
  rows = metrics(workdir)
  train_loss = [r['loss'] for r in rows if r['split'] == 'train' and r['step'] == STEPS][-1]
  test_acc = [r['accuracy'] for r in rows if r['split'] == 'test'][-1]
  run = checkpointing.load_run(workdir)
  assert run.step == STEPS
  return train_loss, test_acc, checkpointing.digest(run.variables)


@pytest.fixture(scope='module')
def data(small_cifar, tmp_path_factory):
  return dict(data_path=small_cifar, cache_dir=tmp_path_factory.mktemp('cache'))


def train_in_process(workdir, data, **overrides):
  config = smoke_config(data['data_path'], data['cache_dir'], **{**SETTINGS, **overrides})
  return train.train_and_evaluate(config, workdir)


@pytest.fixture(scope='module')
def reference(data, tmp_path_factory):
  """The uninterrupted run every other one must reproduce bit for bit."""
  workdir = tmp_path_factory.mktemp('reference') / 'w'
  train_in_process(workdir, data)
  return final_figures(workdir)


@pytest.fixture(scope='module')
def main_reference(data, tmp_path_factory):
  """The same run uninterrupted through `main`, which splits the batch over one
  CPU device per core (the in-process run above has one device, whose
  reductions round differently)."""
  workdir = tmp_path_factory.mktemp('main_reference') / 'w'
  out = run_main(workdir, *FLAGS, **data)
  assert out.returncode == 0, out.stderr[-3000:]
  return final_figures(workdir)


def start_main(workdir, data, flags=FLAGS):
  args = [sys.executable, '-m', 'isovolnet_jax.main', '--config=configs/smoke.py',
          f'--workdir={workdir}', '--config.data.source=folder',
          f'--config.data.path={data["data_path"]}',
          f'--config.data.cache_dir={data["cache_dir"]}', *flags]
  return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def wait_for_step(proc, workdir, step, timeout=300):
  """Until a checkpoint directory (complete or still being written) >= step."""
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    ckpts = workdir / 'checkpoints'
    names = [p.name.split('.')[0] for p in ckpts.iterdir()] if ckpts.exists() else []
    if any(n.isdigit() and int(n) >= step for n in names):
      return True
    time.sleep(0.02)
  return False


@pytest.mark.parametrize('kills', [pytest.param(3, marks=pytest.mark.long),
                                   pytest.param(10, marks=pytest.mark.slow)])
def test_kill_9_at_random_points_ends_bit_identical(kills, main_reference, data, tmp_path):
  workdir = tmp_path / 'w'
  rng = np.random.default_rng(int(time.time()))
  targets = sorted(rng.choice(np.arange(5, STEPS - 5), size=kills, replace=False))
  for target in targets:
    proc = start_main(workdir, data)
    reached = wait_for_step(proc, workdir, int(target))
    # A random extra delay: the kill lands mid-step, mid-save or mid-eval.
    time.sleep(rng.uniform(0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert reached, f'never reached step {target}'
  out = run_main(workdir, *FLAGS, **data)
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'Resumed from the checkpoint' in out.stderr
  assert final_figures(workdir) == main_reference, f'killed at {targets}'


def assert_every_checkpoint_readable(workdir):
  """Each step directory restores and matches its digest. A `N.orbax-checkpoint-tmp`
  (a save cut short) is no checkpoint: the next run's manager removes it."""
  steps = checkpointing.manager(workdir, read_only=True).all_steps()
  for step in steps:
    assert checkpointing.load_run(workdir, step).step == step
  assert not (workdir / 'checkpoints_unreadable').exists()
  return steps


@pytest.mark.long
def test_kill_9_while_saving_every_step_leaves_every_checkpoint_readable(
    main_reference, data, tmp_path):
  """With a save every step one is nearly always in flight, so the kills land
  mid-write, mid-finalize (the renames) and mid-delete of the step the keep
  policy drops. After each kill every kept checkpoint must read back; the run
  resumed to the end (saving every 5 steps, which changes no result) must end
  bit-identical to the uninterrupted one."""
  workdir = tmp_path / 'w'
  every_step = tuple(f'--config.{k}={v}' for k, v in
                     {**SETTINGS, 'checkpoint_every_steps': 1}.items())
  rng = np.random.default_rng(26)
  targets = sorted(rng.choice(np.arange(3, 40), size=3, replace=False))
  for target in targets:
    proc = start_main(workdir, data, every_step)
    reached = wait_for_step(proc, workdir, int(target))
    time.sleep(rng.uniform(0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert reached, f'never reached step {target}'
    assert assert_every_checkpoint_readable(workdir), f'no checkpoint after the kill at {target}'
  out = run_main(workdir, *FLAGS, **data)
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'Resumed from the checkpoint' in out.stderr
  assert final_figures(workdir) == main_reference, f'killed at {targets}'
  assert assert_every_checkpoint_readable(workdir)[-1] == STEPS


def interrupt(workdir, data, signum):
  """Starts main, sends `signum` after step 12; returns the step it saved."""
  proc = start_main(workdir, data)
  assert wait_for_step(proc, workdir, 12)
  time.sleep(0.1)
  proc.send_signal(signum)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signum, stderr[-3000:]
  assert 'Traceback' not in stderr and 'KeyboardInterrupt' not in stderr, stderr[-3000:]
  assert f'preempted: stopped by signal {int(signum)} at step' in stderr
  saved = int(stderr.split('at step ')[-1].split(';')[0])
  assert checkpointing.manager(workdir, read_only=True).latest_step() == saved
  return saved


@pytest.mark.long
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(main_reference, data, tmp_path):
  workdir = tmp_path / 'w'
  saved = interrupt(workdir, data, signal.SIGTERM)
  out = run_main(workdir, *FLAGS, **data)
  assert out.returncode == 0, out.stderr[-3000:]
  assert f'Resumed from the checkpoint at step {saved}' in out.stderr
  # Params and test accuracy are exact; the train-loss line averages the
  # window since the resume, so it is only exact when resuming on a log step.
  _, test_acc, params = final_figures(workdir)
  assert (test_acc, params) == main_reference[1:]


def test_sigint_saves_a_checkpoint_and_exits_cleanly(data, tmp_path):
  """Ctrl-C is handled as SIGTERM is (the resume from the saved step is the
  SIGTERM test's): exit 130, no KeyboardInterrupt, the step saved."""
  workdir = tmp_path / 'w'
  saved = interrupt(workdir, data, signal.SIGINT)
  assert 12 <= saved < STEPS
  run = checkpointing.load_run(workdir)
  assert run.step == saved
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(run.variables))


def test_time_budget_stops_saves_and_evaluates(data, tmp_path, caplog):
  """max_train_time_minutes: the first log step past the budget (here 60 us:
  step 5) ends the run as its last step would: a checkpoint (none was due),
  the validation and test evaluations, the metrics returned."""
  caplog.set_level('INFO')
  workdir = tmp_path / 'w'
  final = train_in_process(workdir, data, max_train_time_minutes=1e-6,
                           checkpoint_every_steps=1000)
  assert 'max_train_time_minutes=1e-06 reached at step 5; stopping' in caplog.text
  assert checkpointing.manager(workdir, read_only=True).all_steps() == [5]
  assert checkpointing.load_run(workdir).step == 5
  rows = metrics(workdir)
  assert [(r['step'], r['split']) for r in rows] == [(5, 'train'), (5, 'val'), (5, 'test')]
  assert set(final) == {'val', 'test'}
  for split in ('val', 'test'):
    logged = [r for r in rows if r['split'] == split][0]
    assert final[split] == pytest.approx({'loss': logged['loss'],
                                          'accuracy': logged['accuracy']})
  assert (workdir / 'learning_curves.png').stat().st_size > 0


def damage_truncate(step_dir):
  data_file = max((step_dir / 'state').rglob('d/*'), key=lambda p: p.stat().st_size)
  with open(data_file, 'r+b') as f:
    f.truncate(data_file.stat().st_size // 2)


def damage_metadata(step_dir):
  (step_dir / 'state' / '_METADATA').unlink()


def damage_in_place(step_dir):
  """4 KB of garbage in the middle of the largest data file, size unchanged."""
  data_file = max((step_dir / 'state').rglob('d/*'), key=lambda p: p.stat().st_size)
  size = data_file.stat().st_size
  with open(data_file, 'r+b') as f:
    f.seek(size // 2 - 2048)
    f.write(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
  assert data_file.stat().st_size == size


@pytest.mark.parametrize('damage', [damage_truncate, damage_metadata, damage_in_place])
def test_damaged_newest_checkpoint_falls_back_and_ends_identical(
    damage, reference, data, tmp_path, caplog):
  workdir = tmp_path / 'w'
  train_in_process(workdir, data)
  newest = workdir / 'checkpoints' / str(STEPS)
  damage(newest)
  # The same run again: the final checkpoint is unusable, so it resumes from
  # the one before and trains the last 5 steps again.
  caplog.set_level('INFO')
  train_in_process(workdir, data)
  assert f'Checkpoint at step {STEPS} ({newest}) cannot be used' in caplog.text
  assert f'Resumed from the checkpoint at step {STEPS - 5}' in caplog.text
  # Nothing deleted: the damaged checkpoint is kept aside.
  assert (workdir / 'checkpoints_unreadable' / str(STEPS) / 'state').is_dir()
  assert final_figures(workdir)[1:] == reference[1:]


def test_no_readable_checkpoint_is_a_clear_error(data, tmp_path):
  workdir = tmp_path / 'w'
  train_in_process(workdir, data, num_train_steps=5)
  damage_metadata(workdir / 'checkpoints' / '5')
  with pytest.raises(InputError, match=r'none of the checkpoints \[5\]'):
    train_in_process(workdir, data, num_train_steps=10)


def test_second_process_on_a_workdir_is_refused(data, tmp_path):
  workdir = tmp_path / 'w'
  workdir.mkdir()
  with checkpointing.WorkdirLock(workdir):
    out = run_main(workdir, '--config.num_train_steps=5', **data)
  assert out.returncode == 2
  line = out.stderr.strip().splitlines()[-1]
  assert line.startswith('error: ') and f'pid {os.getpid()}' in line
  assert not (workdir / 'checkpoints').exists()
  # The lock is gone with its holder.
  with checkpointing.WorkdirLock(workdir):
    pass


class FakeState:
  def __init__(self, step):
    self.step = np.int32(step)
    self.params = {'w': np.full(3, step, np.float32)}
    self.batch_stats = {}
    self.opt_state = {}


def test_every_evaluation_saves_a_checkpoint_with_its_val_accuracy(data, tmp_path):
  """Evaluations (every 15 steps here) fall between the periodic saves (every
  1000): each saves a checkpoint too, so the best is chosen among all of them."""
  workdir = tmp_path / 'w'
  train_in_process(workdir, data, num_train_steps=45, eval_every_epochs=1.0,
                   checkpoint_every_steps=1000, keep_checkpoints=10)
  val = {r['step']: r['accuracy'] for r in metrics(workdir, 'val')}
  mngr = checkpointing.manager(workdir, read_only=True)
  assert sorted(val) == sorted(mngr.all_steps()) == [15, 30, 45]
  for step, accuracy in val.items():
    assert mngr.metrics(step)['val_accuracy'] == pytest.approx(accuracy)
  assert checkpointing.best_step(workdir) == max(val, key=val.get)


def test_keep_policy_keeps_newest_and_best(tmp_path):
  mngr = checkpointing.manager(tmp_path, keep=2)
  for step, acc in zip(range(1, 7), [0.1, 0.9, 0.2, 0.3, None, 0.5]):
    checkpointing.save(mngr, step, FakeState(step), acc)
  mngr.wait_until_finished()
  assert sorted(mngr.all_steps()) == [2, 5, 6]
  assert checkpointing.best_step(tmp_path) == 2
  run_dir_best = checkpointing.manager(tmp_path, read_only=True)
  assert 2 in run_dir_best.all_steps()


def test_load_run_errors(tmp_path):
  with pytest.raises(InputError, match='config.json'):
    checkpointing.load_run(tmp_path)


def test_a_run_trained_on_two_cpu_devices_loads_on_one(small_cifar, tmp_path):
  """main splits the batch over one CPU device per core; a notebook has one."""
  from isovolnet_jax import evaluate
  workdir = tmp_path / 'run'
  out = run_main(workdir, '--config.num_train_steps=6', '--config.checkpoint_every_steps=6',
                 env={'XLA_FLAGS': '--xla_force_host_platform_device_count=2'},
                 data_path=small_cifar, cache_dir=tmp_path / 'cache')
  assert out.returncode == 0, out.stderr[-2000:]
  assert '2 devices' in out.stderr
  run = checkpointing.load_run(workdir)
  assert run.step == 6
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(run.variables))
  logged = [r['accuracy'] for r in metrics(workdir, 'test')][-1]
  assert evaluate.evaluate_run(workdir)['accuracy'] == pytest.approx(logged, abs=1e-6)


def test_configs_of_older_runs_get_new_keys_with_their_defaults(tmp_path):
  import json
  config = smoke_config(tmp_path, tmp_path).to_dict()
  del config['eval_tta']  # A run from before the key existed.
  (tmp_path / 'config.json').write_text(json.dumps(config))
  loaded = checkpointing.load_config(tmp_path)
  assert loaded.eval_tta == '' and loaded.model.name == config['model']['name']


def test_checksum_sees_any_flipped_bit_and_the_leaf_order():
  import jax.numpy as jnp
  rng = np.random.default_rng(0)
  tree = {'a': rng.standard_normal((7, 5)).astype(np.float32),
          'b': jnp.asarray(rng.standard_normal(33), jnp.bfloat16),
          'c': np.arange(9, dtype=np.int32)}
  base = checkpointing.checksum(tree)
  assert checkpointing.checksum(jax.tree.map(np.array, tree)) == base
  for name in tree:
    words = np.array(tree[name]).view(np.uint8).copy()
    for _ in range(5):
      flipped = words.copy()
      flipped.reshape(-1)[rng.integers(words.size)] ^= np.uint8(1 << rng.integers(8))
      changed = {**tree, name: flipped.view(np.array(tree[name]).dtype)}
      assert checkpointing.checksum(changed) != base, name
  assert checkpointing.checksum({'a': tree['c'], 'c': tree['a']}) != checkpointing.checksum(
      {'a': tree['a'], 'c': tree['c']})


def test_checkpoints_saved_with_the_older_sha256_digest_still_restore(tmp_path):
  import orbax.checkpoint as ocp
  mngr = checkpointing.manager(tmp_path)
  tree = checkpointing.savable(FakeState(3))
  mngr.save(3, args=ocp.args.Composite(
      state=ocp.args.StandardSave(tree),
      digest=ocp.args.JsonSave({'sha256': checkpointing.digest(tree)})))
  mngr.wait_until_finished()
  state, step = checkpointing.restore_newest_readable(
      checkpointing.manager(tmp_path), _ReplaceableFake(0))
  assert step == 3 and state.params['w'].tolist() == [3, 3, 3]


class _ReplaceableFake(FakeState):
  """A restore template: device arrays, and `replace` as a TrainState's."""

  def __init__(self, step):
    super().__init__(step)
    self.step, self.params = jax.tree.map(jax.numpy.asarray, (self.step, self.params))

  def replace(self, **kwargs):
    new = _ReplaceableFake(0)
    new.__dict__.update(kwargs)
    return new
