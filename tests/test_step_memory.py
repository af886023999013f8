"""bench.step_memory: a training step's peak memory, JAX against PyTorch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from isovolnet_jax.bench import step_memory

from helpers import require, require_torch

ROOT = Path(__file__).resolve().parents[1]


def _linux():
  require(os.path.exists('/proc/self/clear_refs'),
          'no /proc/self/clear_refs (not Linux): step_memory resets the peak RSS there')


def test_step_peak_sees_a_transient_allocation():
  _linux()
  def allocate():
    a = np.ones(300 * 2**20 // 8)  # 300 MiB, touched, then freed.
    del a
  _, peak = step_memory.step_peak_mib(allocate, 1)
  assert 280 < peak < 340


def test_step_peak_forgets_what_ran_before():
  _linux()
  big = np.ones(400 * 2**20 // 8)  # A high peak before the measured steps.
  del big
  _, peak = step_memory.step_peak_mib(lambda: None, 3)
  assert peak < 30


def _measure(batch):
  out = subprocess.run(
      [sys.executable, '-m', 'isovolnet_jax.bench.step_memory',
       '--config=configs/cifar10_fast_cpu.py', f'--config.batch_size={batch}', '--steps=1',
       '--json'], cwd=ROOT, capture_output=True, text=True, check=True)
  return out.stdout, json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.long
def test_both_frameworks_measured_and_memory_grows_with_the_batch():
  _linux()
  require_torch()
  table, small = _measure(8)
  _, large = _measure(128)
  assert 'JAX / PyTorch' in table
  assert small['jax']['params'] == small['torch']['params'] > 0
  for fw in ('jax', 'torch'):
    # FastCNN's layer outputs grow by ~1.5 MiB per image: 120 more images.
    assert large[fw]['step_mib'] - small[fw]['step_mib'] > 60, (fw, small, large)
  assert large['ratio'] == large['jax']['step_mib'] / large['torch']['step_mib']
  assert large['layer_outputs_mib'] == 16 * small['layer_outputs_mib']
  assert large['jax']['xla_temp_mib'] > small['jax']['xla_temp_mib'] > 0
