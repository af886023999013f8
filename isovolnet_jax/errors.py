"""The one exception type for bad user input.

`main` (and the other command-line entry points) print an `InputError` as one
line and exit non-zero; everything else keeps its traceback, because it is a
bug rather than a bad flag or a bad file.
"""


class InputError(ValueError):
  """Bad config, data or checkpoint; the message names the fix."""
