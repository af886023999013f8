r"""Hyper-parameter sweeps, one training run per point, one results table.

  python -m isovolnet_jax.tools.sweep --config=configs/cifar10.py \
    --sweep=configs/sweeps/activation.py --workdir=runs/sweeps/activation \
    [--config.KEY=VALUE ...]

The sweep file's `get_sweep()` returns a list of dicts of dotted config keys,
e.g. [{'model.activation': 'swish', 'seed': 1}, ...]; each is applied on top
of --config and its command-line overrides. A point's `config` key names
another config file to start from (e.g. {'config': 'configs/cifar10_fast_cpu.py'}),
with the same command-line overrides: one sweep can compare models. A point's
`name` key (e.g. {'name': 'iso4_x3', ...}) labels it instead of its keys.
Points run one after another, each in WORKDIR/<its name> (point_names: the
keys that vary over the sweep, seed last, e.g. `activation=swish,seed=1`). A
finished point leaves a result.json there and is skipped when the command is
rerun (so is one whose config matches a result.json in another folder of the
results, e.g. after a rename); an interrupted one has none and resumes from
its checkpoints. After every point
WORKDIR/results.{csv,md,png} and results_curves.png are rewritten
(sweep_report).

--results=DIR (e.g. results/<sweep>, kept in git) receives each finished
point's result.json and metrics.jsonl and the tables instead of WORKDIR, which
then holds only checkpoints: a sweep rerun on a fresh clone skips the points
whose results are committed, and nothing large is committed.

--reuse=DIR[,DIR] (other sweeps' results folders): a point whose whole config
and device count equal a finished point's there copies its files instead of
training, since the same config and seed give the same result bit for bit on
CPU. Seed 003's sweeps share the default point this way: trained once, not
four times.

Results travel between machines: a result.json records its data folder as
data_ref() writes it (relative to the repository when the folder is in it or
beside it, e.g. `../shared/data/cifar10_jpeg`), and the skip and --reuse
compare configs in that form (same_config), never the raw path string.

--seeds=0[,1] trains only the points with those seeds and leaves the others
for a later run (finished ones still fill the tables): with seed-major sweep
files, `--seeds=0` screens every sweep of a plan before any is repeated.
"""

import json
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from isovolnet_jax import cli

if __name__ == '__main__':
  cli.use_tcmalloc()  # Before JAX starts.

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np

from isovolnet_jax import checkpointing
from isovolnet_jax import config_defaults
from isovolnet_jax import logs
from isovolnet_jax import train
from isovolnet_jax.errors import InputError
from isovolnet_jax.tools import sweep_report
from isovolnet_jax.tools.sweep_report import LABEL, format_value

RESULT = 'result.json'
MAX_NAME = 80  # Characters of a point's directory name; longer: give it a `name`.
# The checkout this module runs from (an editable install: the repository);
# not resolved, as data_ref does not resolve the paths it compares with it.
REPO_ROOT = Path(os.path.abspath(__file__)).parents[2]

# ---------------------------------------------------------------- sweep files


def load_sweep(path: str | Path) -> list[dict[str, Any]]:
  """The list of override dicts that the file's get_sweep() returns."""
  path = Path(path)
  if not path.is_file():
    raise InputError(f'sweep file {path} does not exist')
  module = config_defaults.load_module(path)
  if not hasattr(module, 'get_sweep'):
    raise InputError(f'sweep file {path} has no get_sweep() function')
  points = list(module.get_sweep())
  for i, point in enumerate(points):
    if not isinstance(point, Mapping) or not all(isinstance(k, str) for k in point):
      raise InputError(f'sweep point {i} of {path} is {point!r}; each point must '
                       f"be a dict of dotted config keys, e.g. {{'seed': 1}}")
  if not points:
    raise InputError(f'sweep file {path}: get_sweep() returned no points')
  return [dict(p) for p in points]


def _safe(text: str) -> str:
  return re.sub(r'[^A-Za-z0-9._+-]', '_', text)


def _varied_keys(points: Sequence[Mapping[str, Any]]) -> set[str]:
  """Keys whose value (absent counts as one) differs between points; all of a
  single point's. `seed` is always kept: it tells runs apart across sweeps."""
  keys = {k for p in points for k in p} - {LABEL}
  if len(points) == 1:
    return keys
  return {k for k in keys if k == 'seed' or
          len({(k in p, repr(p.get(k))) for p in points}) > 1}


