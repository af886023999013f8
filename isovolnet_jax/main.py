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

from isovolnet_jax import cli

if __name__ == '__main__':
  cli.use_tcmalloc()  # Before JAX starts.

# TensorFlow (used only to read data) need not log its C++ start-up banner.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli.setup_devices([FLAGS.config])  # Before anything touches the devices.
  import jax  # pylint: disable=import-outside-toplevel
  from isovolnet_jax import logs, train  # pylint: disable=import-outside-toplevel
  logs.quiet_orbax()
  logging.info('JAX process %d/%d, local devices: %s', jax.process_index(),
               jax.process_count(), jax.local_devices())
  if jax.default_backend() == 'cpu' and not cli.tcmalloc_loaded():
    logging.info('Tip: install tcmalloc (apt-get install libgoogle-perftools4): on '
                 'CPU it makes training much faster (docs/performance.md).')
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


def define_flags():
  cli.define_flags(workdir='Directory for checkpoints, metrics and logs.',
                   devices=True)


if __name__ == '__main__':
  define_flags()
  cli.run(main)
