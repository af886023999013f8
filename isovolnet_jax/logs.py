"""Logging set-up shared by the command-line entry points."""

import logging


class _QuietOrbax(logging.Filter):
  """Orbax logs a dozen INFO lines per save or restore, and warns on every
  read-only restore; keep only its warnings that tell a user something."""

  def __init__(self, min_level: int):
    super().__init__()
    self.min_level = min_level

  def filter(self, record):
    if '/orbax/' not in record.pathname:
      return True
    if 'read_only' in record.getMessage() or 'read only' in record.getMessage():
      return False
    return record.levelno >= self.min_level


def quiet_orbax(min_level: int = logging.WARNING) -> None:
  """Installs the filter on absl's logger (which Orbax logs through), once."""
  logger = logging.getLogger('absl')
  if not any(isinstance(f, _QuietOrbax) for f in logger.filters):
    logger.addFilter(_QuietOrbax(min_level))
