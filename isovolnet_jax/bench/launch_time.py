r"""Launch to exit of a training command, cold and warm compilation cache.

  python -m isovolnet_jax.bench.launch_time --config=configs/cifar10_airbench94.py \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg [--json]

Runs `python -m isovolnet_jax.main` twice, each a fresh process in a fresh
workdir, timed from launch to exit: cold, with an empty JAX compilation cache
(a new temporary dir, JAX_COMPILATION_CACHE_DIR), then warm, on the cache the
cold run filled. The decoded images are cached before either (a CPU-only
process loads the data set once), so the difference is compilation. Each
run's line gives whether its train step hit or missed the cache (the log line
of `cli.log_compilation_cache`), its test accuracy and its training seconds
(the loop's own timer: the steps' images / images_per_sec of each
metrics.jsonl train line; compilation and evaluations left out). Extra
`--config.KEY=VALUE` arguments go to both runs.
"""

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
from isovolnet_jax import plots

ROOT = Path(__file__).resolve().parents[2]
FLAGS = flags.FLAGS
_EXTRA: list[str] = []  # The --config.KEY=VALUE arguments, for every run.
_TRAIN_STEP = re.compile(r'Compilation cache: train step (hit|miss|not compiled)')


def prime_data(config: str, extra: list[str]) -> None:
  """Loads the config's data set once in a CPU-only process (JAX_PLATFORMS=cpu:
  no accelerator memory taken), so that its decoded images are cached before
  the timed runs."""
  code = ('import sys\n'
          'from isovolnet_jax import config_defaults, data\n'
          'c = config_defaults.load_config_file(sys.argv[1])\n'
          'kv = dict(a[len("--config."):].split("=", 1) for a in sys.argv[2:])\n'
          'data.dataset(config_defaults.apply_overrides(c, kv))\n')
  subprocess.run([sys.executable, '-c', code, config, *extra], cwd=ROOT,
                 env={**os.environ, 'JAX_PLATFORMS': 'cpu', 'TF_CPP_MIN_LOG_LEVEL': '2'},
                 capture_output=True, text=True, check=False)


def run_figures(workdir: Path) -> dict:
  """A finished run's figures from its metrics.jsonl."""
  rows = plots.read_metrics(workdir)
  train = [r for r in rows if r['split'] == 'train' and 'images_per_sec' in r]
  tests = [r for r in rows if r['split'] == 'test']
  batch = json.loads((workdir / 'config.json').read_text())['batch_size']
  seconds, prev = 0.0, 0
  for r in train:
    seconds += (r['step'] - prev) * batch / r['images_per_sec']
    prev = r['step']
  rates = [r['images_per_sec'] for r in train]
  loop = sorted(rates[1:] if len(rates) >= 3 else rates)
  return {'steps': train[-1]['step'] if train else 0,
          'test_accuracy': tests[-1]['accuracy'] if tests else None,
          'train_seconds': seconds,
          'loop_img_s': loop[len(loop) // 2] if loop else None}


def launch(config: str, workdir: Path, jax_cache: Path, extra: list[str]) -> dict:
  """One timed `python -m isovolnet_jax.main` run on the compilation cache `jax_cache`."""
  args = [sys.executable, '-m', 'isovolnet_jax.main', f'--config={config}',
          f'--workdir={workdir}', *extra]
  env = {**os.environ, 'JAX_COMPILATION_CACHE_DIR': str(jax_cache),
         cli.COMPILATION_CACHE: '1'}
  start = time.perf_counter()
  proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env)
  seconds = time.perf_counter() - start
  if proc.returncode:
    raise RuntimeError(f'{" ".join(args[1:])} failed (exit {proc.returncode}):\n'
                       f'{proc.stderr[-3000:]}')
  found = _TRAIN_STEP.search(proc.stderr)
  return {'launch_to_exit_seconds': seconds,
          'train_step_cache': found.group(1) if found else 'unknown',
          **run_figures(workdir)}


def cold_and_warm(config: str, extra: list[str], tmp: Path, prime: bool = True) -> dict:
  """{'cold': launch(...), 'warm': launch(...)} in workdirs under `tmp`."""
  if prime:
    prime_data(config, extra)
  jax_cache = tmp / 'jax_cache'
  return {name: launch(config, tmp / name, jax_cache, extra) for name in ('cold', 'warm')}


def describe(name: str, r: dict) -> str:
  acc = '-' if r['test_accuracy'] is None else f'{100 * r["test_accuracy"]:.2f}%'
  loop = '-' if r['loop_img_s'] is None else f'{r["loop_img_s"]:,.0f}'
  return (f'{name}: launch to exit {r["launch_to_exit_seconds"]:.1f} s (train step '
          f'cache {r["train_step_cache"]}); {r["steps"]} steps, training '
          f'{r["train_seconds"]:.1f} s, {loop} img/s; test accuracy {acc}')


def define_flags():
  flags.DEFINE_string('config', 'configs/smoke.py', 'Config file of the runs.')
  flags.DEFINE_bool('json', False, 'Print the results as JSON on the last line.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  with tempfile.TemporaryDirectory() as tmp:
    result = cold_and_warm(FLAGS.config, _EXTRA, Path(tmp))
  for name in ('cold', 'warm'):
    print(describe(name, result[name]))
  print(f'warm - cold: {result["warm"]["launch_to_exit_seconds"] - result["cold"]["launch_to_exit_seconds"]:+.1f} s')
  if FLAGS.json:
    print(json.dumps({'config': FLAGS.config, **result}))


if __name__ == '__main__':
  define_flags()
  cli.run(main, flags_parser=cli.passing_config_overrides(_EXTRA))
