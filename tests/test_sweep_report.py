"""sweep_report: a sweep's tables and plots from its points' rows and files,
without training (tests/test_sweep.py checks them on a real sweep)."""

import csv
import json

import numpy as np
import pytest

from isovolnet_jax.tools import sweep_report


def point(root, activation, seed, test_acc, val=(0.3, 0.5)):
  """A finished point's folder (metrics.jsonl, dataset.json, result.json) and row."""
  name = f'activation={activation},seed={seed}'
  d = root / name
  d.mkdir(parents=True)
  (d / 'dataset.json').write_text(json.dumps({'num_train': 500}))
  (d / 'metrics.jsonl').write_text(''.join(
      json.dumps({'step': 10 * (i + 1), 'split': 'val', 'accuracy': a, 'loss': 1.0}) + '\n'
      for i, a in enumerate(val)))
  row = {'name': name, 'overrides': {'model.activation': activation, 'seed': seed},
         'val_accuracy': val[-1], 'test_accuracy': test_acc, 'val_loss': 1.0,
         'test_loss': 1.0, 'params': 1000, 'train_time_s': 2.0, 'step': 20}
  (d / 'result.json').write_text(json.dumps({**row, 'config': {'batch_size': 50}}))
  return row


def test_tables_and_plots_group_the_seeds(tmp_path):
  rows = [point(tmp_path, 'relu', 0, 0.5), point(tmp_path, 'relu', 1, 0.7),
          point(tmp_path, 'swish', 0, 0.6)]
  sweep_report.write_results(tmp_path, rows)
  with (tmp_path / 'results.csv').open() as f:
    assert [r['name'] for r in csv.DictReader(f)] == [r['name'] for r in rows]
  with (tmp_path / 'results_grouped.csv').open() as f:
    groups = {g['name']: g for g in csv.DictReader(f)}
  assert set(groups) == {'activation=relu', 'activation=swish'}
  relu = groups['activation=relu']
  assert relu['n'] == '2' and float(relu['test_accuracy']) == pytest.approx(0.6)
  # Sample std (ddof=1) over the seeds; 0 for a single seed.
  assert float(relu['test_accuracy_std']) == pytest.approx(np.std([0.5, 0.7], ddof=1))
  assert float(groups['activation=swish']['test_accuracy_std']) == 0.0
  assert '0.6000 ± 0.1414' in (tmp_path / 'results.md').read_text()
  for png in ('results.png', 'results_curves.png'):
    assert (tmp_path / png).stat().st_size > 0


def test_val_curve_in_epochs_and_none_without_files(tmp_path):
  point(tmp_path, 'relu', 0, 0.5, val=(0.2, 0.4))
  epochs, accuracy = sweep_report.val_curve(tmp_path / 'activation=relu,seed=0')
  assert epochs.tolist() == [1.0, 2.0]  # Steps 10, 20 of batch 50 over 500 images.
  assert accuracy.tolist() == [0.2, 0.4]
  assert sweep_report.val_curve(tmp_path / 'missing') is None


def test_group_name_is_the_point_name_without_its_seed():
  assert sweep_report.group_name('iso4,seed=2') == 'iso4'
  assert sweep_report.group_name('seed=0') == 'base'
