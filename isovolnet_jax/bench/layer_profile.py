r"""Per-layer profile of a config's model: where a training step's time goes.

  python -m isovolnet_jax.bench.layer_profile \
    --config=configs/cifar10.py [--batch=128] [--cores=1] [--config.model.conv_impl=auto] [--top=15] \
    [--torch_variant=channels_last] [--config.dtype=mixed_bfloat16]

It runs the model once in training mode with `nn.intercept_methods` to record
every Conv, BatchNorm and Dense it calls (with its input shape), then times
each one alone, jitted: forward, and forward + backward (gradients for its
input and its parameters, BatchNorm in training mode), the median of
`--repeats` runs. It also times the whole model's forward + backward (no
optimizer) so that the last line says what the layers do not cover
(activations, pooling, concatenations, the loss). `--batch` is the batch of
one CPU device: a training step at batch 256 on 2 CPU devices is 128 each,
on one core each (`--cores=1` pins the process to one core).
`--torch_variant` adds the PyTorch twin's forward + backward at the same batch
on `--cores` threads, profiled (`torch.profiler`, self time of each op, summed
by the kind of layer the op belongs to): where the two frameworks' time
differs.
"""

import collections
import os

from isovolnet_jax import cli

if __name__ == '__main__':
  cli.use_tcmalloc()  # Before JAX starts.

from absl import app
from absl import flags
from ml_collections import config_flags

from isovolnet_jax.bench.conv_layers import _median_ms

FLAGS = flags.FLAGS


def record_layers(model, x):
  """[(path, unbound module, input shape)] of every leaf layer a training call runs."""
  import flax.linen as nn
  import jax

  seen = []

  def interceptor(next_fun, args, kwargs, context):
    mod = context.module
    if context.method_name == '__call__' and isinstance(mod, (nn.Conv, nn.BatchNorm, nn.Dense)):
      seen.append(('/'.join(mod.path), mod.clone(parent=None, name=None), args[0].shape,
                   args[0].dtype))
    return next_fun(*args, **kwargs)

  variables = model.init(jax.random.key(0), x, train=False)
  with nn.intercept_methods(interceptor):
    jax.eval_shape(lambda v: model.apply(v, x, train=True, mutable=['batch_stats'],
                                         rngs={'dropout': jax.random.key(1)}), variables)
  return variables, seen


def time_layer(module, shape, dtype, repeats):
  """(forward ms, forward + backward ms) of one layer alone."""
  import flax.linen as nn
  import jax

  x = jax.random.normal(jax.random.key(0), shape).astype(dtype)
  call = (lambda m, v, x: m.apply(v, x, mutable=['batch_stats'])[0]
          if isinstance(module, nn.BatchNorm) else m.apply(v, x))
  variables = module.init(jax.random.key(1), x)
  y = call(module, variables, x)
  g = jax.random.normal(jax.random.key(2), y.shape).astype(y.dtype)
  fwd = jax.jit(lambda v, x, g: call(module, v, x))
  bwd = jax.jit(lambda v, x, g: jax.grad(lambda v, x: (call(module, v, x) * g).sum(),
                                         argnums=(0, 1))(v, x))
  run = lambda f: (lambda: jax.block_until_ready(f(variables, x, g)))
  return _median_ms(run(fwd), repeats), _median_ms(run(bwd), repeats)


# PyTorch's ops (self time) by the kind of layer they belong to.
TORCH_KINDS = (('Conv', ('conv',)), ('BatchNorm', ('batch_norm',)),
               ('Dense', ('addmm', 'aten::mm', 'linear')), ('pooling', ('pool',)),
               ('activation', ('gelu', 'silu', 'relu', 'hardtanh', 'sigmoid')))


def torch_kind(op: str) -> str:
  return next((k for k, keys in TORCH_KINDS if any(p in op for p in keys)), 'rest')


def torch_profile(config, batch, threads, variant, repeats) -> tuple[dict, float]:
  """The PyTorch twin's forward + backward ({kind: ms of self CPU time},
  whole ms unprofiled), `bench.benchmark`'s set-up at `batch`."""
  from torch.profiler import profile, ProfilerActivity

  from isovolnet_jax import summary
  from isovolnet_jax.bench import benchmark

  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.batch_size = batch
  t = benchmark.torch_training(config, summary.default_input_shape(config),
                               summary.default_num_classes(config), threads,
                               variant)
  for _ in range(2):
    t['grad_once']()  # Warm-up: oneDNN's primitives, allocator.
  whole = _median_ms(t['grad_once'], repeats)
  with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(repeats):
      t['grad_once']()
  by_kind = collections.defaultdict(float)
  for event in prof.key_averages():
    by_kind[torch_kind(event.key)] += event.self_cpu_time_total / 1000 / repeats
  return dict(by_kind), whole


