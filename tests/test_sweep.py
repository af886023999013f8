"""sweep.py: a two-seed sweep of configs/smoke.py, its rerun, its errors."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ml_collections
import pytest

from isovolnet_jax import config_defaults
from isovolnet_jax import train
from isovolnet_jax.errors import InputError
from isovolnet_jax.tools import sweep
from isovolnet_jax.tools import sweep_report

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / 'configs' / 'sweeps'


def smoke_config(data: Path, cache: Path) -> ml_collections.ConfigDict:
  config = config_defaults.load_config_file(ROOT / 'configs' / 'smoke.py')
  config.data.update(source='folder', path=str(data), cache_dir=str(cache))
  config.num_train_steps = 10
  return config


@pytest.fixture(scope='module')
def swept(small_cifar, tmp_path_factory):
  """(config, points, workdir, rows) of a finished two-point sweep."""
  root = tmp_path_factory.mktemp('sweep')
  config = smoke_config(small_cifar, root / 'cache')
  points = [{'seed': 0}, {'seed': 1}]
  rows = sweep.run_sweep(config, points, root / 'sweep')
  return config, points, root / 'sweep', rows


def test_sweep_writes_results(swept):
  _, _, workdir, rows = swept
  assert [r['name'] for r in rows] == ['seed=0', 'seed=1']
  with (workdir / 'results.csv').open() as f:
    table = list(csv.DictReader(f))
  assert len(table) == 2
  for row, r in zip(table, rows):
    assert row['seed'] == str(r['overrides']['seed'])
    assert 0 <= float(row['test_accuracy']) <= 1 and float(row['val_loss']) > 0
    assert int(row['params']) > 0 and int(row['step']) == 10
    assert float(row['train_time_s']) > 0
    # The sweep's numbers are train.py's, as logged in the point's metrics.jsonl.
    logged = [json.loads(l) for l in (workdir / r['name'] / 'metrics.jsonl').open()]
    test = [l for l in logged if l['split'] == 'test'][-1]
    assert float(row['test_accuracy']) == pytest.approx(test['accuracy'])
    assert (workdir / r['name'] / sweep.RESULT).exists()
  md = (workdir / 'results.md').read_text()
  assert md.count('\n| ') >= 2 + 1  # Two point rows, one group row (+ headers).
  assert '±' in md  # The group of two seeds has a std.
  with (workdir / 'results_grouped.csv').open() as f:
    groups = list(csv.DictReader(f))
  assert len(groups) == 1 and groups[0]['name'] == 'base' and groups[0]['n'] == '2'
  assert (workdir / 'results.png').stat().st_size > 0
  # Learning curves: val accuracy at the epochs the point reached (10 steps of
  # 32 of the 500 training images), as logged.
  assert (workdir / 'results_curves.png').stat().st_size > 0
  epochs, accuracy = sweep_report.val_curve(workdir / 'seed=0')
  logged = [json.loads(l) for l in (workdir / 'seed=0' / 'metrics.jsonl').open()]
  assert epochs[-1] == pytest.approx(10 * 32 / 500)
  assert accuracy[-1] == pytest.approx([l for l in logged if l['split'] == 'val'][-1]['accuracy'])


def test_rerun_skips_finished_points(swept, monkeypatch):
  config, points, workdir, rows = swept

  def must_not_train(*args):
    raise AssertionError(f'train_and_evaluate called again: {args}')

  monkeypatch.setattr(train, 'train_and_evaluate', must_not_train)
  (workdir / 'results.csv').unlink()
  assert sweep.run_sweep(config, points, workdir) == rows
  assert (workdir / 'results.csv').exists()  # Rewritten from the result.json files.


def test_results_dir_holds_results_and_skips_points_on_a_fresh_workdir(
    swept, tmp_path, monkeypatch):
  """--results=results/<sweep> (committed): a fresh clone's rerun trains nothing."""
  config, points, workdir, rows = swept
  results = tmp_path / 'results'
  # Point 0's result is committed (copied from the finished sweep); point 1 trains.
  (results / 'seed=0').mkdir(parents=True)
  for f in (sweep.RESULT, 'metrics.jsonl', 'dataset.json'):
    (results / 'seed=0' / f).write_bytes((workdir / 'seed=0' / f).read_bytes())
  trained = []
  real = train.train_and_evaluate
  monkeypatch.setattr(train, 'train_and_evaluate',
                      lambda c, w: trained.append(Path(w).name) or real(c, w))
  new_rows = sweep.run_sweep(config, points, tmp_path / 'fresh', results)
  assert trained == ['seed=1']
  assert [r['test_accuracy'] for r in new_rows] == [r['test_accuracy'] for r in rows]
  for name in ('seed=0', 'seed=1'):
    assert (results / name / sweep.RESULT).exists()
    assert (results / name / 'metrics.jsonl').exists()
    assert sweep_report.val_curve(results / name) is not None  # dataset.json came too.
    assert not (tmp_path / 'fresh' / name / sweep.RESULT).exists()
  assert (results / 'results.md').exists() and (results / 'results.png').exists()
  assert not (tmp_path / 'fresh' / 'results.md').exists()


