r"""Depthwise-separable vs standard convs: what each costs, measured on this machine.

  python -m isovolnet_jax.bench.efficiency --config=configs/cifar10.py --out=runs/efficiency \
    [--batch_size=64] [--steps=5] [--config.KEY=VALUE ...]

For the config's model (which must have a `conv` option: isovolnet, dense_ds)
and its standard-conv twin (`model.conv='standard'`, same widths) it reports:
params; FLOPs per image counted analytically (summary.py; a multiply-add = 2)
and by XLA's `cost_analysis()` of the compiled forward pass (with lax's convs:
XLA cannot see inside the oneDNN custom calls); latency at batch 1;
inference and training throughput at --batch_size (the train step is
training's own, `train.make_train_step`, on one CPU device per core unless
--cpu_devices says otherwise; inference on the same devices); peak memory of
the compiled train step (XLA `memory_analysis()`: arguments + outputs + temporaries) and the
process's peak RSS. Each variant is measured in a fresh subprocess, so RSS is
its own. Writes OUT/efficiency.md, OUT/efficiency.csv (one row per variant,
`conv` = separable or standard) and OUT/efficiency.png.
"""

import csv
import json
import os
import resource
import sys
import time
from pathlib import Path

from isovolnet_jax import bench
from isovolnet_jax import cli

if __name__ == '__main__':
  cli.use_tcmalloc()  # Before JAX starts.

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from isovolnet_jax import config_defaults
from isovolnet_jax import models
from isovolnet_jax import sharding
from isovolnet_jax import summary
from isovolnet_jax import train
from isovolnet_jax.errors import InputError

FLAGS = flags.FLAGS
VARIANTS = ('separable', 'standard')
COLUMNS = ('model', 'conv', 'params', 'flops_analytic', 'flops_xla', 'latency_ms_b1',
           'infer_img_s', 'train_img_s', 'train_step_peak_mib', 'rss_peak_mib')


