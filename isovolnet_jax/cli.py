"""What every command shares: flags, tcmalloc, device set-up, error exits.

A command module does, before importing JAX:

  from isovolnet_jax import cli
  if __name__ == '__main__':
    cli.use_tcmalloc()

then defines its own flags next to `cli.define_flags(...)` and ends with
`cli.run(main)`. Bad input (an `InputError`, a bad flag, an unknown
`--config.KEY`) ends as one line `error: ...` on stderr and exit status 2; a
preempted training run (SIGTERM/SIGINT) exits with 128 + the signal.

This module imports no JAX at load time: `use_tcmalloc` must run first.
"""

import ctypes.util
import math
import os
import sys

from absl import app
from absl import flags

from isovolnet_jax.errors import InputError, Preempted

FLAGS = flags.FLAGS
COMPILATION_CACHE = 'ISOVOLNET_COMPILATION_CACHE'  # =0: no persistent compilation cache.
NO_TCMALLOC = 'ISOVOLNET_NO_TCMALLOC'  # =1: never preload tcmalloc.
_REEXECED = '_ISOVOLNET_TCMALLOC_REEXEC'  # Set on the re-exec'ed process: no loop.

# ---------------------------------------------------------------- tcmalloc


def tcmalloc_loaded() -> bool:
  """Whether tcmalloc is mapped into this process (not just named in LD_PRELOAD:
  a preload the loader could not find is skipped with a warning)."""
  try:
    with open('/proc/self/maps') as f:
      return 'libtcmalloc' in f.read()
  except OSError:  # Not Linux.
    return False


def use_tcmalloc(library: str | None = None) -> None:
  """Re-execs this command with tcmalloc preloaded, when it is installed.

  XLA's CPU runtime allocates many buffers per step, which glibc's malloc is
  slow at; tcmalloc makes CPU training and inference much faster
  (docs/performance.md, "tcmalloc"). A preload must be in place when the process starts, so, as
  PyTorch's and Intel's CPU launchers do, the process replaces itself
  (`os.execve`: same PID, stdin/stdout, signals and exit status) with
  LD_PRELOAD set. Call it first thing, before JAX starts. It does nothing when
  tcmalloc is loaded already, is not installed (`apt-get install
  libgoogle-perftools4`), when ISOVOLNET_NO_TCMALLOC=1, or in the re-exec'ed
  process itself (so a preload that does not take cannot loop).
  """
  if (os.environ.get(NO_TCMALLOC, '') not in ('', '0') or os.environ.get(_REEXECED)
      or not sys.platform.startswith('linux') or tcmalloc_loaded()):
    return
  library = library or ctypes.util.find_library('tcmalloc')
  if not library:
    return
  preload = ' '.join(p for p in (os.environ.get('LD_PRELOAD', ''), library) if p)
  env = {**os.environ, 'LD_PRELOAD': preload, _REEXECED: '1'}
  sys.stdout.flush()
  sys.stderr.flush()
  # orig_argv is the interpreter's own command line: `python -m pkg.mod ...`
  # stays a module run, `python -c CODE` stays one.
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


# ---------------------------------------------------------------- flags


def define_flags(*, config: bool = True, workdir: str | None = None,
                 devices: bool = False, lock_config: bool = True) -> None:
  """The shared flags: a required --config file (its keys overridable as
  --config.KEY=VALUE), a required --workdir when `workdir` gives its help
  text, and with `devices` --cpu_devices and the multi-host --jax_* flags."""
  from ml_collections import config_flags  # pylint: disable=import-outside-toplevel
  if config:
    config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py); '
                                    '--config.KEY=VALUE overrides a key.',
                                    lock_config=lock_config)
    flags.mark_flag_as_required('config')
  if workdir:
    flags.DEFINE_string('workdir', None, workdir)
    flags.mark_flag_as_required('workdir')
  if devices:
    _define_device_flags()
  if 'compilation_cache' not in FLAGS:
    flags.DEFINE_bool(
        'compilation_cache', True, 'Keep compiled programs in JAX\'s persistent '
        'compilation cache (DATA_CACHE_DIR/jax_cache) so that a second launch does not '
        f'compile again; {COMPILATION_CACHE}=0 also turns it off.')
  # Key flags of the command (absl files flags under sys.argv[0]), so that
  # its --help lists them with its own.
  for name in ('config', 'workdir', 'compilation_cache', 'cpu_devices', 'jax_coordinator_address',
               'jax_num_processes', 'jax_process_id', 'jax_distributed_auto'):
    if name in FLAGS:
      FLAGS.register_key_flag_for_module(sys.argv[0], FLAGS[name])