def test_reuse_copies_a_finished_point_with_the_same_config(swept, tmp_path,
                                                           monkeypatch):
  """--reuse: another sweep's default point is not trained a second time."""
  config, _, workdir, rows = swept
  monkeypatch.setattr(train, 'train_and_evaluate',
                      lambda *a: pytest.fail(f'trained {a}'))
  results = tmp_path / 'results'
  # The same config as the swept seed=0 point, named by another override.
  point = {'num_train_steps': 10, 'seed': 0}
  [row] = sweep.run_sweep(config, [point], tmp_path / 'w', results, reuse=[workdir])
  assert row['name'] == 'num_train_steps=10,seed=0' and row['overrides'] == point
  assert row['reused_from'] == f'{workdir.name}/seed=0'
  assert row['test_accuracy'] == rows[0]['test_accuracy']
  copied = results / row['name']
  assert (copied / 'metrics.jsonl').read_bytes() == (
      workdir / 'seed=0' / 'metrics.jsonl').read_bytes()
  assert json.loads((copied / sweep.RESULT).read_text())['reused_from'] == row['reused_from']
  # Another value, or the same config on another device count, is not the same run.
  same = json.loads((workdir / 'seed=0' / sweep.RESULT).read_text())['config']
  assert sweep.find_same_run(same, [workdir]) == workdir / 'seed=0'
  assert sweep.find_same_run({**same, 'seed': 5}, [workdir]) is None
  monkeypatch.setattr(sweep.jax, 'device_count', lambda: 99)
  assert sweep.find_same_run(same, [workdir]) is None


def test_seeds_trains_only_those_seeds_and_tables_keep_finished_points(
    swept, tmp_path, monkeypatch):
  """--seeds=1: seed 0's finished point stays in the table, seed 2 waits."""
  config, _, workdir, rows = swept
  results = tmp_path / 'results'
  shutil.copytree(workdir / 'seed=0', results / 'seed=0')
  trained = []
  monkeypatch.setattr(train, 'train_and_evaluate',
                      lambda c, w: trained.append(Path(w).name) or pytest.fail(f'trained {w}'))
  points = [{'seed': 0}, {'seed': 1}, {'seed': 2}]
  new_rows = sweep.run_sweep(config, points, tmp_path / 'w', results, seeds=[0])
  assert trained == [] and [r['name'] for r in new_rows] == ['seed=0']
  assert new_rows[0]['test_accuracy'] == rows[0]['test_accuracy']
  assert 'seed=2' not in (results / 'results.md').read_text()
  with pytest.raises(pytest.fail.Exception, match='seed=1'):
    sweep.run_sweep(config, points, tmp_path / 'w', results, seeds=[1])
  assert trained == ['seed=1']
  assert sweep._int_list(['0', '2'], '--seeds') == [0, 2]
  with pytest.raises(InputError, match='--seeds=a: give integers'):
    sweep._int_list(['a'], '--seeds')


