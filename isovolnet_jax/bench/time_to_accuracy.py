r"""Wall time and test accuracy of a training command over several seeds.

  python -m isovolnet_jax.bench.time_to_accuracy \
    --config=configs/cifar10_fast_cpu.py --seeds=0,1,2 \
    --data=../shared/data/cifar10_jpeg [--cold] [--workdir=DIR]

Each seed runs `python -m isovolnet_jax.main` as its own process in a fresh
workdir, one after the other, and is timed from launch to exit: imports, data
loading, compilation, training and the final (flip-TTA) test evaluation all
count. Decoded images are cached (`~/.cache/isovolnet_jax`); `--cold` gives
every run an empty cache dir, so JPEG decoding counts too. Extra
`--config.KEY=VALUE` arguments go to every run.

`--targets=85,90,93,94`: for a config that watches the test split
(`periodic_eval='test'`, e.g. cifar10_airbench94), the time from launch to
the first evaluation at or above each accuracy, less the seconds the earlier
evaluations took: the launch-to-exit time of a run stopped there.
"""

import ctypes.util
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app
from absl import flags

from isovolnet_jax import cli
from isovolnet_jax import plots
from isovolnet_jax.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
FLAGS = flags.FLAGS
_EXTRA: list[str] = []  # The --config.KEY=VALUE arguments, for every run.


def run_seed(config: str, data: str, seed: int, workdir: Path, cache_dir: str,
             extra: list[str]) -> dict:
  args = [sys.executable, '-m', 'isovolnet_jax.main', f'--config={config}',
          f'--workdir={workdir}', '--config.data.source=folder',
          f'--config.data.path={data}', f'--config.seed={seed}', *extra]
  if cache_dir:
    args.append(f'--config.data.cache_dir={cache_dir}')
  launch, start = time.time(), time.perf_counter()
  proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
  seconds = time.perf_counter() - start
  if proc.returncode:
    raise SystemExit(f'seed {seed} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}')
  tests = [r for r in plots.read_metrics(workdir) if r['split'] == 'test']
  return {'seed': seed, 'seconds': seconds, 'test_accuracy': tests[-1]['accuracy'],
          'steps': tests[-1]['step'], 'launch': launch,
          'curve': [(r['step'], r['accuracy']) for r in tests]}


def provenance() -> dict:
  """Where and when: the CPU (and oneDNN's ISA), the cores, the commit (with
  '+dirty' when the tree has uncommitted changes), the UTC date, whether the
  runs preload tcmalloc."""
  from isovolnet_jax.bench import benchmark  # pylint: disable=import-outside-toplevel
  git = lambda *a: subprocess.run(['git', *a], cwd=ROOT, capture_output=True,
                                  text=True).stdout.strip()
  commit = git('rev-parse', '--short', 'HEAD') or 'unknown'
  if git('status', '--porcelain', '--untracked-files=no'):
    commit += '+dirty'
  return {'machine': benchmark.cpu_description(), 'cores': os.cpu_count(),
          'commit': commit,
          'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
          # What each run does (`cli.use_tcmalloc`), not this launcher's process.
          'runs_preload_tcmalloc': bool(ctypes.util.find_library('tcmalloc')) and
                                   os.environ.get(cli.NO_TCMALLOC, '') in ('', '0')}


def seconds_to_targets(rows: list[dict], launch: float, targets) -> dict:
  """{target accuracy: seconds or None}: from `launch` (unix time) to the end
  of the first test evaluation reaching it, less the earlier evaluations'
  `eval_seconds` (metrics.jsonl rows of one run, in order)."""
  out, spent = {}, 0.0
  for r in rows:
    if r['split'] != 'test' or 'unix_time' not in r:
      continue
    for t in targets:
      if t not in out and r['accuracy'] >= t:
        out[t] = r['unix_time'] - launch - spent
    spent += r['eval_seconds']
  return {t: out.get(t) for t in targets}


def define_flags():
  flags.DEFINE_string('config', 'configs/cifar10_fast_cpu.py', 'Config file of the runs.')
  flags.DEFINE_string('data', str(ROOT.parent / 'shared/data/cifar10_jpeg'),
                      'Image folder (train/ and test/).')
  flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds, one run each.')
  flags.DEFINE_bool('cold', False, 'Decode the JPEGs in every run.')
  flags.DEFINE_list('targets', [], 'Test accuracies (%) to time, e.g. 85,90,93,94 '
                    "(needs --config.periodic_eval=test).")
  flags.DEFINE_bool('json', False, 'Print the results as JSON on the last line.')
  flags.DEFINE_string('workdir', '', "Keep each seed's run in WORKDIR/run<seed> "
                      '(default: a temporary folder, deleted at the end).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  args = FLAGS
  seeds = [int(s) for s in args.seeds]
  # A kept run would resume, not train: every seed needs a fresh workdir.
  taken = [str(Path(args.workdir, f'run{s}')) for s in seeds
           if args.workdir and Path(args.workdir, f'run{s}').exists()]
  if taken:
    raise InputError(f'{taken[0]} exists; each seed needs a fresh workdir')

  results, where = [], provenance()
  print(f"{where['machine']}, {where['cores']} cores; commit {where['commit']}, "
        f"{where['date']}", flush=True)
  with tempfile.TemporaryDirectory() as tmp:
    tmp = args.workdir or tmp
    for seed in seeds:
      cache = os.path.join(tmp, f'cache{seed}') if args.cold else ''
      workdir = Path(tmp, f'run{seed}')
      r = run_seed(args.config, args.data, seed, workdir, cache, _EXTRA)
      r['date'] = datetime.datetime.fromtimestamp(
          r['launch'], datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
      r['to_target_seconds'] = seconds_to_targets(
          plots.read_metrics(workdir), r['launch'], [float(t) / 100 for t in args.targets])
      reached = ''.join(f', {100 * t:g}% at ' + (f'{s / 60:.2f} min' if s else 'never')
                        for t, s in r['to_target_seconds'].items())
      print(f'seed {r["seed"]}: {r["seconds"] / 60:.2f} min, test accuracy '
            f'{100 * r["test_accuracy"]:.2f}% ({r["steps"]} steps){reached}', flush=True)
      results.append(r)
  minutes = [r['seconds'] / 60 for r in results]
  accs = [100 * r['test_accuracy'] for r in results]
  spread = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
  print(f'{len(results)} seeds: {statistics.mean(minutes):.2f} ± {spread(minutes):.2f} min '
        f'(max {max(minutes):.2f}), test accuracy {statistics.mean(accs):.2f} ± '
        f'{spread(accs):.2f}% (min {min(accs):.2f}%)')
  if args.json:
    print(json.dumps({'runs': results, 'config': args.config, 'cold': args.cold,
                      'overrides': _EXTRA, **where}))


if __name__ == '__main__':
  define_flags()
  cli.run(main, flags_parser=cli.passing_config_overrides(_EXTRA))