def _define_device_flags() -> None:
  flags.DEFINE_integer(
      'cpu_devices', -1, 'JAX CPU devices in this process (ignored on GPU/TPU): '
      '-1 = one per core, as many as split the batch evenly; 0 = JAX\'s default '
      '(one); N = N. An XLA_FLAGS with --xla_force_host_platform_device_count wins.')
  # JAX defines no absl flags for jax.distributed (its own config flags appear
  # only after jax.config.config_with_absl(), which no command calls).
  flags.DEFINE_string('jax_coordinator_address', None,
                      'HOST:PORT of process 0\'s coordinator service (multi-host).')
  flags.DEFINE_integer('jax_num_processes', None,
                       'Number of processes (with --jax_coordinator_address).')
  flags.DEFINE_integer('jax_process_id', None,
                       'This process\'s index in [0, jax_num_processes).')
  flags.DEFINE_bool('jax_distributed_auto', False,
                    'Call jax.distributed.initialize() with no arguments: JAX finds '
                    'the coordinator itself (Cloud TPU pods, SLURM, Open MPI).')


# ---------------------------------------------------------------- devices


def setup_devices(configs) -> None:
  """CPU devices and jax.distributed from the flags, before JAX starts.

  The CPU devices split each process's share of every config's batch (a
  sweep passes all its points: their gcd decides).
  """
  from isovolnet_jax import cpu_devices  # pylint: disable=import-outside-toplevel
  processes = FLAGS.jax_num_processes or 1
  per_process = math.gcd(*(c.batch_size // max(1, c.grad_accum_steps * processes)
                           for c in configs))
  cpu_devices.configure(FLAGS.cpu_devices, max(1, per_process))
  initialize_distributed()


def initialize_distributed() -> None:
  """jax.distributed.initialize from the flags; a no-op with none of them.

  Must run before anything touches the devices. On CPU, JAX's cross-process
  collectives default to gloo (jax_cpu_collectives_implementation), so
  several CPU processes need nothing more.
  """
  address = FLAGS.jax_coordinator_address
  n, pid = FLAGS.jax_num_processes, FLAGS.jax_process_id
  if address is None and n is None and pid is None:
    if FLAGS.jax_distributed_auto:
      _initialize(dict(), 'found by JAX')
    return
  usage = ('--jax_coordinator_address=HOST:PORT --jax_num_processes=N '
           '--jax_process_id=I (0 <= I < N) go together')
  if not address or n is None or pid is None:
    raise InputError(f'{usage}; some are missing')
  if ':' not in address:
    raise InputError(f'--jax_coordinator_address={address!r} needs a port: HOST:PORT')
  if n < 1 or not 0 <= pid < n:
    raise InputError(f'--jax_num_processes={n} --jax_process_id={pid}: {usage}')
  _initialize(dict(coordinator_address=address, num_processes=n, process_id=pid),
              f'coordinator {address}, process {pid} of {n}')


def _initialize(kwargs: dict, where: str) -> None:
  import jax  # pylint: disable=import-outside-toplevel
  try:
    jax.distributed.initialize(**kwargs)
  except Exception as e:  # pylint: disable=broad-except
    first = (str(e).strip().splitlines() or [''])[0][:300]
    raise InputError(f'jax.distributed.initialize ({where}) failed: '
                     f'{type(e).__name__}: {first}') from e


