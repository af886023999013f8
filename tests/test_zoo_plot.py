"""zoo_plot: the zoo's table and Pareto plot from committed result files."""

import json
from pathlib import Path

import pytest

from isovolnet_jax.tools import zoo_plot
from isovolnet_jax.errors import InputError


def _run(root: Path, name: str, seed: int, steps: int, acc: float, params: int,
         batch: int = 100, num_train: int | None = 1000):
  d = root / 'res' / f'{name},num_train_steps={steps},seed={seed}'
  d.mkdir(parents=True)
  (d / 'result.json').write_text(json.dumps({
      'name': d.name, 'overrides': {'x': name, 'num_train_steps': steps, 'seed': seed},
      'test_accuracy': acc, 'test_loss': 1.0, 'val_accuracy': None, 'val_loss': None,
      'params': params, 'step': steps, 'train_time_s': 1.0,
      'config': {'batch_size': batch, 'data': {'val_size': 5000}}}))
  if num_train:
    (d / 'dataset.json').write_text(json.dumps({'num_train': num_train}))


@pytest.fixture
def zoo(tmp_path):
  _run(tmp_path, 'a', 0, 10, 0.50, 1000)
  _run(tmp_path, 'a', 1, 10, 0.60, 1000)
  _run(tmp_path, 'a', 0, 30, 0.70, 1000)
  _run(tmp_path, 'b', 0, 20, 0.65, 5000, batch=50, num_train=None)
  (tmp_path / 'a.txt').write_text('table\n{"jax_train_img_s": 50.0}\nrc 0\n')
  (tmp_path / 'eff.csv').write_text('model,conv,train_img_s\nm,separable,25.0\nm,standard,10.0\n')
  return tmp_path, (
      zoo_plot.Model('A', 'res/a,*', 'a.txt'),
      zoo_plot.Model('B', 'res/b,*', 'eff.csv#standard', trained_on='H200'),
      zoo_plot.Model('C', 'res/c,*', 'a.txt'))


def test_rows_group_seeds_per_budget_and_time_from_measured_speed(zoo):
  root, models = zoo
  rows = zoo_plot.make(root / 'out', root, models)
  assert [(r['model'], r['steps'], r['n']) for r in rows] == [
      ('A', 10, 2), ('A', 30, 1), ('B', 20, 1)]
  a10, a30, b = rows
  assert a10['test_accuracy'] == pytest.approx(0.55)
  assert a10['test_accuracy_std'] == pytest.approx(0.0707107, rel=1e-5)  # ddof=1
  assert a10['cpu_train_s'] == pytest.approx(10 * 100 / 50.0)
  assert a30['epochs'] == pytest.approx(30 * 100 / 1000)  # dataset.json's num_train
  assert b['cpu_train_s'] == pytest.approx(20 * 50 / 10.0)  # efficiency.csv's standard row
  assert b['epochs'] == pytest.approx(20 * 50 / 45_000)  # no dataset.json: 50k - val
  md = (root / 'out' / 'zoo.md').read_text()
  assert '| A | CPU | 1,000 | 1.0 | 20 | 55.00 ± 7.07 | 2 |' in md
  assert '**70.00**' in md  # A's best budget is bold.
  assert 'No results yet: C (`res/c,*`)' in md
  assert (root / 'out' / 'zoo.png').stat().st_size > 10_000
  assert len((root / 'out' / 'zoo.csv').read_text().splitlines()) == 4


def test_pareto_front():
  # (cost, accuracy): the second is dominated by the first, the third by the fourth
  # (same cost, more accurate).
  points = [(1, 0.5), (2, 0.4), (3, 0.6), (3, 0.7), (4, 0.9)]
  assert zoo_plot.pareto(points) == [0, 3, 4]


def test_missing_speed_file_is_a_clear_error(zoo):
  root, models = zoo
  with pytest.raises(InputError, match='no such speed file'):
    zoo_plot.make(root / 'out', root, (zoo_plot.Model('A', 'res/a,*', 'nope.txt'),))


def test_zoo_entries_point_at_committed_files():
  # Every speed file the real ZOO names is in the repo, so the command runs on a clone.
  root = Path(__file__).resolve().parents[1]
  for model in zoo_plot.ZOO:
    assert zoo_plot.cpu_train_img_s(root / model.speed) > 0, model.label
