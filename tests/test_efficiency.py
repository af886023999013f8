"""The efficiency report: both variants measured, md + csv + png written."""

import csv
import subprocess
import sys

from helpers import ROOT


def test_report_compares_separable_with_standard(tmp_path):
  out = subprocess.run(
      [sys.executable, '-m', 'isovolnet_jax.efficiency', '--config=configs/smoke.py',
       f'--out={tmp_path}', '--batch_size=8', '--steps=2'],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  rows = list(csv.DictReader(open(tmp_path / 'efficiency.csv')))
  assert [r['conv'] for r in rows] == ['separable', 'standard']
  sep, std = rows
  # configs/smoke.py: 3 blocks from 3 channels. Separable: dw 9C + pw 4C^2,
  # standard: 9 * C * 4C per block; BN and the classifier are shared.
  assert int(sep['params']) == 12_955
  assert int(std['params']) > 3 * int(sep['params'])
  assert int(std['flops_analytic']) > int(sep['flops_analytic']) > 0
  for r in rows:
    assert int(r['flops_xla']) > 0
    assert float(r['train_img_s']) > 0 and float(r['infer_img_s']) > 0
    assert float(r['latency_ms_b1']) > 0 and float(r['train_step_peak_mib']) > 0
  assert (tmp_path / 'efficiency.png').stat().st_size > 0
  assert 'standard / separable' in (tmp_path / 'efficiency.md').read_text()


def test_model_without_twin_is_refused(tmp_path):
  out = subprocess.run(
      [sys.executable, '-m', 'isovolnet_jax.efficiency',
       '--config=configs/cifar10_resnet20.py', f'--out={tmp_path}'],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert out.returncode != 0 and 'no standard-conv twin' in out.stderr
