r"""Wall time and test accuracy of a training command over several seeds.

  LD_PRELOAD=libtcmalloc.so.4 python benchmarks/time_to_accuracy.py \
    --config=configs/cifar10_fast_cpu.py --seeds=0,1,2 \
    --data=../shared/data/cifar10_jpeg [--cold] [--workdir=DIR]

Each seed runs `python -m isovolnet_jax.main` as its own process in a fresh
workdir, one after the other, and is timed from launch to exit: imports, data
loading, compilation, training and the final (flip-TTA) test evaluation all
count. Decoded images are cached (`~/.cache/isovolnet_jax`); `--cold` gives
every run an empty cache dir, so JPEG decoding counts too. Extra
`--config.KEY=VALUE` arguments go to every run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from isovolnet_jax import plots

ROOT = Path(__file__).resolve().parents[1]


def run_seed(config: str, data: str, seed: int, workdir: Path, cache_dir: str,
             extra: list[str]) -> dict:
  args = [sys.executable, '-m', 'isovolnet_jax.main', f'--config={config}',
          f'--workdir={workdir}', '--config.data.source=folder',
          f'--config.data.path={data}', f'--config.seed={seed}', *extra]
  if cache_dir:
    args.append(f'--config.data.cache_dir={cache_dir}')
  start = time.perf_counter()
  proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
  seconds = time.perf_counter() - start
  if proc.returncode:
    raise SystemExit(f'seed {seed} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}')
  test = [r for r in plots.read_metrics(workdir) if r['split'] == 'test'][-1]
  return {'seed': seed, 'seconds': seconds, 'test_accuracy': test['accuracy'],
          'steps': test['step']}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--config', default='configs/cifar10_fast_cpu.py')
  parser.add_argument('--data', default=str(ROOT.parent / 'shared/data/cifar10_jpeg'))
  parser.add_argument('--seeds', default='0,1,2')
  parser.add_argument('--cold', action='store_true', help='decode the JPEGs in every run')
  parser.add_argument('--json', action='store_true')
  parser.add_argument('--workdir', default='',
                      help='keep each seed\'s run in WORKDIR/run<seed> (default: '
                           'a temporary folder, deleted at the end)')
  args, extra = parser.parse_known_args()
  bad = [a for a in extra if not a.startswith('--config.')]
  if bad:
    parser.error(f'unknown arguments {bad}; only --config.KEY=VALUE pass through')
  args.extra = extra
  seeds = [int(s) for s in args.seeds.split(',')]
  # A kept run would resume, not train: every seed needs a fresh workdir.
  taken = [str(Path(args.workdir, f'run{s}')) for s in seeds
           if args.workdir and Path(args.workdir, f'run{s}').exists()]
  if taken:
    parser.error(f'{taken[0]} exists; each seed needs a fresh workdir')

  results = []
  with tempfile.TemporaryDirectory() as tmp:
    tmp = args.workdir or tmp
    for seed in seeds:
      cache = os.path.join(tmp, f'cache{seed}') if args.cold else ''
      r = run_seed(args.config, args.data, seed, Path(tmp, f'run{seed}'), cache, args.extra)
      print(f'seed {r["seed"]}: {r["seconds"] / 60:.2f} min, test accuracy '
            f'{100 * r["test_accuracy"]:.2f}% ({r["steps"]} steps)', flush=True)
      results.append(r)
  minutes = [r['seconds'] / 60 for r in results]
  accs = [100 * r['test_accuracy'] for r in results]
  spread = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
  print(f'{len(results)} seeds: {statistics.mean(minutes):.2f} ± {spread(minutes):.2f} min '
        f'(max {max(minutes):.2f}), test accuracy {statistics.mean(accs):.2f} ± '
        f'{spread(accs):.2f}% (min {min(accs):.2f}%)')
  if args.json:
    print(json.dumps({'runs': results, 'config': args.config, 'cold': args.cold}))


if __name__ == '__main__':
  main()