def test_bad_key_is_refused_before_training(monkeypatch):
  monkeypatch.setattr(train, 'train_and_evaluate', lambda *a: pytest.fail('trained'))
  config = smoke_config(Path('unused'), Path('unused'))
  with pytest.raises(InputError, match=r"sweep point 1 .*'model.activaton'.*"
                                       r"did you mean 'model.activation'"):
    sweep.run_sweep(config, [{'seed': 0}, {'model.activaton': 'swish'}], 'unused')
  with pytest.raises(InputError, match='same overrides'):
    sweep.run_sweep(config, [{'seed': 0, 'model.dropout': 0.1},
                             {'model.dropout': 0.1, 'seed': 0}], 'unused')


def test_failed_points_are_recorded_and_retried(tmp_path, monkeypatch):
  def diverge(config, workdir):
    raise InputError(f'training diverged: loss is nan (seed {config.seed})')

  monkeypatch.setattr(train, 'train_and_evaluate', diverge)
  config = smoke_config(Path('unused'), Path('unused'))
  with pytest.raises(InputError, match=r'2 of 2 sweep points failed.*seed 0.*seed 1'):
    sweep.run_sweep(config, [{'seed': 0}, {'seed': 1}], tmp_path)
  assert 'failed: training diverged' in (tmp_path / 'results.md').read_text()
  assert not list(tmp_path.glob(f'*/{sweep.RESULT}'))  # A rerun tries them again.


