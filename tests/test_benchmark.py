"""The JAX-vs-PyTorch benchmark."""

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from isovolnet_jax.bench import benchmark
from isovolnet_jax.bench import time_to_accuracy
from isovolnet_jax import config_defaults
from isovolnet_jax import cpu_devices

from helpers import metrics, require, require_torch

ROOT = Path(__file__).resolve().parents[1]


def test_cpu_peak_is_computed_from_cpuinfo():
  require(os.path.exists('/proc/cpuinfo'),
          'no /proc/cpuinfo (not Linux): this test reads the CPU model from it')
  peak, how = benchmark.cpu_peak_flops(2)
  assert peak > 1e9 and '2 cores x' in how and 'FLOPs/cycle' in how


def _tiny_config(**overrides):
  config = config_defaults.get_base_config()
  config.model.name = 'fast_cnn'
  config.model.widths = (8, 8, 16)
  config.model.pool_after = (0, 1)
  config.batch_size = 4
  config.update(overrides)
  return config


ARGS = types.SimpleNamespace(steps=1, warmup=1, repeats=1, threads=1,
                             torch_variants=['nchw', 'channels_last'], jax_variants=[],
                             skip_torch=False)


def test_benchmark_json_has_the_figures_and_equal_params(tmp_path):
  require_torch()
  config = tmp_path / 'tiny.py'
  config.write_text(
      'from isovolnet_jax import config_defaults\n'
      'def get_config():\n'
      '  c = config_defaults.get_base_config()\n'
      "  c.model.update(name='fast_cnn', widths=(8, 8, 16), pool_after=(0, 1))\n"
      '  c.batch_size = 4\n'
      '  return c\n')
  out = subprocess.run(
      [sys.executable, '-m', 'isovolnet_jax.bench.benchmark', f'--config={config}', '--json',
       '--steps=2', '--warmup=1', '--repeats=1', '--torch_variants=nchw,channels_last'],
      capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  for key in ('jax_train_img_s', 'torch_train_img_s', 'jax_infer_img_s',
              'torch_infer_img_s'):
    assert result[key] > 0, key
  assert result['jax_devices'] == cpu_devices.device_count_for(4, cpu_devices.physical_cores())
  assert set(result['torch_variants']) == {'nchw', 'channels_last'}
  assert all(v['params'] == result['params'] for v in result['torch_variants'].values())
  assert result['train_ratio'] == pytest.approx(
      result['jax_train_img_s'] / result['torch_train_img_s'])
  assert 'JAX / best PyTorch: train' in out.stdout


def test_benchmark_refuses_a_twin_with_other_parameter_counts(monkeypatch):
  require_torch()
  from isovolnet_jax.bench import torch_models
  real = torch_models.num_params
  monkeypatch.setattr(torch_models, 'num_params', lambda net: real(net) + 1)
  with pytest.raises(AssertionError, match='parameter counts differ'):
    benchmark.run(_tiny_config(), ARGS)


def test_jax_only_without_torch():
  args = types.SimpleNamespace(**{**vars(ARGS), 'skip_torch': True})
  result = benchmark.run(_tiny_config(), args)
  assert result['jax_train_img_s'] > 0 and 'torch_train_img_s' not in result
  assert 'jax float32:onednn (config)' in benchmark.format_table(result)


def test_the_mixed_policy_is_a_variant():
  """--jax_variants=mixed_bfloat16:onednn: float32 with bf16 convolutions, its
  FLOP/s against the bf16 peak."""
  args = types.SimpleNamespace(**{**vars(ARGS), 'skip_torch': True,
                                  'jax_variants': ['mixed_bfloat16:onednn']})
  result = benchmark.run(_tiny_config(), args)
  assert list(result['jax_variants']) == ['float32:onednn', 'mixed_bfloat16:onednn']
  assert result['jax_variants']['mixed_bfloat16:onednn']['train'] > 0
  assert 'jax mixed_bfloat16:onednn' in benchmark.format_table(result)
  assert benchmark.dtype_of('mixed_bfloat16:onednn') == 'bfloat16'


def test_every_precision_and_conv_impl_is_timed_and_the_fastest_is_the_reference():
  require_torch()
  args = types.SimpleNamespace(**{**vars(ARGS), 'jax_variants': [
      'bfloat16:onednn', 'float32:unrolled', 'float32:onednn'],
      'torch_variants': ['channels_last', 'bf16']})
  result = benchmark.run(_tiny_config(), args)
  # The config's own variant (auto -> onednn here) first, not timed twice.
  assert list(result['jax_variants']) == ['float32:onednn', 'bfloat16:onednn',
                                          'float32:unrolled']
  assert result['jax_variant'] == 'float32:onednn'
  assert set(result['torch_variants']) == {'channels_last', 'bf16'}
  torch_best = max(result['torch_variants'].values(), key=lambda v: v['train'])
  assert result['torch_train_img_s'] == torch_best['train']
  jax_best = max(result['jax_variants'].values(), key=lambda v: v['train'])
  assert result['best_train_ratio'] == pytest.approx(
      jax_best['train'] / result['torch_train_img_s'])
  table = benchmark.format_table(result)
  assert 'torch bf16' in table and 'jax bfloat16:onednn' in table
  assert 'oneDNN (JAX) dispatches avx512' in result['cpu']  # This project's CPUs.


@pytest.mark.long
def test_time_to_accuracy_times_each_seed_and_reads_the_test_accuracy(small_cifar, cache_dir,
                                                                     tmp_path):
  start = time.perf_counter()
  out = subprocess.run(
      [sys.executable, '-m', 'isovolnet_jax.bench.time_to_accuracy', '--config=configs/smoke.py',
       f'--data={small_cifar}', '--seeds=0,1', '--json', '--config.num_train_steps=4',
       f'--config.data.cache_dir={cache_dir}', f'--workdir={tmp_path}',
       '--config.periodic_eval=test', '--config.eval_every_epochs=0.1', '--targets=0,101'],
      capture_output=True, text=True, cwd=ROOT, timeout=600)
  elapsed = time.perf_counter() - start
  assert out.returncode == 0, out.stderr[-2000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  runs = result['runs']
  assert [r['seed'] for r in runs] == [0, 1] and all(r['steps'] == 4 for r in runs)
  # Where and when, for a results README: the CPU, the commit, the date, the overrides.
  head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT,
                        capture_output=True, text=True).stdout.strip()
  assert result['commit'].startswith(head) and result['cores'] >= 1
  assert result['machine'].startswith('CPU: ') and result['date'].endswith('UTC')
  assert all(r['date'].endswith('UTC') for r in runs)
  assert '--config.num_train_steps=4' in result['overrides']
  # Each figure is its run's: the test line of its metrics.jsonl, the seed of
  # its config.json, and seconds that fit in this test's own wall time.
  for r in runs:
    run_dir = tmp_path / f'run{r["seed"]}'
    test_rows = [m for m in metrics(run_dir) if m['split'] == 'test']
    assert r['test_accuracy'] == test_rows[-1]['accuracy']
    assert json.loads((run_dir / 'config.json').read_text())['seed'] == r['seed']
    # The test split watched at steps 2 and 4: 0% is reached at the first.
    assert [step for step, _ in r['curve']] == [2, 4]
    assert 0 < r['to_target_seconds']['0.0'] < r['seconds']
    assert r['to_target_seconds']['1.01'] is None
  assert 0 < sum(r['seconds'] for r in runs) < elapsed
  mean = 100 * (runs[0]['test_accuracy'] + runs[1]['test_accuracy']) / 2
  assert '2 seeds:' in out.stdout and f'test accuracy {mean:.2f} ±' in out.stdout
  again = subprocess.run([sys.executable, '-m', 'isovolnet_jax.bench.time_to_accuracy', '--seeds=1',
                          f'--workdir={tmp_path}'], capture_output=True, text=True, cwd=ROOT)
  assert again.returncode == 2 and 'run1 exists' in again.stderr


def test_seconds_to_targets_leave_out_the_earlier_evaluations():
  rows = [{'split': 'train', 'step': 1, 'accuracy': 0.99},
          {'split': 'test', 'step': 2, 'accuracy': 0.5, 'unix_time': 110.0, 'eval_seconds': 3.0},
          {'split': 'test', 'step': 4, 'accuracy': 0.8, 'unix_time': 130.0, 'eval_seconds': 4.0},
          {'split': 'test', 'step': 6, 'accuracy': 0.7, 'unix_time': 150.0, 'eval_seconds': 5.0}]
  assert time_to_accuracy.seconds_to_targets(rows, 100.0, [0.5, 0.75, 0.9]) == {
      0.5: 10.0, 0.75: 130.0 - 100.0 - 3.0, 0.9: None}


def test_time_to_accuracy_refuses_unknown_arguments():
  out = subprocess.run([sys.executable, '-m', 'isovolnet_jax.bench.time_to_accuracy', '--sedes=1'],
                       capture_output=True, text=True, cwd=ROOT)
  assert out.returncode == 2 and 'only --config.KEY=VALUE' in out.stderr


def test_input_pipeline_bench_finds_its_config():
  # The path broke once when the bench moved into isovolnet_jax/bench/.
  from isovolnet_jax.bench import input_pipeline as bench_input  # pylint: disable=g-import-not-at-top
  config = config_defaults.load_config_file(bench_input.CONFIG)
  assert config.model.name == 'isovolnet' and config.model.num_blocks == -1


def test_torch_profile_sorts_ops_by_layer_kind():
  require_torch()
  from isovolnet_jax.bench import layer_profile
  assert [layer_profile.torch_kind(op) for op in (
      'aten::convolution_backward', 'aten::native_batch_norm', 'aten::addmm',
      'aten::max_pool2d_with_indices_backward', 'aten::gelu', 'aten::add_')] == [
          'Conv', 'BatchNorm', 'Dense', 'pooling', 'activation', 'rest']
  by_kind, whole = layer_profile.torch_profile(_tiny_config(), 8, 1, 'channels_last', 2)
  assert by_kind['Conv'] > 0 and by_kind['BatchNorm'] > 0 and by_kind['Dense'] > 0
  assert whole > 0


# ---------------------------------------------------------------- accelerators, the loop


@pytest.mark.long
def test_the_loop_figure_runs_the_real_loop_on_the_data(small_cifar, cache_dir):
  from helpers import smoke_config
  config = smoke_config(small_cifar, cache_dir, **{'model.conv_impl': 'lax'})
  args = types.SimpleNamespace(**{**vars(ARGS), 'skip_torch': True, 'loop_steps': 8})
  result = benchmark.run(config, args)
  loop = result['loop']
  assert 'error' not in loop, loop
  # 8 steps logged every 2: metrics.jsonl's 4 train lines, read by the bench.
  assert loop['steps'] == 8 and loop['log_lines'] == 4
  assert loop['img_s'] > 0 and loop['step_img_s'] > 0
  assert loop['ratio'] == pytest.approx(loop['img_s'] / loop['step_img_s']) and loop['ratio'] > 0
  assert 'loop/step' in benchmark.format_table(result)
  json.dumps(result)


def test_a_loop_without_its_data_is_reported_not_fatal(tmp_path):
  config = _tiny_config()
  with config.unlocked():
    config.data.source, config.data.path = 'folder', str(tmp_path / 'absent')
  loop = benchmark.loop_figures(config, (32, 32, 3), 10, ARGS, 4)
  assert loop['steps'] == 4 and loop['error']


def test_loop_rate_leaves_out_the_first_line():
  rows = [{'split': 'train', 'images_per_sec': r} for r in (10.0, 100.0, 120.0, 110.0)]
  rows.insert(2, {'split': 'test', 'accuracy': 0.5})
  assert benchmark.loop_images_per_sec(rows) == 110.0
  assert benchmark.loop_images_per_sec(rows[:2]) == 55.0


def test_on_a_gpu_the_table_and_json_name_the_device_and_its_peaks(monkeypatch):
  # No GPU here: the device's kind, its matmul peaks and memory are injected.
  monkeypatch.setattr(benchmark, 'device_info', lambda device=None: {
      'platform': 'gpu', 'device_kind': 'NVIDIA H200', 'device_count': 1})
  peaks = {'float32': 400e12, 'bfloat16': 800e12}
  monkeypatch.setattr(benchmark, 'matmul_flops',
                      lambda dtype='float32', device=None: peaks[dtype])
  monkeypatch.setattr(benchmark, 'peak_bytes_in_use', lambda device: 3 * 2 ** 30)
  args = types.SimpleNamespace(**{**vars(ARGS), 'skip_torch': True,
                                  'jax_variants': ['bfloat16:lax']})
  result = benchmark.run(_tiny_config(), args)
  assert result['platform'] == 'gpu' and result['device_kind'] == 'NVIDIA H200'
  assert result['matmul_flops'] == 400e12 and result['matmul_flops_bf16'] == 800e12
  assert result['jax_peak_bytes'] == 3 * 2 ** 30 and result['matmul_size'] == 8192
  json.loads(json.dumps(result))
  table = benchmark.format_table(result)
  assert 'JAX on 1 GPU device(s): NVIDIA H200' in table and 'CPU device' not in table
  assert 'memory: peak 3.00 GiB' in table
  assert 'float32 (default precision) 400.0 TFLOP/s, bfloat16 800.0 TFLOP/s' in table
  # Each row's % is against its own dtype's peak.
  bf16 = result['jax_variants']['bfloat16:lax']['train'] * 3 * result['forward_flops_per_image']
  row = next(l for l in table.splitlines() if l.startswith('jax bfloat16:lax'))
  assert f'({100 * bf16 / 800e12:4.1f}%)' in row


def test_pytorch_runs_on_cuda_when_jax_runs_on_a_gpu(monkeypatch):
  assert benchmark.torch_device('gpu', cuda_available=True) == 'cuda'
  assert benchmark.torch_device('gpu', cuda_available=False) == 'cpu'
  assert benchmark.torch_device('cpu', cuda_available=True) == 'cpu'
  assert benchmark.torch_device('tpu', cuda_available=True) == 'cpu'
  torch = require_torch()
  # run_torch hands the chosen device to every variant (no CUDA needed here).
  monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
  monkeypatch.setattr(torch.cuda, 'get_device_name', lambda *a: 'NVIDIA H200')
  monkeypatch.setattr(torch.cuda, 'max_memory_allocated', lambda *a: 5)
  seen = []
  def fake_time_torch(config, shape, classes, threads, variant, args, device='cpu'):
    seen.append((variant, device))
    return {'params': 7, 'train': 10.0, 'infer': 20.0}
  monkeypatch.setattr(benchmark, 'time_torch', fake_time_torch)
  out = benchmark.run_torch(_tiny_config(), (32, 32, 3), 10, 1, ARGS, 'gpu',
                            {'params': 7, 'train': 5.0, 'infer': 40.0})
  assert seen == [('nchw', 'cuda'), ('channels_last', 'cuda')]
  assert out['torch_device'] == 'cuda' and out['torch_device_name'] == 'NVIDIA H200'
  assert out['train_ratio'] == 0.5 and out['infer_ratio'] == 2.0


def test_layer_choices_times_both_sides_of_each_choice():
  import jax
  import numpy as np

  from isovolnet_jax import onednn
  from isovolnet_jax.models import layers
  from isovolnet_jax.bench import layer_choices
  pools = layer_choices.pooling(batch=2, repeats=1)
  assert [(r['shape'][1:], r['dtype']) for r in pools] == [
      ([h, h, c], dt) for h, c in layer_choices.POOL_SHAPES for dt in ('float32', 'bfloat16')]
  assert all(r[k][t] > 0 for r in pools for k in ('reshape_mean', 'phases')
             for t in ('forward_ms', 'forward_backward_ms'))
  # The old pooling it times is the same function.
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  np.testing.assert_allclose(layer_choices._avg_pool_reshape(x), layers.avg_pool_2x2(x),
                             atol=1e-6)
  if onednn.available():
    swish = layer_choices.narrow_swish(batch=2, repeats=1)
    assert [r['shape'][3] for r in swish] == list(layer_choices.SWISH_CHANNELS)
    assert all(r['post_op_ms'] > 0 and r['xla_after_ms'] > 0 for r in swish)
  casts = layer_choices.casts(batch=2, repeats=1)
  assert [r['shape'][1:] for r in casts] == [[h, h, c] for h, c in layer_choices.CAST_SHAPES]
  assert all(r[side][k] > 0 for r in casts for side in ('astype', 'bits')
             for k in ('to_bfloat16', 'to_float32', 'norm_swish_to_bfloat16'))
  views = layer_choices.narrow_views(batch=2, repeats=1)
  assert set(views) == {'shape', 'nhwc', 'view_tiles_given', 'view_tiled_inside',
                        'view_back_to_nhwc', 'wide_4x4x768'}
  assert all(v > 0 for k, v in views.items() if k != 'shape')
  cases = layer_choices.narrow_view_cases(batch=2)
  want = np.asarray(cases['nhwc'][0](*cases['nhwc'][1]))
  for name in ('view_tiles_given', 'view_tiled_inside', 'view_back_to_nhwc'):
    f, args = cases[name]
    np.testing.assert_allclose(np.asarray(f(*args)).reshape(want.shape), want, rtol=1e-6)
