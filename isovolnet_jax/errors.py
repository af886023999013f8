"""The exception types the command-line entry points turn into exit statuses.

`cli.run` prints an `InputError` as one line and exits with status 2, and a
`Preempted` with 128 + the signal; everything else keeps its traceback,
because it is a bug rather than a bad flag or a bad file.
"""


class InputError(ValueError):
  """Bad config, data or checkpoint; the message names the fix."""


class Preempted(Exception):
  """SIGTERM/SIGINT arrived: a checkpoint was saved; rerun to resume."""

  def __init__(self, step: int, signum: int):
    super().__init__(f'stopped by signal {signum} at step {step}; the checkpoint '
                     f'is saved, rerun the same command to resume')
    self.step, self.signum = step, signum
