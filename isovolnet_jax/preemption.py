"""Stopping a run cleanly: SIGTERM/SIGINT and the wall-time budget.

Both are acted on by the training loop at a step boundary (checkpoint, then
`errors.Preempted` or the final evaluation); with several hosts every process
takes process 0's answer, at log steps, so all of them stop at the same step.
"""

import signal
import time

import jax
import numpy as np
from jax.experimental import multihost_utils


class Signals:
  """Records SIGTERM/SIGINT (preemption, Ctrl-C) for the loop to act on."""

  def __init__(self):
    self.received = None

  def __enter__(self):
    self.previous = {s: signal.signal(s, self._handle)
                     for s in (signal.SIGTERM, signal.SIGINT)}
    return self

  def _handle(self, signum, frame):
    del frame
    self.received = signum

  def __exit__(self, *exc):
    for s, handler in self.previous.items():
      signal.signal(s, handler)


def agreed_signal(signals: Signals, step: int, every: int) -> int | None:
  """The stop signal, if any; with several hosts, process 0's, at log steps."""
  if jax.process_count() == 1:
    return signals.received
  if step % every:
    return None
  got = multihost_utils.broadcast_one_to_all(np.asarray(signals.received or 0))
  return int(got) or None


def out_of_time(t_start: float, limit_minutes: float) -> bool:
  """Whether the time budget is spent; every host takes process 0's answer."""
  if limit_minutes <= 0:
    return False
  spent = time.time() - t_start > 60 * limit_minutes
  if jax.process_count() > 1:
    spent = bool(multihost_utils.broadcast_one_to_all(np.asarray(spent)))
  return spent
