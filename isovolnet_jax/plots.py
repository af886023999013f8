"""Learning curves from WORKDIR/metrics.jsonl (matplotlib, no display needed)."""

import json
from pathlib import Path

# Figure, not pyplot: no backend switch, so notebooks keep their inline plots.
from matplotlib.figure import Figure


def read_metrics(workdir: str | Path) -> list[dict]:
  path = Path(workdir, 'metrics.jsonl')
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def learning_curves(workdir: str | Path, steps_per_epoch: int) -> Path:
  """Train vs validation loss and accuracy per epoch -> WORKDIR/learning_curves.png.

  A resumed run appends to metrics.jsonl; for a step logged twice the later
  line wins.
  """
  series: dict[str, dict[int, dict]] = {'train': {}, 'val': {}}
  for row in read_metrics(workdir):
    if row['split'] in series:
      series[row['split']][row['step']] = row
  fig = Figure(figsize=(10, 4))
  axes = fig.subplots(1, 2)
  for ax, key in zip(axes, ('loss', 'accuracy')):
    for split, rows in series.items():
      steps = sorted(rows)
      ax.plot([s / steps_per_epoch for s in steps], [rows[s][key] for s in steps],
              marker='o' if split == 'val' else None, label=split)
    ax.set_xlabel('epoch')
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    ax.legend()
  fig.suptitle(Path(workdir).name)
  fig.tight_layout()
  out = Path(workdir, 'learning_curves.png')
  fig.savefig(out, dpi=100)
  return out