def test_cli_bad_key_is_one_line(tmp_path):
  sweep_file = tmp_path / 'bad.py'
  sweep_file.write_text("def get_sweep():\n"
                        "  return [{'seed': 0}, {'optimizer.learning_rat': 0.1}]\n")
  proc = subprocess.run(
      [sys.executable, '-m', 'isovolnet_jax.tools.sweep', '--config=configs/smoke.py',
       f'--sweep={sweep_file}', f'--workdir={tmp_path / "w"}'],
      capture_output=True, text=True, cwd=ROOT, timeout=300,
      env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
  assert proc.returncode != 0
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1, proc.stderr
  assert 'sweep point 1' in errors[0] and "'optimizer.learning_rat'" in errors[0]
  assert 'Traceback' not in proc.stderr
  assert not (tmp_path / 'w').exists()


def test_point_names_are_the_varied_keys_with_seed_last():
  assert sweep.point_names([{}]) == ['base']
  # A key that is the same in every point says nothing; a leaf name is enough.
  points = [{'seed': 1, 'model.activation': 'swish', 'optimizer.weight_decay': 5e-4},
            {'model.activation': 'relu', 'optimizer.weight_decay': 5e-4, 'seed': 0}]
  assert sweep.point_names(points) == ['activation=swish,seed=1', 'activation=relu,seed=0']
  assert sweep.point_names([dict(reversed(p.items())) for p in points]) == (
      sweep.point_names(points))  # Key order does not matter.
  assert sweep.point_names([{'optimizer.learning_rate': 2e-3}]) == ['learning_rate=0.002']
  # Two varied keys with one leaf keep their full names; a config, its file's stem.
  assert sweep.point_names([{'model.name': 'a', 'optimizer.name': 'b', 'seed': 0},
                            {'config': 'configs/cifar10_fast_cpu.py', 'seed': 0}]) == [
      'model.name=a,optimizer.name=b,seed=0', 'config=cifar10_fast_cpu,seed=0']
  # A `name` labels a point (e.g. one whose steps are computed from a budget).
  assert sweep.point_names([{'name': 'iso4', 'num_train_steps': 3133, 'seed': 2},
                            {'name': 'iso4_x3', 'num_train_steps': 9399, 'seed': 0}]) == [
      'iso4,seed=2', 'iso4_x3,seed=0']
  assert '/' not in sweep.point_names([{'data.path': '/a/b c'}])[0]
  config = smoke_config(Path('unused'), Path('unused'))
  with pytest.raises(InputError, match=r"sweep point 0: .* has 87 characters .*give it a "
                                       r"short 'name'"):
    sweep.point_configs(config, [{'model.dropout': 0.1, 'seed': 0, 'model.stem_features': 8,
                                  'optimizer.learning_rate': 0.0123456789,
                                  'optimizer.weight_decay': 0.0123456789}])
  [labelled] = sweep.point_configs(config, [{'name': 'x', 'model.dropout': 0.1}])
  assert labelled.model.dropout == 0.1  # `name` is a label, not a config key.


def test_committed_results_travel():
  """tools.rewrite_results ran: every sweep's result folder is named as its
  sweep file names it (<= 80 characters) and no result names an absolute path."""
  for sweep_file in sorted(SWEEPS.glob('*.py')):
    names = sweep.point_names(sweep.load_sweep(sweep_file))
    assert max(map(len, names)) <= sweep.MAX_NAME, sweep_file.name
    folder = ROOT / 'results' / sweep_file.stem
    for result in folder.glob(f'*/{sweep.RESULT}'):
      assert result.parent.name in names, result
      row = json.loads(result.read_text())
      assert row['name'] == result.parent.name
      if row.get('reused_from'):
        assert (ROOT / 'results' / row['reused_from'] / sweep.RESULT).exists(), result
  for result in (ROOT / 'results').rglob(sweep.RESULT):
    data = json.loads(result.read_text()).get('config', {}).get('data', {})
    assert not data.get('path', '').startswith('/') and not data.get('cache_dir'), result


def test_a_data_folder_is_one_point_whatever_path_names_it(swept, tmp_path, monkeypatch):
  """A result stored with the data folder's absolute path and one with its path
  relative to the repository are the same run, for --reuse and for the skip;
  another data folder is not."""
  config, _, workdir, rows = swept
  data = Path(config.data.path)
  repo = data.parent / 'checkout'  # The data lies beside this "repository".
  repo.mkdir(exist_ok=True)
  monkeypatch.setattr(sweep, 'REPO_ROOT', repo)
  monkeypatch.chdir(repo)  # Relative paths are read from here, as training reads them.
  relative = f'../{data.name}'
  assert sweep.data_ref(str(data)) == relative == sweep.data_ref(f'./{relative}/')
  assert sweep.data_ref(str(repo / 'd')) == 'd' and sweep.data_ref('/elsewhere/d') == '/elsewhere/d'
  assert sweep.data_ref('gs://bucket/tfds') == 'gs://bucket/tfds'
  stored = json.loads((workdir / 'seed=0' / sweep.RESULT).read_text())['config']
  assert stored['data']['path'] == str(data)  # Written outside this repository: absolute.
  rel_config = config.copy_and_resolve_references()
  rel_config.data.path = relative
  rel_dict = json.loads(rel_config.to_json_best_effort())
  assert sweep.same_config(stored, rel_dict)
  assert sweep.portable_config(stored)['data']['path'] == relative
  monkeypatch.setattr(train, 'train_and_evaluate', lambda *a: pytest.fail(f'trained {a}'))
  # --reuse: the absolute-path result serves the relative-path point.
  [row] = sweep.run_sweep(rel_config, [{'seed': 0}], tmp_path / 'w', tmp_path / 'r',
                          reuse=[workdir])
  assert row['reused_from'] == f'{workdir.name}/seed=0'
  assert row['test_accuracy'] == rows[0]['test_accuracy']
  copied = json.loads((tmp_path / 'r' / 'seed=0' / sweep.RESULT).read_text())
  assert copied['config']['data']['path'] == relative  # Stored as it travels.
  # The skip: a committed result under another folder name (an older naming)
  # with the relative path is this absolute-path point's, done.
  (tmp_path / 'r' / 'seed=0').rename(tmp_path / 'r' / 'old_name')
  [row] = sweep.run_sweep(config, [{'seed': 0}], tmp_path / 'w2', tmp_path / 'r')
  assert row['name'] == 'seed=0' and row['test_accuracy'] == rows[0]['test_accuracy']
  # Another dataset is another point: not reused, not skipped.
  other = data.parent / 'other_dataset'
  other_dict = {**stored, 'data': {**stored['data'], 'path': str(other)}}
  assert not sweep.same_config(stored, other_dict)
  assert sweep.find_same_run(other_dict, [workdir, tmp_path / 'r'], any_devices=True) is None
  other_config = config.copy_and_resolve_references()
  other_config.data.path = str(other)
  with pytest.raises(pytest.fail.Exception, match='trained'):
    sweep.run_sweep(other_config, [{'seed': 0}], tmp_path / 'w3', tmp_path / 'r3',
                    reuse=[workdir, tmp_path / 'r'])


@pytest.mark.parametrize('name', sorted(p.name for p in SWEEPS.glob('*.py')))
def test_sweep_files_apply_to_cifar10(name):
  module = config_defaults.load_module(ROOT / 'configs' / 'cifar10.py')
  points = sweep.load_sweep(SWEEPS / name)
  configs = sweep.point_configs(module.get_config(), points)
  # At least two values compared over exactly seeds 0, 1 and 2 (and extra
  # single-seed points, e.g. a longer budget, only from those seeds).
  by_value = {}
  for point in points:
    value = tuple(sorted((k, repr(v)) for k, v in point.items() if k != 'seed'))
    by_value.setdefault(value, []).append(point['seed'])
  assert sum(sorted(seeds) == [0, 1, 2] for seeds in by_value.values()) >= 2
  assert all(set(seeds) <= {0, 1, 2} and len(set(seeds)) == len(seeds)
             for seeds in by_value.values())
  assert sorted({c.seed for c in configs}) == [0, 1, 2]


@pytest.mark.long
def test_cli_sweep_uses_several_cpu_devices_and_per_point_config_files(
    small_cifar, tmp_path):
  """--cpu_devices splits each point's batch (main.py's set-up), and a point's
  `config` file replaces --config with the command line's overrides kept."""
  sweep_file = tmp_path / 'two_models.py'
  sweep_file.write_text(
      "def get_sweep():\n"
      "  return [{'seed': 0},\n"
      "          {'config': 'configs/cifar10_fast_cpu.py', 'model.widths': (4, 4, 4, 4, 4, 4, 4)}]\n")
  data = [f'--config.data.source=folder', f'--config.data.path={small_cifar}',
          f'--config.data.cache_dir={tmp_path / "cache"}', '--config.num_train_steps=2',
          '--config.batch_size=16', '--config.eval_batch_size=16']
  proc = subprocess.run(
      [sys.executable, '-m', 'isovolnet_jax.tools.sweep', '--config=configs/smoke.py',
       f'--sweep={sweep_file}', f'--workdir={tmp_path / "w"}',
       f'--results={tmp_path / "r"}', '--cpu_devices=2', *data],
      capture_output=True, text=True, cwd=ROOT, timeout=600,
      env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stderr.count("Mesh {'data': 2}") == 2, proc.stderr[-3000:]
  results = {p.parent.name: json.loads(p.read_text())
             for p in (tmp_path / 'r').glob(f'*/{sweep.RESULT}')}
  assert len(results) == 2
  fast = next(r for n, r in results.items() if n.startswith('config='))
  assert fast['config']['model']['name'] == 'fast_cnn'
  assert fast['config']['batch_size'] == 16 and fast['step'] == 2  # Overrides kept.
  assert results['seed=0']['config']['model']['name'] == 'isovolnet'


def test_same_config_reads_an_old_result_with_eval_flip():
  """--reuse: a result.json from before eval_flip was retired is the same run
  as today's config with the eval_tta it means."""
  from isovolnet_jax import config_defaults as defaults
  new = json.loads(defaults.get_base_config().to_json())
  old = {**new, 'eval_flip': False}
  assert sweep.same_config(old, new)
  old_flip = {**new, 'eval_flip': True}
  assert not sweep.same_config(old_flip, new)
  assert sweep.same_config(old_flip, {**new, 'eval_tta': 'flip'})
