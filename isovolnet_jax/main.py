r"""Trains a model: `python -m isovolnet_jax.main --config=configs/cifar10.py --workdir=DIR`.

Override any config key from the shell, e.g. `--config.optimizer.name=adam`.
Rerunning the same command resumes from the newest checkpoint in DIR.
Several hosts: add `--jax_coordinator_address=HOST:PORT --jax_num_processes=N
--jax_process_id=I` on each (on Cloud TPU `jax.distributed` finds them itself).
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

from isovolnet_jax import logs
from isovolnet_jax import train
from isovolnet_jax.errors import InputError

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and logs.')
config_flags.DEFINE_config_file('config', None, 'Training config file.',
                                lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logs.quiet_orbax()
  logging.info('JAX process %d/%d, local devices: %s', jax.process_index(),
               jax.process_count(), jax.local_devices())
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
