"""bench/torch_airbench.py: the PyTorch reference of airbench94 runs on an
image folder, and its lookahead is airbench's (every float tensor of the
state_dict, BatchNorm statistics included)."""

import json
import os
import subprocess
import sys
from pathlib import Path


from helpers import require_torch

ROOT = Path(__file__).resolve().parents[1]


def test_lookahead_moves_every_float_tensor_to_the_slow_copy_and_back():
  torch = require_torch()
  from isovolnet_jax.bench import torch_airbench
  net = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 1), torch.nn.BatchNorm2d(2))
  slow = {k: v.clone() for k, v in net.state_dict().items()}
  with torch.no_grad():
    for v in net.state_dict().values():
      if v.dtype == torch.float:
        v.add_(1.0)
  before = {k: v.clone() for k, v in net.state_dict().items()}
  torch_airbench._lookahead(torch, net, slow, 0.75)
  for k, v in net.state_dict().items():
    if v.dtype == torch.float:  # Weights, bias, running mean and variance.
      expected = 0.75 * (before[k] - 1.0) + 0.25 * before[k]
      torch.testing.assert_close(v, expected)
      torch.testing.assert_close(slow[k], expected)
    else:  # num_batches_tracked stays.
      assert torch.equal(v, before[k])


def test_reference_run_trains_and_reports(small_cifar, cache_dir):
  require_torch()
  out = subprocess.run(
      [sys.executable, '-m', 'isovolnet_jax.bench.torch_airbench', f'--data={small_cifar}',
       '--batch_size=100', '--epochs=2', '--whiten_images=200', '--threads=2', '--json'],
      capture_output=True, text=True, cwd=ROOT, timeout=600,
      env={**os.environ, 'XDG_CACHE_HOME': str(cache_dir)})
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result['steps'] == 12 and len(result['curve']) == 2
  # 200 test images, 10 classes: 2 epochs of 600 images beat chance (10%).
  assert result['tta_accuracy'] > 0.2, result
  assert '6-view test accuracy' in out.stdout
