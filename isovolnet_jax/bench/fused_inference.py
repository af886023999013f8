r"""Inference with and without the fused conv + BatchNorm + activation.

  python -m isovolnet_jax.bench.fused_inference --config=configs/cifar10.py \
    [--rounds=4] [--steps=20] [--json]

The config's inference (`inference.eval_logits`, no test-time augmentation,
on bench.benchmark's random batch of `config.batch_size`, sharded over the
CPU devices as training shards it) is jitted twice in one process on the same
weights: with the separate modules (`layers.fused_inference(False)`: conv,
BatchNorm, activation) and as it runs (one oneDNN call a ConvNormAct,
`layers.conv_bn_act_inference`). The two are timed in `--rounds` alternating
rounds (each `--steps` calls after `--warmup`), so that a drift of the
machine's speed hits both; the last line is the median of each and their
ratio. Also printed: how far apart their logits are.
"""

import functools
import os
import statistics

from isovolnet_jax import cli

if __name__ == '__main__':
  cli.use_tcmalloc()  # Before JAX starts.

from absl import app
from absl import flags

FLAGS = flags.FLAGS


def define_flags():
  cli.define_flags(devices=True)
  flags.DEFINE_integer('rounds', 4, 'Alternating timed rounds of each.')
  flags.DEFINE_integer('steps', 20, 'Timed calls per round.')
  flags.DEFINE_integer('warmup', 3, 'Untimed calls before each round.')
  flags.DEFINE_bool('json', False, 'Print the results as JSON on the last line.')


def run(config, rounds: int, steps: int, warmup: int) -> dict:
  import jax
  import numpy as np

  from isovolnet_jax import onednn, summary, train
  from isovolnet_jax.bench import benchmark
  from isovolnet_jax.models import layers

  t = benchmark.jax_training(config, summary.default_input_shape(config),
                             summary.default_num_classes(config))
  variables = {'params': t['state'].params, 'batch_stats': t['state'].batch_stats}
  images = t['images']
  calls = {}
  for name, fused in (('unfused', False), ('fused', True)):
    with layers.fused_inference(fused):  # A new function each: traced inside.
      f = jax.jit(functools.partial(train.eval_logits, t['model'].apply))
      before = onednn.bias_act_calls()
      logits = np.asarray(f(variables, images))
      calls[name] = (f, logits, onednn.bias_act_calls() - before)
  rates = {name: [] for name in calls}
  for _ in range(rounds):
    for name, (f, _, _) in calls.items():
      rates[name].append(benchmark.throughput(
          lambda f=f: f(variables, images).block_until_ready(), config.batch_size,
          steps, warmup, 1))
  median = {name: statistics.median(r) for name, r in rates.items()}
  diff = np.abs(calls['fused'][1] - calls['unfused'][1])
  return {
      'config_model': config.model.name, 'variant': benchmark.variant_name(config),
      'batch_size': config.batch_size, 'devices': jax.device_count(),
      'cpu': benchmark.cpu_description(), 'tcmalloc': cli.tcmalloc_loaded(),
      'fused_calls_per_batch': calls['fused'][2], 'unfused_calls_per_batch':
      calls['unfused'][2], 'rounds': rates, 'median_img_s': median,
      'fused_over_unfused': median['fused'] / median['unfused'],
      'max_abs_logit_diff': float(diff.max()),
      'max_abs_logit': float(np.abs(calls['unfused'][1]).max()),
      'argmax_agree': float((calls['fused'][1].argmax(-1)
                             == calls['unfused'][1].argmax(-1)).mean()),
  }


def main(argv):
  import json
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli.setup_devices([FLAGS.config])  # Before JAX starts.
  r = run(FLAGS.config, FLAGS.rounds, FLAGS.steps, FLAGS.warmup)
  print(f"model {r['config_model']} ({r['variant']}), batch {r['batch_size']} on "
        f"{r['devices']} device(s); tcmalloc loaded: {r['tcmalloc']}")
  print(r['cpu'])
  print(f"oneDNN conv + bias + activation calls a batch: fused {r['fused_calls_per_batch']}, "
        f"unfused {r['unfused_calls_per_batch']}")
  for name, rates in r['rounds'].items():
    print(f'{name:<8} inference img/s by round: ' + ', '.join(f'{x:,.0f}' for x in rates))
  print(f"logits: max |fused - unfused| {r['max_abs_logit_diff']:.3g} of max |logit| "
        f"{r['max_abs_logit']:.3g}; argmax agrees on {100 * r['argmax_agree']:.1f}%")
  print(f"median: fused {r['median_img_s']['fused']:,.0f} img/s, unfused "
        f"{r['median_img_s']['unfused']:,.0f}: {r['fused_over_unfused']:.2f}x")
  if FLAGS.json:
    print(json.dumps(r))


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  define_flags()
  cli.run(main)
