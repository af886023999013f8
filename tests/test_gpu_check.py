"""bench.gpu_check: refuses a CPU-only machine in one line; with --allow_cpu
and a few steps it runs every part on a CPU and writes its JSON."""

import json
import subprocess
import sys

import pytest

from isovolnet_jax.bench import gpu_check

from helpers import ROOT


def _run(*args, timeout=1200):
  return subprocess.run([sys.executable, '-m', 'isovolnet_jax.bench.gpu_check', *args],
                        cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_refuses_without_an_accelerator(tmp_path):
  proc = _run(f'--results={tmp_path}')
  assert proc.returncode == 2
  lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith(('I', 'W'))]
  assert lines == [l for l in lines if l.startswith('error: no GPU or TPU here')] and lines
  assert not list(tmp_path.iterdir())


def test_refusal_rules():
  cpu = {'platform': 'cpu', 'device_kind': 'cpu', 'device_count': 1}
  gpu = {'platform': 'gpu', 'device_kind': 'NVIDIA H200', 'device_count': 1}
  assert gpu_check.refusal(gpu, False, 0) is None
  assert 'no GPU or TPU' in gpu_check.refusal(cpu, False, 4)
  assert '--steps between 1 and' in gpu_check.refusal(cpu, True, 0)
  assert gpu_check.refusal(cpu, True, 4) is None
  assert gpu_check.slug('NVIDIA H200') == 'nvidia_h200'


@pytest.mark.long
def test_allow_cpu_runs_every_part_and_writes_the_json(small_cifar, cache_dir, tmp_path):
  results = tmp_path / 'results'
  proc = _run(f'--results={results}', '--allow_cpu', '--steps=4', f'--data={small_cifar}',
              '--train_configs=configs/cifar10_airbench94.py,configs/absent_muon.py',
              '--bench_configs=configs/smoke.py', '--skip_torch',
              '--config.batch_size=16', '--config.eval_batch_size=100',
              f'--config.data.cache_dir={cache_dir}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'configs/absent_muon.py: skipped: the file is absent' in proc.stdout
  [path] = results.glob('*.json')
  assert path.name.startswith('cpu-') and path.with_suffix('.txt').is_file()
  r = json.loads(path.read_text())
  assert r['device']['platform'] == 'cpu' and r['steps'] == 4
  assert r['train']['configs/absent_muon.py'] == {'skipped': 'absent'}
  air = r['train']['configs/cifar10_airbench94.py']
  assert air['cold']['train_step_cache'] == 'miss'
  for run in (air['cold'], air['warm']):
    assert run['steps'] == 4 and 0 <= run['test_accuracy'] <= 1
    assert run['launch_to_exit_seconds'] > run['train_seconds'] > 0
  assert air['loop_step_ratio'] > 0 and air['full_run_loop_step_ratio'] > 0
  bench = r['benchmark']['configs/smoke.py']
  assert bench['jax_train_img_s'] > 0 and bench['loop']['ratio'] > 0
  assert bench['platform'] == 'cpu' and 'matmul_flops' in bench
  assert 'loop/step' in proc.stdout and 'JAX on' in proc.stdout