def point_names(points: Sequence[Mapping[str, Any]]) -> list[str]:
  """Each point's directory name: `key=value,...` of the keys that vary over
  the sweep, sorted, seed last; or the point's `name` label, then its seed.

  A key is written by its last part (`activation`, not `model.activation`)
  unless two varied keys share it; `config` by its file's stem. Keys that are
  the same in every point say nothing and are left out; a value computed per
  point (e.g. a time budget's num_train_steps) is better given a `name`.
  """
  varied = _varied_keys(points)
  leaves = [k.rsplit('.', 1)[-1] for k in varied]
  short = {k: k.rsplit('.', 1)[-1] if leaves.count(k.rsplit('.', 1)[-1]) == 1 else k
           for k in varied}
  names = []
  for point in points:
    if LABEL in point:
      parts = [_safe(str(point[LABEL]))]
    else:
      parts = [f'{short[k]}={_safe(Path(v).stem if k == "config" else format_value(v))}'
               for k, v in sorted(point.items()) if k in varied and k != 'seed']
    if 'seed' in point:  # Innermost: the points of one group sort together.
      parts.append(f'seed={point["seed"]}')
    names.append(','.join(parts) or 'base')
  return names


def data_ref(path: str, root: str | Path | None = None) -> str:
  """A data folder as every checkout of the repository can name it.

  A path inside the repository or beside it (one `..`, e.g. the shared
  `../shared/data/cifar10_jpeg`) becomes relative to the repository root,
  normalised; another local path stays absolute (it names a machine's folder,
  which a relative path would not make portable); '' and URLs (gs://) are
  kept. A relative path is read from the current directory, as training reads
  it. Chosen over a content digest: hashing 60,000 files per comparison is
  slow, and the README's commands already name the folder this way.
  """
  if not path or '://' in path:
    return path
  root = os.path.abspath(root or REPO_ROOT)
  absolute = os.path.normpath(os.path.abspath(os.path.expanduser(path)))
  rel = Path(os.path.relpath(absolute, root))
  return rel.as_posix() if rel.parts.count('..') <= 1 else absolute


def portable_config(config_dict: Mapping[str, Any],
                    root: str | Path | None = None) -> dict:
  """The config as a result.json stores it: its data folders as data_ref, and
  no cache folder (where decoded images are cached does not change a result)."""
  config_dict = json.loads(json.dumps(config_dict))
  data = config_dict.get('data')
  if isinstance(data, dict):
    for key in ('path', 'tfds_data_dir'):
      if isinstance(data.get(key), str):
        data[key] = data_ref(data[key], root)
    if 'cache_dir' in data:
      data['cache_dir'] = ''
  return config_dict