# ---------------------------------------------------------------- compilation cache


def default_cache_dir() -> str:
  """The project's cache dir, as `config.data.cache_dir=''` means it
  (`data.sources.default_cache_dir`): $XDG_CACHE_HOME or ~/.cache, /isovolnet_jax."""
  base = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
  return os.path.join(base, 'isovolnet_jax')


def compilation_cache_wanted() -> bool:
  """Whether the persistent compilation cache is on: --compilation_cache
  (where the command defines it) and ISOVOLNET_COMPILATION_CACHE (0/false/no/off
  turn it off) must both allow it."""
  if os.environ.get(COMPILATION_CACHE, '1').strip().lower() in ('0', 'false', 'no', 'off'):
    return False
  return bool(FLAGS['compilation_cache'].value) if 'compilation_cache' in FLAGS else True


def compilation_cache_dir(data_cache_dir: str = '') -> str:
  """DATA_CACHE_DIR/jax_cache; DATA_CACHE_DIR is `config.data.cache_dir`, ''
  meaning `default_cache_dir()`."""
  return os.path.join(data_cache_dir or default_cache_dir(), 'jax_cache')


class CacheEvents:
  """Persistent-cache hits and misses (JAX's monitoring events
  '/jax/compilation_cache/cache_hits' and '.../cache_misses'; a miss is
  recorded when the compiled program is written), with the names of the
  programs they were for (the training step: 'jit_train_step', or
  'jit_resident_train_step' when the training split is on the devices)."""

  TRAIN_STEPS = frozenset({'jit_train_step', 'jit_resident_train_step'})

  def __init__(self):
    self.hits: list[str] = []
    self.misses: list[str] = []

  def __call__(self, event: str, **kwargs) -> None:
    if event == '/jax/compilation_cache/cache_hits':
      self.hits.append(_compiled_module_name())
      self._announce('hit', self.hits[-1])
    elif event == '/jax/compilation_cache/cache_misses':
      self.misses.append(_compiled_module_name())
      self._announce('missed', self.misses[-1])

  def _announce(self, what: str, module: str) -> None:
    if module in self.TRAIN_STEPS:
      from absl import logging  # pylint: disable=import-outside-toplevel
      import jax  # pylint: disable=import-outside-toplevel
      logging.info('Compilation cache %s for the train step (%s) in %s.', what, module,
                   jax.config.jax_compilation_cache_dir)

  def train_step(self) -> str:
    """'hit', 'miss' or 'not compiled' (the train step's first compilation)."""
    if self.TRAIN_STEPS & set(self.hits):
      return 'hit'
    if self.TRAIN_STEPS & set(self.misses):
      return 'miss'
    return 'not compiled'

  def summary(self) -> str:
    return (f'train step {self.train_step()}; {len(self.hits)} hit(s), '
            f'{len(self.misses)} miss(es) in this process')


def _compiled_module_name() -> str:
  """The name of the program the event is about: JAX passes it to the events'
  listeners in no argument, so it is read from the caller's frames (the
  `module_name` of jax._src.compiler / compilation_cache); '?' if absent."""
  frame = sys._getframe(2)  # pylint: disable=protected-access
  while frame is not None:
    name = frame.f_locals.get('module_name')
    if isinstance(name, str):
      return name
    frame = frame.f_back
  return '?'


_cache_events: CacheEvents | None = None


