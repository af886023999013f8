"""One JAX CPU device per core, so data parallelism uses every core.

XLA's CPU backend gives a process one device whose convolutions keep only
~1.3 of 2 cores busy. Split into one device per core and fed a slice of the
batch each (the usual `data` mesh axis), training uses every core
(docs/performance.md, "One CPU device per core"). This must be set before JAX starts its backends, so the commands call it
first thing (`cli.setup_devices`). It changes nothing on GPU or TPU, where the
CPU backend is unused.
"""

import functools
import os

import jax

_FORCE_FLAG = '--xla_force_host_platform_device_count'


def _affinity() -> set[int] | None:
  try:
    return set(os.sched_getaffinity(0))
  except AttributeError:  # Not Linux.
    return None


def usable_cores() -> int:
  """Logical CPUs this process may run on (hyper-threads counted apiece)."""
  cpus = _affinity()
  return len(cpus) if cpus is not None else (os.cpu_count() or 1)


def _parse_cpu_list(text: str) -> frozenset[int]:
  """'0-3,8,10-11' (sysfs's cpulist format) -> {0, 1, 2, 3, 8, 10, 11}."""
  cpus = set()
  for part in text.strip().split(','):
    if not part:
      continue
    lo, _, hi = part.partition('-')
    cpus.update(range(int(lo), int(hi or lo) + 1))
  return frozenset(cpus)


@functools.cache
def _core_of(cpu: int, sysfs: str):
  """What identifies `cpu`'s physical core: its thread_siblings_list (the
  logical CPUs sharing the core), else (physical_package_id, core_id); None
  where sysfs says neither. Read once a process: the topology does not change,
  and `physical_cores` runs each time a oneDNN conv is traced."""
  topology = os.path.join(sysfs, f'cpu{cpu}', 'topology')
  try:
    with open(os.path.join(topology, 'thread_siblings_list')) as f:
      siblings = _parse_cpu_list(f.read())
    if siblings:
      return ('siblings', siblings)
  except (OSError, ValueError):
    pass
  try:
    with open(os.path.join(topology, 'physical_package_id')) as f:
      package = int(f.read())
    with open(os.path.join(topology, 'core_id')) as f:
      return ('core', package, int(f.read()))
  except (OSError, ValueError):
    return None


def physical_cores(cpus=None, sysfs: str = '/sys/devices/system/cpu') -> int:
  """Physical cores this process may run on: the logical CPUs of its affinity
  mask (`cpus`, for the tests), one counted per core (Linux sysfs topology);
  `usable_cores()` where the topology of any of them cannot be read.

  What the oneDNN convolutions size their threads by: two threads on the two
  hyper-threads of one core share its vector units, and oneDNN's kernels are
  bound by those.
  """
  cpus = _affinity() if cpus is None else set(cpus)
  if not cpus:
    return usable_cores()
  cores = set()
  for cpu in cpus:
    core = _core_of(cpu, sysfs)
    if core is None:
      return len(cpus)
    cores.add(core)
  return max(1, len(cores))


def device_count_for(batch_size: int, cores: int) -> int:
  """The most devices, at most one per core, that split the batch evenly."""
  return max(d for d in range(1, max(1, cores) + 1) if batch_size % d == 0)


def configure(requested: int, batch_size: int) -> int | None:
  """Sets jax_num_cpu_devices; returns the count set (None: left alone).

  requested: -1 = one per physical core this process may use (as many as
  divide batch_size; hyper-threads are not counted: two devices on one core
  would share its vector units, and each device's oneDNN calls size their
  threads by physical cores too),
  0 = JAX's default (one device), N > 0 = N devices.
  An XLA_FLAGS that already sets the host device count wins.
  """
  if _FORCE_FLAG in os.environ.get('XLA_FLAGS', '') or requested == 0:
    return None
  n = requested if requested > 0 else device_count_for(batch_size, physical_cores())
  jax.config.update('jax_num_cpu_devices', n)
  return n
