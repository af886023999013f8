r"""The one check to run on a GPU (or TPU): training and benchmark figures as JSON.

  python -m isovolnet_jax.bench.gpu_check --results=results/gpu_check \
    [--data=../shared/data/cifar10_jpeg] [--config.KEY=VALUE ...]

For each training config (`--train_configs`, default
configs/cifar10_airbench94.py and configs/cifar10_airbench94_muon.py; an
absent file is skipped with one line): two launches of
`python -m isovolnet_jax.main` (`bench.launch_time`: cold, on an empty
compilation cache, then warm), each timed from launch to exit, with the test
accuracy, the training seconds and whether the train step hit the cache;
then `bench.benchmark --skip_torch --loop_steps=N` on the same config: the
real loop's images/s against the step's alone (loop/step), and the full
run's loop images/s against that step too. Then the benchmark table
(JAX and the PyTorch twins, `--loop_steps`) of each `--bench_configs`
(default configs/cifar10.py and configs/cifar10_fast_cpu.py).

Every command is its own process, one after the other (this one never
touches the accelerator: JAX would take its memory). The figures go to
RESULTS/<device kind>-<date>.json and the printed report to the .txt beside
it, to be committed under results/gpu_check/. Sized to finish in about 10
minutes on one GPU (not yet measured on one). Without a GPU or TPU it refuses
to run (exit 2), unless `--allow_cpu --steps=N` (N <= 50: every run cut to
N steps; for testing this script on a CPU).
"""

import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app
from absl import flags

from isovolnet_jax import cli
from isovolnet_jax.bench import launch_time

ROOT = Path(__file__).resolve().parents[2]
FLAGS = flags.FLAGS
_EXTRA: list[str] = []  # --config.KEY=VALUE for every run.
TRAIN_CONFIGS = ('configs/cifar10_airbench94.py', 'configs/cifar10_airbench94_muon.py')
BENCH_CONFIGS = ('configs/cifar10.py', 'configs/cifar10_fast_cpu.py')
MAX_CPU_STEPS = 50


def define_flags():
  flags.DEFINE_string('results', None, 'Folder for the JSON and text report '
                      '(e.g. results/gpu_check).')
  flags.mark_flag_as_required('results')
  default_data = ROOT.parent / 'shared' / 'data' / 'cifar10_jpeg'
  flags.DEFINE_string('data', str(default_data) if default_data.is_dir() else '',
                      "Image folder (train/, test/); '' = each config's own source.")
  flags.DEFINE_list('train_configs', list(TRAIN_CONFIGS), 'Configs trained cold and warm.')
  flags.DEFINE_list('bench_configs', list(BENCH_CONFIGS), 'Configs benchmarked.')
  flags.DEFINE_integer('loop_steps', 200, "Steps of the benchmark's loop figure.")
  flags.DEFINE_bool('skip_torch', False, 'Benchmark tables without PyTorch.')
  flags.DEFINE_bool('allow_cpu', False, 'Run on a CPU too (needs --steps).')
  flags.DEFINE_integer('steps', 0, 'Cut every run to N steps (0: the configs\' own); '
                       f'with --allow_cpu on a CPU 1..{MAX_CPU_STEPS}.')


def detect_device() -> dict:
  """The first JAX device's platform and kind, and the count, from a child
  process (so that this one leaves the accelerator's memory alone)."""
  code = ('import json, jax; d = jax.devices()[0]; print(json.dumps({"platform": '
          'd.platform, "device_kind": d.device_kind, "device_count": jax.device_count()}))')
  proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                        cwd=ROOT, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
  if proc.returncode:
    raise RuntimeError(f'JAX could not list its devices:\n{proc.stderr[-2000:]}')
  return json.loads(proc.stdout.strip().splitlines()[-1])


def refusal(device: dict, allow_cpu: bool, steps: int) -> str | None:
  """Why not to run here (one line), or None."""
  if device['platform'] != 'cpu':
    return None
  if not allow_cpu:
    return ('no GPU or TPU here (JAX sees only the CPU): gpu_check measures an '
            'accelerator; run it on a machine with one (pip install -e \'.[cuda]\'), '
            f'or pass --allow_cpu --steps=N (N <= {MAX_CPU_STEPS}) for a tiny CPU run')
  if not 1 <= steps <= MAX_CPU_STEPS:
    return f'--allow_cpu needs --steps between 1 and {MAX_CPU_STEPS} (got {steps})'
  return None


def data_flags(data: str) -> list[str]:
  return ['--config.data.source=folder', f'--config.data.path={data}'] if data else []


def step_flags(steps: int) -> list[str]:
  if not steps:
    return []
  return [f'--config.num_train_steps={steps}',
          f'--config.log_every_steps={max(1, steps // 4)}']


