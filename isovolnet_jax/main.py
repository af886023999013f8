r"""Trains a model: `python -m isovolnet_jax.main --config=configs/cifar10.py --workdir=DIR`.

Override any config key from the shell, e.g. `--config.optimizer.name=adam`.
Rerunning the same command resumes from the newest checkpoint in DIR.
Several hosts: add `--jax_coordinator_address=HOST:PORT --jax_num_processes=N
--jax_process_id=I` on each (HOST:PORT: process 0's machine and a free port),
or `--jax_distributed_auto` where JAX finds them itself (Cloud TPU pods, SLURM).
Every process runs the same command with the same --workdir (a shared file
system); process 0 writes the logs, metrics, plots and config.json.
"""

import os
import sys

# TensorFlow (used only to read data) need not log its C++ start-up banner.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from isovolnet_jax import cpu_devices
from isovolnet_jax import logs
from isovolnet_jax import train
from isovolnet_jax.errors import InputError

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and logs.')
config_flags.DEFINE_config_file('config', None, 'Training config file.',
                                lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])
flags.DEFINE_integer(
    'cpu_devices', -1, 'JAX CPU devices in this process (ignored on GPU/TPU): '
    '-1 = one per core, as many as split the batch evenly; 0 = JAX\'s default '
    '(one); N = N. An XLA_FLAGS with --xla_force_host_platform_device_count wins.')

# Multi-host flags. JAX itself defines no absl flags for jax.distributed (its
# own config flags appear only after jax.config.config_with_absl(), which this
# entry point does not call), so they are defined here unless something
# imported earlier already did.
_DISTRIBUTED_FLAGS = (
    (flags.DEFINE_string, 'jax_coordinator_address', None,
     'HOST:PORT of process 0\'s coordinator service (multi-host training).'),
    (flags.DEFINE_integer, 'jax_num_processes', None,
     'Number of processes (with --jax_coordinator_address).'),
    (flags.DEFINE_integer, 'jax_process_id', None,
     'This process\'s index in [0, jax_num_processes).'),
    (flags.DEFINE_bool, 'jax_distributed_auto', False,
     'Call jax.distributed.initialize() with no arguments: JAX finds the '
     'coordinator itself (Cloud TPU pods, SLURM, Open MPI).'),
)
for _define, _name, _default, _help in _DISTRIBUTED_FLAGS:
  if _name not in FLAGS:
    _define(_name, _default, _help)


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
  try:
    jax.distributed.initialize(**kwargs)
  except Exception as e:  # pylint: disable=broad-except
    first = (str(e).strip().splitlines() or [''])[0][:300]
    raise InputError(f'jax.distributed.initialize ({where}) failed: '
                     f'{type(e).__name__}: {first}') from e


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  config = FLAGS.config
  processes = FLAGS.jax_num_processes or 1
  per_process = config.batch_size // max(1, config.get('grad_accum_steps', 1) * processes)
  cpu_devices.configure(FLAGS.cpu_devices, max(1, per_process))  # Before JAX starts.
  try:
    initialize_distributed()  # Before anything below touches the devices.
  except InputError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  logs.quiet_orbax()
  logging.info('JAX process %d/%d, local devices: %s', jax.process_index(),
               jax.process_count(), jax.local_devices())
  if jax.default_backend() == 'cpu' and not cpu_devices.tcmalloc_loaded():
    logging.info('Tip: on CPU, LD_PRELOAD=libtcmalloc.so.4 trains ~25%% faster '
                 '(README, "Fast on CPU").')
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except train.Preempted as e:
    logging.warning('Preempted: %s', e)
    print(f'preempted: {e}', file=sys.stderr)
    sys.exit(128 + e.signum)
  except InputError as e:
    # Bad config, data or checkpoint: one line naming the fix, no traceback.
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


def parse_flags(argv):
  """absl's parser, with a bad `--config.KEY` reported as one line."""
  try:
    return FLAGS(argv)
  except (KeyError, AttributeError) as e:
    # ml_collections' KeyError reads "'optimiser'\nDid you mean ...", at times
    # with the newline escaped.
    text = str(e.args[0] if e.args else e).replace('\\n', '\n')
    key, _, hint = text.partition('\n')
    key, hint = key.strip('\'"\\ '), hint.strip('\'"\\ ')
    print(f'error: unknown config key {key!r} on the command line. {hint} '
          f'(the keys are those of the --config file)'.replace('  ', ' '),
          file=sys.stderr)
    sys.exit(2)
  except flags.Error as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