def _median_seconds(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def measure(config, batch_size: int, steps: int) -> dict:
  """All figures for one variant, in this process."""
  shape = summary.default_input_shape(config)
  classes = summary.default_num_classes(config)
  counted = summary.summarize(config, shape, classes)
  model = models.from_config(config, classes)
  variables = model.init(jax.random.key(0), jnp.zeros((1, *shape)))
  infer = jax.jit(lambda v, x: model.apply(v, x, train=False))

  one = jnp.zeros((1, *shape))
  # XLA counts no FLOPs inside a custom call (the oneDNN convs): count the
  # same model with lax's convolutions.
  lax_model = models.from_config(
      config_defaults.apply_overrides(config, {'model.conv_impl': 'lax'}), classes)
  xla_flops = jax.jit(lambda v, x: lax_model.apply(v, x, train=False)).lower(
      variables, one).compile().cost_analysis()['flops']
  infer(variables, one)  # Compile.
  latency = _median_seconds(lambda: infer(variables, one), 20)

  # A batch is split over the devices as in training; one image is not.
  mesh = sharding.make_mesh(batch_size)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  images, labels = sharding.to_global(mesh, np.zeros((batch_size, *shape), np.uint8),
                                      np.zeros(batch_size, np.int32))
  batch = sharding.to_global(mesh, np.zeros((batch_size, *shape), np.float32))[0]
  variables = jax.device_put(variables, replicated)
  infer(variables, batch)
  infer_s = _median_seconds(lambda: infer(variables, batch), steps)

  config = config_defaults.apply_overrides(config, {'batch_size': batch_size})
  built = train.build(config, classes, shape, summary.default_num_train(config), mesh)
  state, key = built.state, built.step_key
  step = train.make_train_step(config, classes, mesh)
  memory = step.lower(state, images, labels, key).compile().memory_analysis()
  peak = (memory.argument_size_in_bytes + memory.output_size_in_bytes
          + memory.temp_size_in_bytes)
  state, _ = step(state, images, labels, key)  # Compile.
  holder = {'state': state}

  def one_step():  # The step donates its input state: keep the newest.
    holder['state'], metrics = step(holder['state'], images, labels, key)
    return metrics
  train_s = _median_seconds(one_step, steps)
  return {
      'model': config.model.name, 'conv': config.model.conv,
      'params': counted['total_params'], 'flops_analytic': counted['total_flops'],
      'flops_xla': int(xla_flops), 'latency_ms_b1': 1000 * latency,
      'infer_img_s': batch_size / infer_s, 'train_img_s': batch_size / train_s,
      'train_step_peak_mib': peak / 2**20,
      # Linux reports ru_maxrss in KiB.
      'rss_peak_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
  }


def _run_variant(variant: str, argv: list[str]) -> dict:
  """Measures one variant in a fresh process (its own RSS, its own caches)."""
  args = [a for a in argv[1:] if not a.startswith('--variant')]
  return bench.measure_in_subprocess('isovolnet_jax.bench.efficiency',
                                     [f'--variant={variant}', *args],
                                     f'the {variant} variant')


def write_report(rows: list[dict], out: Path) -> None:
  out.mkdir(parents=True, exist_ok=True)
  with open(out / 'efficiency.csv', 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  fmt = {'params': '{:,}', 'flops_analytic': '{:,}', 'flops_xla': '{:,}',
         'latency_ms_b1': '{:.2f}', 'infer_img_s': '{:.0f}', 'train_img_s': '{:.0f}',
         'train_step_peak_mib': '{:.1f}', 'rss_peak_mib': '{:.0f}'}
  lines = ['| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
  for r in rows:
    lines.append('| ' + ' | '.join(fmt.get(c, '{}').format(r[c]) for c in COLUMNS) + ' |')
  sep, std = rows
  lines.append('')
  lines.append(f'standard / separable: params x{std["params"] / sep["params"]:.1f}, '
               f'FLOPs x{std["flops_analytic"] / sep["flops_analytic"]:.1f}, '
               f'training throughput x{std["train_img_s"] / sep["train_img_s"]:.2f}, '
               f'batch-1 latency x{std["latency_ms_b1"] / sep["latency_ms_b1"]:.2f}')
  (out / 'efficiency.md').write_text('\n'.join(lines) + '\n')

  fig = Figure(figsize=(12, 3))
  panels = (('params', 'params'), ('flops_analytic', 'FLOPs / image'),
            ('latency_ms_b1', 'latency, batch 1 (ms)'), ('train_img_s', 'train img/s'),
            ('train_step_peak_mib', 'train step memory (MiB)'))
  for ax, (key, title) in zip(fig.subplots(1, len(panels)), panels):
    ax.bar([r['conv'] for r in rows], [r[key] for r in rows], color=['C0', 'C1'])
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=8)
  fig.suptitle(f'{rows[0]["model"]}: depthwise-separable vs standard convs')
  fig.tight_layout()
  fig.savefig(out / 'efficiency.png', dpi=100)


def main(argv):
  del argv
  config = FLAGS.config
  if 'conv' not in config.model:
    raise InputError(f'model {config.model.name!r} has no standard-conv twin '
                     f'(no model.conv option); use isovolnet or dense_ds')
  if FLAGS.variant:  # The child: one variant, one JSON line.
    config = config_defaults.apply_overrides(
        config, {'batch_size': FLAGS.batch_size, 'model.conv': FLAGS.variant})
    cli.setup_devices([config])  # Before JAX starts.
    print(json.dumps(measure(config, FLAGS.batch_size, FLAGS.steps)))
    return
  if not FLAGS.out:
    raise InputError('pass --out=DIR for the report')
  rows = [_run_variant(v, sys.argv) for v in VARIANTS]
  write_report(rows, Path(FLAGS.out))
  print((Path(FLAGS.out) / 'efficiency.md').read_text())


def define_flags():
  cli.define_flags(devices=True, lock_config=False)
  flags.DEFINE_string('out', '', 'Directory for efficiency.{md,csv,png}.')
  flags.DEFINE_integer('batch_size', 64, 'Batch for throughput and memory.')
  flags.DEFINE_integer('steps', 5, 'Timed repetitions (median).')
  flags.DEFINE_enum('variant', '', ('', *VARIANTS), 'Internal: measure one variant.')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
