"""Helpers shared by the tests: configs, running the main job, reading metrics."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from isovolnet_jax import config_defaults

ROOT = Path(__file__).resolve().parents[1]
# `.ci/run` (and most CI services) set CI=true: there a missing prerequisite
# fails the test instead of skipping it, so a green CI proves every test.
IN_CI = os.environ.get('CI', '').lower() in ('true', '1', 'yes')


def require(ok: bool, what: str):
  """Nothing if `ok`; otherwise a skip saying what was skipped, or under
  CI=true a one-line failure."""
  if ok:
    return
  if IN_CI:
    pytest.fail(f'CI=true, so not skipped: {what}', pytrace=False)
  pytest.skip(what, allow_module_level=True)


def require_torch():
  """The torch module; without it a skip (a failure under CI=true)."""
  try:
    import torch
  except ImportError as e:
    require(False, f"torch is not installed ({e}; pip install -e '.[bench]'): "
                   f"this test runs PyTorch")
  return torch


def load_config_file(name: str):
  return config_defaults.load_config_file(ROOT / 'configs' / f'{name}.py')


def smoke_config(data_path, cache_dir, **overrides):
  """configs/smoke.py on an image folder, with dotted-key overrides."""
  return config_defaults.apply_overrides(load_config_file('smoke'), {
      'data.source': 'folder', 'data.path': str(data_path),
      'data.cache_dir': str(cache_dir), **overrides})


def run_main(workdir, *flags, env=None, data_path=None, cache_dir=None):
  """`python -m isovolnet_jax.main` in a subprocess; returns CompletedProcess."""
  args = [sys.executable, '-m', 'isovolnet_jax.main', '--config=configs/smoke.py',
          f'--workdir={workdir}']
  if data_path:
    args += ['--config.data.source=folder', f'--config.data.path={data_path}',
             f'--config.data.cache_dir={cache_dir}']
  return subprocess.run(args + list(flags), cwd=ROOT, capture_output=True, text=True,
                        env={**os.environ, **(env or {})}, timeout=600)


def metrics(workdir, split=None):
  rows = [json.loads(l) for l in Path(workdir, 'metrics.jsonl').read_text().splitlines()]
  return [r for r in rows if split is None or r['split'] == split]


def last_line(text):
  return [l for l in text.strip().splitlines() if l.strip()][-1]
