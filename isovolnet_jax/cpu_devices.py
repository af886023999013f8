"""One JAX CPU device per core, so data parallelism uses every core.

XLA's CPU backend gives a process one device whose convolutions keep only
~1.3 of 2 cores busy. Split into one device per core and fed a slice of the
batch each (the usual `data` mesh axis), training uses every core
(docs/performance.md, "One CPU device per core"). This must be set before JAX starts its backends, so the commands call it
first thing (`cli.setup_devices`). It changes nothing on GPU or TPU, where the
CPU backend is unused.
"""

import os

import jax

_FORCE_FLAG = '--xla_force_host_platform_device_count'


def usable_cores() -> int:
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # Not Linux.
    return os.cpu_count() or 1


def device_count_for(batch_size: int, cores: int) -> int:
  """The most devices, at most one per core, that split the batch evenly."""
  return max(d for d in range(1, max(1, cores) + 1) if batch_size % d == 0)


def configure(requested: int, batch_size: int) -> int | None:
  """Sets jax_num_cpu_devices; returns the count set (None: left alone).

  requested: -1 = one per usable core (as many as divide batch_size),
  0 = JAX's default (one device), N > 0 = N devices.
  An XLA_FLAGS that already sets the host device count wins.
  """
  if _FORCE_FLAG in os.environ.get('XLA_FLAGS', '') or requested == 0:
    return None
  n = requested if requested > 0 else device_count_for(batch_size, usable_cores())
  jax.config.update('jax_num_cpu_devices', n)
  return n