def setup_compilation_cache(data_cache_dir: str | None = None) -> str | None:
  """Turns on JAX's persistent compilation cache; returns its dir (None: off).

  Every command calls it through `run`, before `main`. The dir is
  `compilation_cache_dir(data_cache_dir)` (by default the --config's
  `data.cache_dir`), unless JAX_COMPILATION_CACHE_DIR names one. Every program is
  cached, however small or quick to compile (both thresholds 0): launch time
  is what is saved. Logs the dir with the train step's hit or miss when it
  compiles and, at the end (`log_compilation_cache`), the process's counts.
  """
  global _cache_events
  if not compilation_cache_wanted():
    return None
  import jax  # pylint: disable=import-outside-toplevel
  if data_cache_dir is None:
    config = FLAGS['config'].value if 'config' in FLAGS else None
    data = getattr(config, 'data', None)  # A ConfigDict (a tool's --config may be a path).
    # A tool's own config may have no data.cache_dir: then the default dir.
    data_cache_dir = data['cache_dir'] if data is not None and 'cache_dir' in data else ''
  path = jax.config.jax_compilation_cache_dir or compilation_cache_dir(data_cache_dir)
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', -1)
  if _cache_events is None:
    _cache_events = CacheEvents()
    jax.monitoring.register_event_listener(_cache_events)
  # No start-up line: a command's stderr may be one error line (predict,
  # summary); the train step's hit or miss names the dir.
  return path


def log_compilation_cache() -> None:
  """The finish line: the train step's hit or miss, and the counts."""
  if _cache_events is not None and (_cache_events.hits or _cache_events.misses):
    from absl import logging  # pylint: disable=import-outside-toplevel
    logging.info('Compilation cache: %s.', _cache_events.summary())


# ---------------------------------------------------------------- running


def fail(message) -> None:
  """Bad input: one line on stderr, exit status 2."""
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


def parse_flags(argv):
  """absl's parser, with a bad flag or `--config.KEY` reported in one line."""
  try:
    return FLAGS(argv)
  except (KeyError, AttributeError) as e:
    # ml_collections' KeyError reads "'optimiser'\nDid you mean ...", at times
    # with the newline escaped.
    text = str(e.args[0] if e.args else e).replace('\\n', '\n')
    key, _, hint = text.partition('\n')
    key, hint = key.strip('\'"\\ '), hint.strip('\'"\\ ')
    from isovolnet_jax import config_defaults  # pylint: disable=import-outside-toplevel
    if key in config_defaults.RETIRED:
      fail(f'config key {key!r} on the command line: {config_defaults.RETIRED[key]}')
    fail(f'unknown config key {key!r} on the command line. {hint} '
         f'(the keys are those of the --config file)'.replace('  ', ' '))
  except flags.Error as e:
    fail(e)


def passing_config_overrides(extra: list[str]):
  """A flags parser for a tool that launches runs: its `--config.KEY=VALUE`
  arguments are appended to `extra` (for every run), the rest parsed as usual."""
  def parse(argv):
    extra.extend(a for a in argv[1:] if a.startswith('--config.'))
    try:
      return FLAGS([a for a in argv if not a.startswith('--config.')])
    except flags.Error as e:
      fail(f'{e}; only --config.KEY=VALUE pass through to the runs')
  return parse


def check_config() -> None:
  """The --config (file and overrides) refused when its knobs cannot work
  together (`config_defaults.check`), before anything starts."""
  import ml_collections  # pylint: disable=import-outside-toplevel
  config = FLAGS['config'].value if 'config' in FLAGS else None
  if isinstance(config, ml_collections.ConfigDict) and 'optimizer' in config:
    from isovolnet_jax import config_defaults  # pylint: disable=import-outside-toplevel
    config_defaults.check(config)


def run(main, flags_parser=parse_flags, argv=None) -> None:
  """app.run(main) with InputError -> `error: ...` + exit 2, and a preempted
  training run -> `preempted: ...` + exit 128 + signal."""
  def guarded(argv):
    try:
      check_config()
      setup_compilation_cache()
      try:
        return main(argv)
      finally:
        log_compilation_cache()
    except Preempted as e:
      print(f'preempted: {e}', file=sys.stderr)
      sys.exit(128 + e.signum)
    except InputError as e:
      fail(e)

  app.run(guarded, argv=argv, flags_parser=flags_parser)
