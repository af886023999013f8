"""A sweep's learning curves: validation accuracy vs epoch, one line per group.

Shows whether a ranking read at the end of a budget was still changing: the
curves of points that differ only in `seed` are averaged (band: one std).
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np


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
