"""A sweep's tables and plots, from its points' rows and metrics.jsonl.

RESULTS_DIR/results.csv (one row per point), results_grouped.csv and
results.md (mean +- sample std over the points that differ only in `seed`),
results.png (test accuracy per group) and results_curves.png (validation
accuracy vs epoch per group: whether a ranking read at the end of a budget
was still changing). `tools.sweep` rewrites them after every point.
"""

import csv
import json
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

METRICS = ('val_accuracy', 'test_accuracy', 'val_loss', 'test_loss')
LABEL = 'name'  # A sweep point's optional label, used as its directory name.


def format_value(value: Any) -> str:
  """A config value as point names and tables write it (floats by repr)."""
  return repr(value) if isinstance(value, float) else str(value)


def group_name(name: str) -> str:
  """A point's directory name without its seed: the name of its group."""
  return re.sub(r'(^|,)seed=[^,]*$', '', name) or 'base'


def val_curve(point_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
  """(epochs, val accuracy) of one point, or None without val evaluations."""
  metrics, dataset = point_dir / 'metrics.jsonl', point_dir / 'dataset.json'
  result = point_dir / 'result.json'
  if not (metrics.exists() and dataset.exists() and result.exists()):
    return None
  num_train = json.loads(dataset.read_text())['num_train']
  batch = json.loads(result.read_text())['config']['batch_size']
  val = [json.loads(l) for l in metrics.open()]
  val = {r['step']: r['accuracy'] for r in val if r['split'] == 'val'}
  if not val:
    return None
  steps = np.array(sorted(val))
  return steps * batch / num_train, np.array([val[s] for s in steps])


def plot_curves(results_dir: Path, groups: list[dict], labels: list[str],
                path: Path, title: str) -> bool:
  """Writes the plot; False (and no file) when no point has a val curve."""
  fig, ax = plt.subplots(figsize=(7, 4.5))
  drawn = False
  for g, label in zip(groups, labels):
    curves = [c for name in g['points'] if (c := val_curve(results_dir / name))]
    if not curves:
      continue
    n = min(len(c[0]) for c in curves)  # Seeds of a group share their steps.
    x = curves[0][0][:n]
    ys = np.stack([c[1][:n] for c in curves])
    mean = ys.mean(0)
    line, = ax.plot(x, mean, marker='.', label=f'{label.replace(chr(10), " ")} (n={len(ys)})')
    if len(ys) > 1:
      std = ys.std(0, ddof=1)
      ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    drawn = True
  if drawn:
    ax.set_xlabel('epochs')
    ax.set_ylabel('validation accuracy')
    ax.set_title(f'{title}: validation accuracy during training')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
  plt.close(fig)
  return drawn


# ---------------------------------------------------------------- results


def _override_keys(rows: list[dict]) -> list[str]:
  keys = []
  for row in rows:
    keys += [k for k in row['overrides'] if k not in keys and k != LABEL]
  return keys


def group_rows(rows: list[dict]) -> list[dict]:
  """Successful points grouped by their overrides without `seed`."""
  groups: dict[str, dict] = {}
  for row in rows:
    if row.get('error'):
      continue
    rest = {k: v for k, v in row['overrides'].items() if k != 'seed'}
    key = json.dumps(rest, sort_keys=True, default=str)
    g = groups.setdefault(key, {'name': group_name(row['name']), 'overrides': rest,
                                'rows': []})
    g['rows'].append(row)
  out = []
  for g in groups.values():
    stats = {'name': g['name'], 'overrides': g['overrides'], 'n': len(g['rows']),
             'seeds': [r['overrides'].get('seed') for r in g['rows']],
             'points': [r['name'] for r in g['rows']]}
    for k in (*METRICS, 'params', 'train_time_s'):
      values = np.array([r[k] for r in g['rows'] if r.get(k) is not None], float)
      stats[k] = float(values.mean()) if len(values) else None
      # Sample std (ddof=1): the spread a new seed would show; 0 for one seed.
      stats[f'{k}_std'] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    out.append(stats)
  return out


def _fmt(v, digits=4) -> str:
  if v is None:
    return ''
  if isinstance(v, float):  # A diverged loss would print 40 digits.
    return f'{v:.{digits}f}' if abs(v) < 1e4 else f'{v:.3g}'
  return str(v)


def _md_cell(text: str) -> str:
  return text.replace('|', '/').replace('\n', ' ')


def _md_table(header: list[str], rows: list[list[str]]) -> str:
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
  return '\n'.join(lines)


def write_results(workdir: Path, rows: list[dict]):
  """WORKDIR/results.csv, results_grouped.csv, results.md and the plots."""
  groups = write_tables(workdir, rows)
  plot_groups(groups, workdir / 'results.png', workdir.name)
  plot_curves(workdir, groups, _short_labels(groups),
              workdir / 'results_curves.png', workdir.name)


def write_tables(workdir: Path, rows: list[dict]) -> list[dict]:
  """WORKDIR/results.csv, results_grouped.csv and results.md; returns the groups."""
  keys = _override_keys(rows)
  columns = ['name', *keys, *METRICS, 'params', 'train_time_s', 'step', 'error',
             'reused_from']
  with (workdir / 'results.csv').open('w', newline='') as f:
    w = csv.writer(f)
    w.writerow(columns)
    for r in rows:
      w.writerow([r['overrides'].get(k, '') if k in keys else
                  ('' if r.get(k) is None else r.get(k)) for k in columns])

  groups = group_rows(rows)
  gcols = ['name', 'n', *[c for k in (*METRICS, 'params', 'train_time_s')
                          for c in (k, f'{k}_std')]]
  with (workdir / 'results_grouped.csv').open('w', newline='') as f:
    w = csv.writer(f)
    w.writerow(gcols)
    for g in groups:
      w.writerow(['' if g[c] is None else g[c] for c in gcols])

  def pm(g, k, digits=4):
    if g[k] is None:
      return ''
    return _fmt(g[k], digits) + (f' ± {g[k + "_std"]:.{digits}f}' if g['n'] > 1 else '')

  per_point = _md_table(
      [*keys, 'val acc', 'test acc', 'val loss', 'test loss', 'params', 'time (s)',
       'step'],
      [[format_value(r['overrides'].get(k, '')) for k in keys] +
       ([_fmt(r.get(k)) for k in METRICS] +
        [f'{r["params"]:,}', _fmt(r['train_time_s'], 0), str(r.get('step'))]
        if not r.get('error') else [_md_cell(f'failed: {r["error"]}')] + [''] * 6)
       for r in rows])
  grouped = _md_table(
      ['group', 'seeds', 'val acc', 'test acc', 'test loss', 'params', 'time (s)'],
      [[g['name'], ','.join(map(str, g['seeds'])), pm(g, 'val_accuracy'),
        pm(g, 'test_accuracy'), pm(g, 'test_loss'), f'{int(g["params"]):,}',
        pm(g, 'train_time_s', 0)] for g in groups])
  (workdir / 'results.md').write_text(
      f'# Sweep {workdir.name}\n\n## Points\n\n{per_point}\n\n'
      f'## Mean ± std over seeds (sample std, ddof=1)\n\n{grouped}\n')
  return groups


def _short_labels(groups: list[dict]) -> list[str]:
  """Only the keys whose values differ between groups, without their prefix."""
  if any(LABEL in g['overrides'] for g in groups):
    return [g['name'] for g in groups]
  keys = {k for g in groups for k in g['overrides']}
  varying = [k for k in sorted(keys)
             if len({format_value(g['overrides'].get(k)) for g in groups}) > 1]
  return ['\n'.join(f'{k.rsplit(".", 1)[-1]}={format_value(g["overrides"][k])}'
                    for k in varying if k in g['overrides']) or g['name']
          for g in groups]


def plot_groups(groups: list[dict], path: Path, title: str):
  """Test accuracy per group: bars at the mean, error bars one std."""
  fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(groups) + 1), 4))
  if groups:
    x = np.arange(len(groups))
    means = [g['test_accuracy'] or 0.0 for g in groups]
    ax.bar(x, means, yerr=[g['test_accuracy_std'] for g in groups], capsize=4,
           color='tab:blue', alpha=0.8)
    for xi, g, m in zip(x, groups, means):
      ax.text(xi, m / 2, f'{m:.3f}\nn={g["n"]}', ha='center', va='center',
              color='white', fontsize=8)
    ax.set_xticks(x, _short_labels(groups), fontsize=8)
  ax.set_ylabel('test accuracy')
  ax.set_title(f'{title}: mean ± std over seeds')
  ax.grid(axis='y', alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
