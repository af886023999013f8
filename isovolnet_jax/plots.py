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


def curves(workdir: str | Path, steps_per_epoch: int) -> dict[str, dict[str, list]]:
  """{split: {'loss' | 'accuracy': [(epoch, value)]}} for train and val.

  The train loss is the one without label smoothing (`loss_unsmoothed`, logged
  when `label_smoothing` > 0), as the validation loss is measured, so the two
  curves compare. A resumed run appends to metrics.jsonl; for a step logged
  twice the later line wins.
  """
  rows: dict[str, dict[int, dict]] = {'train': {}, 'val': {}}
  for row in read_metrics(workdir):
    if row['split'] in rows:
      rows[row['split']][row['step']] = row
  return {split: {key: [(s / steps_per_epoch,
                         by_step[s].get(f'{key}_unsmoothed', by_step[s][key]))
                        for s in sorted(by_step)]
                  for key in ('loss', 'accuracy')}
          for split, by_step in rows.items()}


def learning_curves(workdir: str | Path, steps_per_epoch: int) -> Path:
  """Train vs validation loss and accuracy per epoch -> WORKDIR/learning_curves.png."""
  series = curves(workdir, steps_per_epoch)
  fig = Figure(figsize=(10, 4))
  axes = fig.subplots(1, 2)
  for ax, key in zip(axes, ('loss', 'accuracy')):
    for split, points in series.items():
      ax.plot([e for e, _ in points[key]], [v for _, v in points[key]],
              marker='o' if split == 'val' else None, label=split)
    ax.set_xlabel('epoch')
    ax.set_ylabel('loss (no label smoothing)' if key == 'loss' else key)
    ax.grid(alpha=0.3)
    ax.legend()
  fig.suptitle(Path(workdir).name)
  fig.tight_layout()
  out = Path(workdir, 'learning_curves.png')
  fig.savefig(out, dpi=100)
  return out