def benchmark(config: str, extra: list[str], *, loop_steps: int, skip_torch: bool,
              tiny: bool) -> tuple[dict, str]:
  """`bench.benchmark --json` in a child process: (its JSON, its table)."""
  args = [sys.executable, '-m', 'isovolnet_jax.bench.benchmark', f'--config={config}',
          '--json', f'--loop_steps={loop_steps}', *extra]
  if skip_torch:
    args += ['--skip_torch', '--jax_variants=']
  if tiny:
    args += ['--steps=2', '--warmup=1', '--repeats=1', '--jax_variants=',
             '--torch_variants=channels_last']
  proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
  if proc.returncode:
    raise RuntimeError(f'benchmark {config} failed (exit {proc.returncode}):\n'
                       f'{proc.stderr[-3000:]}')
  lines = proc.stdout.strip().splitlines()
  return json.loads(lines[-1]), '\n'.join(lines[:-1])


def train_check(config: str, extra: list[str], args, tiny: bool, say) -> dict:
  """Cold and warm launches and the loop/step figures of one training config."""
  with tempfile.TemporaryDirectory() as tmp:
    runs = launch_time.cold_and_warm(config, extra, Path(tmp))
  for name in ('cold', 'warm'):
    say(f'  {launch_time.describe(name, runs[name])}')
  bench, _ = benchmark(config, extra, loop_steps=args.loop_steps if not tiny else args.steps,
                       skip_torch=True, tiny=tiny)
  loop = bench.get('loop', {})
  out = {**runs, 'benchmark_loop': loop, 'step_img_s': loop.get('step_img_s'),
         'jax_train_img_s': bench['jax_train_img_s']}
  if 'error' in loop:
    say(f'  loop/step: failed: {loop["error"]}')
    return out
  out['loop_step_ratio'] = loop['ratio']
  full = runs['warm']['loop_img_s']
  out['full_run_loop_step_ratio'] = full / loop['step_img_s'] if full else None
  say(f'  loop/step {loop["ratio"]:.2f} ({loop["steps"]} steps of the loop, '
      f'{loop["img_s"]:,.0f} img/s, against the step alone, {loop["step_img_s"]:,.0f} '
      f'img/s); the warm run\'s loop against the same step: '
      + ('-' if out['full_run_loop_step_ratio'] is None
         else f'{out["full_run_loop_step_ratio"]:.2f}'))
  return out


def slug(text: str) -> str:
  return re.sub(r'[^a-z0-9]+', '_', text.lower()).strip('_') or 'device'


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  device = detect_device()
  if why := refusal(device, FLAGS.allow_cpu, FLAGS.steps):
    cli.fail(why)
  tiny = device['platform'] == 'cpu'
  extra = [*data_flags(FLAGS.data), *step_flags(FLAGS.steps), *_EXTRA]
  report: list[str] = []

  def say(line: str) -> None:
    print(line, flush=True)
    report.append(line)

  started = time.perf_counter()
  say(f'gpu_check on {device["device_count"]} {device["platform"].upper()} device(s): '
      f'{device["device_kind"]}' + ('  (CPU: --allow_cpu, a tiny run, not a figure)'
                                    if tiny else ''))
  result = {'device': device, 'date': datetime.date.today().isoformat(),
            'steps': FLAGS.steps, 'data': FLAGS.data, 'extra': _EXTRA,
            'train': {}, 'benchmark': {}}
  for config in FLAGS.train_configs:
    if not (ROOT / config).is_file() and not Path(config).is_file():
      say(f'{config}: skipped: the file is absent')
      result['train'][config] = {'skipped': 'absent'}
      continue
    say(f'{config}:')
    try:
      result['train'][config] = train_check(config, extra, FLAGS, tiny, say)
    except RuntimeError as e:
      say(f'  failed: {str(e).splitlines()[0]}')
      result['train'][config] = {'error': str(e)[-3000:]}
  for config in FLAGS.bench_configs:
    say(f'\nbenchmark {config}:')
    try:
      bench, table = benchmark(config, extra, loop_steps=FLAGS.steps or FLAGS.loop_steps,
                               skip_torch=FLAGS.skip_torch, tiny=tiny)
    except RuntimeError as e:
      say(f'  failed: {str(e).splitlines()[0]}')
      result['benchmark'][config] = {'error': str(e)[-3000:]}
      continue
    say(table)
    result['benchmark'][config] = bench
  result['seconds'] = time.perf_counter() - started
  say(f'\ngpu_check: {result["seconds"]:.0f} s')
  out = Path(FLAGS.results)
  out.mkdir(parents=True, exist_ok=True)
  stem = out / f'{slug(device["device_kind"])}-{result["date"]}'
  stem.with_suffix('.json').write_text(json.dumps(result, indent=1) + '\n')
  stem.with_suffix('.txt').write_text('\n'.join(report) + '\n')
  print(f'wrote {stem}.json and {stem}.txt')


if __name__ == '__main__':
  define_flags()
  cli.run(main, flags_parser=cli.passing_config_overrides(_EXTRA))