def define_flags():
  cli.define_flags()
  flags.DEFINE_string('torch_variant', '', 'Also profile the PyTorch twin in this '
                      "bench.benchmark variant (e.g. channels_last, bf16); '' = no.")
  flags.DEFINE_integer('batch', 128, 'Batch of one CPU device.')
  flags.DEFINE_integer('cores', 1, 'Cores the process is pinned to.')
  flags.DEFINE_integer('repeats', 7, 'Timed runs per layer (median).')
  flags.DEFINE_integer('top', 15, 'Rows to print (slowest first).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  args = FLAGS
  os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:args.cores]))

  import jax
  import jax.numpy as jnp

  from isovolnet_jax import models, summary

  config = FLAGS.config
  x = jnp.zeros((args.batch, *summary.default_input_shape(config)), jnp.float32)
  model = models.from_config(config, summary.default_num_classes(config))
  variables, seen = record_layers(model, x)

  def loss(params, x):
    logits, _ = model.apply({**variables, 'params': params}, x, train=True,
                            mutable=['batch_stats'], rngs={'dropout': jax.random.key(1)})
    return logits.sum()
  xr = jax.random.normal(jax.random.key(3), x.shape)
  fwd = jax.jit(lambda p, x: model.apply({**variables, 'params': p}, x, train=True,
                                         mutable=['batch_stats'],
                                         rngs={'dropout': jax.random.key(1)})[0])
  whole_fwd = _median_ms(lambda: jax.block_until_ready(fwd(variables['params'], xr)),
                         args.repeats)
  grad = jax.jit(jax.grad(loss))
  whole = _median_ms(lambda: jax.block_until_ready(grad(variables['params'], xr)), args.repeats)

  rows = []
  cache = {}
  for path, module, shape, dtype in seen:
    key = (repr(module), shape)
    if key not in cache:  # Layers of the same kind and shape take the same time.
      cache[key] = time_layer(module, shape, dtype, args.repeats)
    kind = type(module).__name__
    if kind == 'Conv' and module.feature_group_count > 1:
      kind = f'Conv g={module.feature_group_count}'
    rows.append((path, kind, shape, *cache[key]))

  print(f'{config_flags.get_config_filename(FLAGS["config"])}: batch {args.batch} on {args.cores} core(s), '
        f'conv_impl={config.model.get("conv_impl", "-")}, dtype={models.resolve_dtype(config)}, jax {jax.__version__}')
  print(f'{"layer":<34}{"kind":<14}{"input":<20}{"fwd ms":>9}{"fwd+bwd ms":>12}')
  for r in sorted(rows, key=lambda r: -r[4])[:args.top]:
    print(f'{r[0]:<34}{r[1]:<14}{str(tuple(r[2][1:])):<20}{r[3]:9.2f}{r[4]:12.2f}')
  by_kind = collections.defaultdict(float)
  for r in rows:
    by_kind[r[1].split(' ')[0] + (' grouped' if 'g=' in r[1] else '')] += r[4]
  total = sum(by_kind.values())
  print('fwd+bwd by kind: ' + ', '.join(f'{k} {v:.1f} ms' for k, v in
                                        sorted(by_kind.items(), key=lambda kv: -kv[1])))
  print(f'layers alone {total:.1f} ms; whole model fwd {whole_fwd:.1f} ms, '
        f'fwd+bwd {whole:.1f} ms (the rest: activations, pooling, loss, fusion '
        f'differences: {whole - total:+.1f} ms)')
  if args.torch_variant:
    by_kind, torch_whole = torch_profile(config, args.batch, args.cores,
                                         args.torch_variant, args.repeats)
    print(f'PyTorch {args.torch_variant} fwd+bwd by kind (self CPU time under the '
          'profiler): ' + ', '.join(f'{k} {v:.1f} ms' for k, v in
                                    sorted(by_kind.items(), key=lambda kv: -kv[1])))
    print(f'PyTorch whole model fwd+bwd {torch_whole:.1f} ms (unprofiled; JAX / PyTorch '
          f'time {whole / torch_whole:.2f}x)')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
