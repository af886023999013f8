"""Logging: Orbax's log filter for the commands, and a run's metric log."""

import json
import logging
from pathlib import Path

import jax


class _QuietOrbax(logging.Filter):
  """Orbax logs a dozen INFO lines per save or restore, and warns on every
  read-only restore; keep only its warnings that tell a user something."""

  def __init__(self, min_level: int):
    super().__init__()
    self.min_level = min_level

  def filter(self, record):
    if '/orbax/' not in record.pathname:
      return True
    message = record.getMessage()
    if 'read_only' in message or 'read only' in message:
      return False
    if 'tracked_metric' in message:
      # Checkpoints saved off the evaluation steps carry no val accuracy; the
      # preservation policy keeps them by recency only, as intended.
      return False
    return record.levelno >= self.min_level


def quiet_orbax(min_level: int = logging.WARNING) -> None:
  """Installs the filter on absl's logger (which Orbax logs through), once."""
  logger = logging.getLogger('absl')
  if not any(isinstance(f, _QuietOrbax) for f in logger.filters):
    logger.addFilter(_QuietOrbax(min_level))


class MetricLog:
  """WORKDIR/metrics.jsonl and TensorBoard events, written by process 0.

  Nothing goes to the console here: the training loop logs one progress line
  per log step itself (clu's LoggingWriter would repeat it).
  """

  def __init__(self, workdir: Path):
    # Imported here: clu's writers import TensorFlow, which `predict` (and its
    # import of this module) starts without.
    from clu import metric_writers  # pylint: disable=import-outside-toplevel
    self.is_main = jax.process_index() == 0
    self.writer = metric_writers.SummaryWriter(str(workdir)) if self.is_main else None
    self.path = workdir / 'metrics.jsonl'

  def write(self, step: int, split: str, metrics: dict):
    if not self.is_main:
      return
    metrics = {k: float(v) for k, v in metrics.items()}
    self.writer.write_scalars(step, {f'{split}/{k}': v for k, v in metrics.items()})
    with self.path.open('a') as f:
      f.write(json.dumps({'step': step, 'split': split, **metrics}) + '\n')

  def close(self):
    if self.writer is not None:
      self.writer.flush()
      self.writer.close()
