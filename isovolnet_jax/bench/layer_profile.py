r"""Per-layer profile of a config's model: where a training step's time goes.

  LD_PRELOAD=libtcmalloc.so.4 python benchmarks/layer_profile.py \
    --config=configs/cifar10.py [--batch=128] [--cores=1] [--conv_impl=auto] [--top=15]

It runs the model once in training mode with `nn.intercept_methods` to record
every Conv, BatchNorm and Dense it calls (with its input shape), then times
each one alone, jitted: forward, and forward + backward (gradients for its
input and its parameters, BatchNorm in training mode), the median of
`--repeats` runs. It also times the whole model's forward + backward (no
optimizer) so that the last line says what the layers do not cover
(activations, pooling, concatenations, the loss). `--batch` is the batch of
one CPU device: a training step at batch 256 on 2 CPU devices is 128 each,
on one core each (`--cores=1` pins the process to one core).
"""

import argparse
import collections
import os

from conv_layers import _median_ms  # benchmarks/ is this script's sys.path[0].


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


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--config', required=True)
  parser.add_argument('--batch', type=int, default=128)
  parser.add_argument('--cores', type=int, default=1)
  parser.add_argument('--conv_impl', default='', help="Override model.conv_impl.")
  parser.add_argument('--repeats', type=int, default=7)
  parser.add_argument('--top', type=int, default=15, help='Rows to print (slowest first).')
  args = parser.parse_args()
  os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:args.cores]))

  import jax
  import jax.numpy as jnp

  from isovolnet_jax import config_defaults, models

  config = config_defaults.load_config_file(args.config)
  if args.conv_impl:
    config.model.conv_impl = args.conv_impl
  size = config.data.image_size or 32
  x = jnp.zeros((args.batch, size, size, 3), jnp.float32)
  model = models.create_model(config.model, 10, models.DTYPES[config.dtype])
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

  print(f'{args.config}: batch {args.batch} on {args.cores} core(s), '
        f'conv_impl={config.model.get("conv_impl", "-")}, jax {jax.__version__}')
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


if __name__ == '__main__':
  main()
