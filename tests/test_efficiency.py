"""The efficiency report: both variants measured, md + csv + png written."""

import csv
import subprocess
import sys

import pytest

from helpers import ROOT


def smoke_counts(separable: bool) -> tuple[int, int]:
  """Params and FLOPs per image of configs/smoke.py by hand: 3 blocks from
  32x32x3, each widening C -> 4C and halving H, W; a multiply-add is 2 FLOPs
  (BN, ReLU and pooling not counted); each BN has a scale and a bias per
  channel; then a 10-way classifier with bias."""
  params = flops = 0
  h, c = 32, 3
  for _ in range(3):
    if separable:  # Depthwise 3x3 + BN(C), pointwise 1x1 C -> 4C + BN(4C).
      params += 9 * c + 2 * c + 4 * c * c + 2 * 4 * c
      flops += 2 * 9 * h * h * c + 2 * h * h * c * 4 * c
    else:  # One 3x3 conv C -> 4C + BN(4C).
      params += 9 * c * 4 * c + 2 * 4 * c
      flops += 2 * 9 * h * h * c * 4 * c
    h, c = h // 2, 4 * c
  return params + c * 10 + 10, flops + 2 * c * 10 + 10


@pytest.mark.long
def test_report_compares_separable_with_standard(tmp_path):
  batch = 8
  out = subprocess.run(
      [sys.executable, '-m', 'isovolnet_jax.bench.efficiency', '--config=configs/smoke.py',
       f'--out={tmp_path}', f'--batch_size={batch}', '--steps=3'],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  rows = list(csv.DictReader(open(tmp_path / 'efficiency.csv')))
  assert [r['conv'] for r in rows] == ['separable', 'standard']
  for r in rows:
    params, flops = smoke_counts(r['conv'] == 'separable')
    assert (int(r['params']), int(r['flops_analytic'])) == (params, flops), r['conv']
    # XLA counts the same convs of one image, plus BN, ReLU and pooling
    # (measured: 1.12x and 0.87x); a batch or another program would be far off.
    assert 0.5 < int(r['flops_xla']) / flops < 2, r
    # The train step holds at least params + adamw's two moments (float32)
    # and the uint8 batch; the process holds more than the step.
    assert float(r['train_step_peak_mib']) * 2**20 >= 3 * 4 * params + batch * 32 * 32 * 3
    assert float(r['rss_peak_mib']) > float(r['train_step_peak_mib'])
    # A training step (forward, backward, update) is slower than inference
    # on the same batch, and one image is faster than a batch of 8.
    assert float(r['infer_img_s']) > float(r['train_img_s']) > 0, r
    assert 0 < float(r['latency_ms_b1']) < 1000 * batch / float(r['infer_img_s']), r
  assert smoke_counts(True)[0] == 12_955
  assert (tmp_path / 'efficiency.png').stat().st_size > 0
  sep, std = ({k: float(v) for k, v in r.items() if k not in ('model', 'conv')}
              for r in rows)
  assert (f'standard / separable: params x{std["params"] / sep["params"]:.1f}, '
          f'FLOPs x{std["flops_analytic"] / sep["flops_analytic"]:.1f}, '
          f'training throughput x{std["train_img_s"] / sep["train_img_s"]:.2f}, '
          f'batch-1 latency x{std["latency_ms_b1"] / sep["latency_ms_b1"]:.2f}'
          ) in (tmp_path / 'efficiency.md').read_text()


def test_model_without_twin_is_refused(tmp_path):
  out = subprocess.run(
      [sys.executable, '-m', 'isovolnet_jax.bench.efficiency',
       '--config=configs/cifar10_resnet20.py', f'--out={tmp_path}'],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert out.returncode != 0 and 'no standard-conv twin' in out.stderr
