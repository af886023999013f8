r"""Peak memory of one training step, JAX against its PyTorch twin.

  python -m isovolnet_jax.bench.step_memory --config=configs/cifar10_dilated_ds.py \
    [--steps=3] [--torch_variant=channels_last] [--json] [--config.batch_size=64 ...]

Each framework runs in a fresh process of its own, on one JAX CPU device (the
whole batch) or PyTorch's threads, with the same model (equal parameter
counts are asserted), optimizer, loss and batch of random images as
`bench.benchmark`. After a warm-up step (compilation, oneDNN's primitives,
PyTorch's lazily made optimizer state), the process's peak RSS is reset
(`/proc/self/clear_refs`), `--steps` more steps run, and the step's memory is
that peak less the resident memory before them: what a step adds on top of
its parameters, optimizer state and batch. Both processes use glibc's malloc
with a 64 KiB mmap threshold (tcmalloc and glibc's defaults keep freed memory,
so one framework's warm-up could hide the next steps' allocations and the
other's not). Beside it: XLA's own count of the compiled step's temporaries
(`memory_analysis()`) and the layer outputs' size (float32, per `summary`): the
activations a backward pass has to keep. Linux only.
"""

import gc
import json
import os
import sys

from absl import app
from absl import flags

from isovolnet_jax import bench
from isovolnet_jax import cli
from isovolnet_jax.errors import InputError

FLAGS = flags.FLAGS
_MALLOC = 'glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=65536'


def define_flags():
  cli.define_flags()
  flags.DEFINE_integer('steps', 3, 'Measured steps after one warm-up step.')
  flags.DEFINE_string('torch_variant', 'channels_last',
                      'PyTorch variant (bench.benchmark\'s names; eager ones).')
  flags.DEFINE_bool('json', False, 'Print the results as JSON on the last line.')
  flags.DEFINE_enum('worker', '', ['', 'jax', 'torch'], 'Internal: measure one framework.')


def _status_mib() -> dict[str, float]:
  out = {}
  with open('/proc/self/status') as f:
    for line in f:
      key, _, value = line.partition(':')
      if key in ('VmRSS', 'VmHWM'):
        out[key] = int(value.split()[0]) / 1024  # kB
  return out


def step_peak_mib(step, steps: int) -> tuple[float, float]:
  """(resident MiB before, peak MiB that `steps` calls of `step` add to it)."""
  gc.collect()
  with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')  # Resets the peak (VmHWM) to the current RSS.
  before = _status_mib()['VmRSS']
  for _ in range(steps):
    step()
  return before, _status_mib()['VmHWM'] - before


def _measure_jax(config, shape, classes, steps) -> dict:
  import jax

  from isovolnet_jax import cpu_devices
  from isovolnet_jax.bench import benchmark

  cpu_devices.configure(1, config.batch_size)
  t = benchmark.jax_training(config, shape, classes)
  args = (t['images'], t['labels'], t['key'])
  compiled = t['step'].lower(t['state'], *args).compile()
  holder = [t['state']]

  def once():  # The step donates its input state: keep the newest.
    holder[0], metrics = compiled(holder[0], *args)
    jax.block_until_ready(metrics)

  once()
  before, peak = step_peak_mib(once, steps)
  return {'params': sum(x.size for x in jax.tree.leaves(holder[0].params)),
          'resident_mib': before, 'step_mib': peak,
          'xla_temp_mib': compiled.memory_analysis().temp_size_in_bytes / 2**20}


def _measure_torch(config, shape, classes, steps, variant) -> dict:
  from isovolnet_jax import cpu_devices
  from isovolnet_jax.bench import benchmark

  t = benchmark.torch_training(config, shape, classes, cpu_devices.usable_cores(), variant)
  t['train_once']()
  before, peak = step_peak_mib(t['train_once'], steps)
  return {'params': t['params'], 'resident_mib': before, 'step_mib': peak}


def _worker(config) -> dict:
  from isovolnet_jax import summary

  shape, classes = summary.default_input_shape(config), summary.default_num_classes(config)
  if FLAGS.worker == 'jax':
    return _measure_jax(config, shape, classes, FLAGS.steps)
  return _measure_torch(config, shape, classes, FLAGS.steps, FLAGS.torch_variant)


def _spawn(framework: str) -> dict:
  env = {**os.environ, cli.NO_TCMALLOC: '1', 'GLIBC_TUNABLES': _MALLOC,
         'TF_CPP_MIN_LOG_LEVEL': '2'}
  args = [a for a in sys.argv[1:] if not a.startswith('--worker')]
  return bench.measure_in_subprocess('isovolnet_jax.bench.step_memory',
                                     [*args, f'--worker={framework}'], framework, env)


def run(config) -> dict:
  from isovolnet_jax import models, summary

  counted = summary.summarize(config, summary.default_input_shape(config),
                              summary.default_num_classes(config))
  jax_res, torch_res = _spawn('jax'), _spawn('torch')
  if jax_res['params'] != torch_res['params']:
    raise AssertionError(f'parameter counts differ: JAX {jax_res["params"]:,} vs '
                         f'PyTorch {torch_res["params"]:,}')
  outputs = sum(l['volume'] for l in counted['layers']) * config.batch_size * 4
  return {'model': config.model.name, 'batch_size': config.batch_size,
          'dtype': models.resolve_dtype(config), 'torch_variant': FLAGS.torch_variant,
          'layer_outputs_mib': outputs / 2**20, 'jax': jax_res, 'torch': torch_res,
          'ratio': jax_res['step_mib'] / max(torch_res['step_mib'], 1e-9)}


def format_table(r: dict) -> str:
  j, t = r['jax'], r['torch']
  return '\n'.join([
      f"{r['model']}, batch {r['batch_size']}, JAX {r['dtype']} (1 CPU device) vs "
      f"PyTorch {r['torch_variant']}; layer outputs {r['layer_outputs_mib']:,.0f} MiB",
      f"  JAX     step {j['step_mib']:8,.0f} MiB  (XLA temporaries {j['xla_temp_mib']:,.0f} MiB;"
      f" resident before {j['resident_mib']:,.0f} MiB)",
      f"  PyTorch step {t['step_mib']:8,.0f} MiB  (resident before {t['resident_mib']:,.0f} MiB)",
      f"  JAX / PyTorch: {r['ratio']:.2f}x",
  ])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not os.path.exists('/proc/self/clear_refs'):
    raise InputError('step_memory needs Linux (/proc/self/clear_refs)')
  config = FLAGS.config
  if FLAGS.worker:
    print(json.dumps(_worker(config)))
    return
  result = run(config)
  print(format_table(result))
  if FLAGS.json:
    print(json.dumps(result))


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  define_flags()
  cli.run(main)