def same_config(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
  """Whether two configs are the same run: equal in portable_config's form,
  i.e. whatever the path string that named the same data folder, with an
  older result's retired keys in today's terms (eval_flip -> eval_tta)."""
  a, b = portable_config(a), portable_config(b)
  config_defaults.upgrade_retired(a)
  config_defaults.upgrade_retired(b)
  return a == b


def point_configs(config: ml_collections.ConfigDict, points: list[dict],
                  cli_overrides: Mapping[str, Any] | None = None
                  ) -> list[ml_collections.ConfigDict]:
  """Every point's config, checked before anything trains.

  A point's `config` (a config file path) replaces `config` as its base, with
  `cli_overrides` (the command line's --config.KEY=VALUE) applied to it.
  """
  configs = []
  for i, point in enumerate(points):
    try:
      point = dict(point)
      point.pop(LABEL, None)
      base = config
      if 'config' in point:
        path = Path(point.pop('config'))
        if not path.is_file():
          raise InputError(f'config file {path} does not exist')
        base = config_defaults.apply_overrides(config_defaults.load_config_file(path),
                                        cli_overrides)
      configs.append(config_defaults.apply_overrides(base, point))
      config_defaults.check(configs[-1])  # Every point before the first trains.
    except InputError as e:
      raise InputError(f'sweep point {i} {point}: {e}') from None
  names = point_names(points)
  for i, name in enumerate(names):
    if names.index(name) != i:
      raise InputError(f'sweep points {names.index(name)} and {i} have the same '
                       f'overrides (directory {name!r}); remove one')
    if len(name) > MAX_NAME:
      raise InputError(f'sweep point {i}: its directory name {name!r} has {len(name)} '
                       f"characters (at most {MAX_NAME}); give it a short 'name'")
  return configs


# ---------------------------------------------------------------- running


def params_and_step(workdir: str | Path) -> tuple[int, int]:
  """Parameter count and step of the run's newest checkpoint."""
  run = checkpointing.load_run(workdir)
  return int(sum(np.size(x) for x in jax.tree.leaves(run.variables['params']))), run.step


def _write_json(path: Path, obj):
  tmp = path.with_suffix('.tmp')
  tmp.write_text(json.dumps(obj, indent=2))
  os.replace(tmp, path)  # Atomic: a killed sweep leaves no half result.


def run_sweep(config: ml_collections.ConfigDict, points: list[dict],
              workdir: str | Path, results_dir: str | Path | None = None,
              cli_overrides: Mapping[str, Any] | None = None,
              reuse: Sequence[str | Path] = (),
              seeds: Sequence[int] | None = None) -> list[dict]:
  """Trains every point not yet done; writes and returns the results rows.

  Results (each point's result.json and metrics.jsonl, and the tables) go to
  `results_dir`, the workdir if None; a point is done if its result.json is there.
  A point whose whole config, device count included, equals a finished point's
  in one of the `reuse` results folders takes that point's files instead of
  training again (same config and seed give the same result bit for bit on
  CPU); its row says `reused_from`. With `seeds`, a point not done whose
  config's seed is not in it is left out: not trained, no row.

  A point that fails with an InputError (e.g. a learning rate that diverges)
  is recorded as failed and the sweep goes on; the error is raised at the end.
  SIGTERM/SIGINT stop the point with a checkpoint (train.Preempted) and the sweep.
  """
  workdir = Path(workdir)
  results_dir = Path(results_dir) if results_dir else workdir
  configs = point_configs(config, points, cli_overrides)
  workdir.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    results_dir.mkdir(parents=True, exist_ok=True)
    # A second sweep in the same workdir would race this one point by point.
    with checkpointing.WorkdirLock(workdir):
      return _run_points(points, configs, workdir, results_dir, True, reuse, seeds)
  return _run_points(points, configs, workdir, results_dir, False, reuse, seeds)


def find_same_run(config_dict: dict, reuse: Sequence[str | Path],
                  any_devices: bool = False) -> Path | None:
  """A finished point of the `reuse` folders with this config (same_config) on
  as many devices, or on any number with `any_devices`."""
  for folder in reuse:
    for path in sorted(Path(folder).glob(f'*/{RESULT}')):
      row = json.loads(path.read_text())
      if (row.get('config') and not row.get('error')
          and (any_devices or row.get('devices') == jax.device_count())
          and same_config(row['config'], config_dict)):
        return path.parent
  return None


def _run_points(points, configs, workdir: Path, results_dir: Path,
                is_main: bool, reuse: Sequence[str | Path] = (),
                seeds: Sequence[int] | None = None) -> list[dict]:
  rows, failed = [], []
  for i, (point, name, cfg) in enumerate(zip(points, point_names(points), configs)):
    sub, out = workdir / name, results_dir / name
    config_dict = portable_config(json.loads(cfg.to_json_best_effort()))
    if not (out / RESULT).exists():  # Done under another name (a renamed point)?
      out = find_same_run(config_dict, [results_dir], any_devices=True) or out
    same = None if (out / RESULT).exists() else find_same_run(config_dict, reuse)
    if same:
      logging.info('Point %d/%d %s: the same run is in %s, reused.', i + 1,
                   len(points), name, same)
      row = json.loads((same / RESULT).read_text())
      # <sweep>/<point>: the same on every machine, wherever results/ lies.
      row.update(name=name, overrides=point, reused_from=f'{same.parent.name}/{same.name}',
                 config=portable_config(row['config']))
      if is_main:
        out.mkdir(parents=True, exist_ok=True)
        for f in ('metrics.jsonl', 'dataset.json'):
          if (same / f).exists():  # Older results may lack dataset.json.
            shutil.copyfile(same / f, out / f)
        _write_json(out / RESULT, row)
      row.pop('config')
      rows.append(row)
    elif (out / RESULT).exists():
      logging.info('Point %d/%d %s: done before (%s), skipped.', i + 1, len(points),
                   name, out.name)
      row = json.loads((out / RESULT).read_text())
      changed = _diff(portable_config(row.pop('config', {})), config_dict)
      if changed:
        logging.warning('Point %s was trained with other values of %s than the '
                        'config now asks for; its results are the old run\'s '
                        '(delete %s to retrain it).', name, changed, out / RESULT)
      rows.append(row)
    elif seeds is not None and cfg.seed not in seeds:
      logging.info('Point %d/%d %s: seed %d is not in --seeds, left for later.',
                   i + 1, len(points), name, cfg.seed)
      continue
    else:
      logging.info('Point %d/%d %s: training in %s', i + 1, len(points), name, sub)
      row = {'name': name, 'overrides': point}
      t0 = time.time()
      try:
        final = train.train_and_evaluate(cfg, sub)
      except InputError as e:
        logging.error('Point %s failed: %s', name, e)
        failed.append(f'{name}: {e}')
        rows.append({**row, 'error': str(e)})
      else:
        # Wall time of this call: data loading, compiling and evaluation
        # included, and only the last part of a point that was resumed.
        row['train_time_s'] = round(time.time() - t0, 1)
        for split in ('val', 'test'):
          for k in ('accuracy', 'loss'):
            row[f'{split}_{k}'] = final.get(split, {}).get(k)
        row['params'], row['step'] = params_and_step(sub)
        row['devices'] = jax.device_count()  # find_same_run compares it.
        if is_main:  # The config too, to notice a rerun that changed it.
          out.mkdir(parents=True, exist_ok=True)
          if out != sub:  # The learning curve, for plots of accuracy vs epochs.
            for f in ('metrics.jsonl', 'dataset.json'):
              shutil.copyfile(sub / f, out / f)
          _write_json(out / RESULT, {**row, 'config': config_dict})
        rows.append(row)
    if is_main:
      sweep_report.write_results(results_dir, rows)
  if failed:
    raise InputError(f'{len(failed)} of {len(points)} sweep points failed '
                     f'(rerun to retry them): ' + ' | '.join(failed))
  return rows


def _diff(a: dict, b: dict, prefix: str = '') -> list[str]:
  """Dotted keys whose values differ between two nested dicts."""
  keys = []
  for k in sorted(set(a) | set(b)):
    if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
      keys += _diff(a[k], b[k], f'{prefix}{k}.')
    elif a.get(k) != b.get(k):
      keys.append(f'{prefix}{k}')
  return keys


# ---------------------------------------------------------------- command line

FLAGS = flags.FLAGS


def define_flags():
  cli.define_flags(workdir='Directory for the points\' runs '
                   '(checkpoints) and, without --results, the results.', devices=True)
  flags.DEFINE_string('sweep', None, 'Python file whose get_sweep() lists the points.')
  flags.DEFINE_string('results', None, 'Folder for the results (result.json and '
                      'metrics.jsonl per point, tables); default: --workdir.')
  flags.DEFINE_list('reuse', [], 'Results folders of other sweeps: a point whose '
                    'config equals a finished point there copies its results '
                    'instead of training (e.g. the default point of each sweep).')
  flags.DEFINE_list('seeds', None, 'Train only the points with these seeds (e.g. 0 '
                    'to screen every sweep first); default: all.')
  flags.mark_flag_as_required('sweep')


def _int_list(values: list[str] | None, flag: str) -> list[int] | None:
  if values is None:
    return None
  try:
    return [int(v) for v in values]
  except ValueError:
    raise InputError(f'{flag}={",".join(values)}: give integers, e.g. {flag}=0,1') from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logs.quiet_orbax()
  overrides = config_flags.get_override_values(FLAGS['config'])
  points = load_sweep(FLAGS.sweep)
  # The CPU devices must split every point's batch (cli: their gcd decides).
  cli.setup_devices(point_configs(FLAGS.config, points, overrides))
  rows = run_sweep(FLAGS.config, points, FLAGS.workdir, FLAGS.results, overrides,
                   FLAGS.reuse, _int_list(FLAGS.seeds, '--seeds'))
  logging.info('%d points; results in %s', len(rows),
               Path(FLAGS.results or FLAGS.workdir, 'results.md'))


if __name__ == '__main__':
  define_flags()
  cli.run(main)
