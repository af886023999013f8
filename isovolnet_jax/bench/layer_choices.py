r"""The alternatives behind three of `models`' code choices, and what XLA:CPU
does with few channels, timed.

  python -m isovolnet_jax.bench.layer_choices [--batch=128] [--cores=1] [--json]
      [--choices=pooling,narrow_swish,casts,narrow_views]

1. 2x2 average pooling (`layers.avg_pool_2x2`): the reshape + mean it was
   (`_avg_pool_reshape` here) against the four stride-2 phases summed in
   float32 with its custom VJP, at IsoVolNet's and FastCNN's pooled shapes,
   float32 and bfloat16, forward and forward + backward.
2. A depthwise conv's swish in inference (`layers._SWISH_IN_XLA_MAX_CHANNELS`):
   as oneDNN's post-op against an XLA fusion after a call without one, for
   3 to 16 channels, bfloat16 (the default configs' mixed precision on a CPU
   with native bfloat16). Needs the oneDNN extension.
3. The mixed_bfloat16 policy's casts (`models.bf16_casts`): astype against the
   bit operations, alone (float32 -> bfloat16, bfloat16 -> float32) and at the
   end of a fusion (float32 BatchNorm's normalisation + swish, cast to
   bfloat16, as a conv's input or cotangent is), at IsoVolNet's pointwise
   outputs (the same number of values at every block, from 12 to 768 channels).
4. Few channels (`narrow_views`): BatchNorm's normalisation + swish of a
   bfloat16 conv output of 12 channels (IsoVolNet's 32x32x12), float32 out,
   as the model writes it (N, H, W, C); on the (N, H, W*C) view with the
   per-channel vectors tiled W times as inputs, with them tiled inside the
   function, and with the view's result reshaped back to (N, H, W, C); and
   768 channels at 4x4 (the same number of values) for comparison.

Each figure: the median of `--repeats` calls of the jitted function after two
warm-up calls, on `--cores` cores (the process is pinned to them; one core is
one CPU device's share of a batch-256 step on 2 devices at `--batch=128`).
"""

import json
import os

from isovolnet_jax import cli

if __name__ == '__main__':
  cli.use_tcmalloc()  # Before JAX starts.

from absl import app
from absl import flags

from isovolnet_jax.bench.conv_layers import _median_ms

FLAGS = flags.FLAGS

# (H, C) of pooled activations: IsoVolNet's four blocks', then wider maps.
POOL_SHAPES = ((32, 12), (16, 48), (8, 192), (4, 768), (32, 64), (16, 128), (8, 256))
SWISH_CHANNELS = (3, 4, 6, 8, 12, 16)
# (H, C) of IsoVolNet's pointwise outputs (configs/cifar10.py), then its first depthwise one.
CAST_SHAPES = ((32, 12), (16, 48), (8, 192), (4, 768), (32, 3))
CHOICES = ('pooling', 'narrow_swish', 'casts', 'narrow_views')


def define_flags():
  flags.DEFINE_integer('batch', 128, 'Batch of the timed functions.')
  flags.DEFINE_integer('cores', 1, 'Cores the process is pinned to.')
  flags.DEFINE_integer('repeats', 30, 'Timed calls per figure (the median is printed).')
  flags.DEFINE_bool('json', False, 'Print the results as JSON on the last line.')
  flags.DEFINE_list('choices', list(CHOICES), f'Which to time, of {list(CHOICES)}.')


def _avg_pool_reshape(x):
  """avg_pool_2x2 before 2026-12-05: a reshape and a mean over the windows."""
  from isovolnet_jax.models import layers
  return layers._windows_2x2(x).mean(axis=(2, 4))  # pylint: disable=protected-access


def pooling(batch, repeats):
  import jax
  import jax.numpy as jnp
  import numpy as np

  from isovolnet_jax.models import layers

  rows = []
  for h, c in POOL_SHAPES:
    for dtype in ('float32', 'bfloat16'):
      x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, h, h, c)), dtype)
      row = {'shape': [batch, h, h, c], 'dtype': dtype}
      for name, pool in (('reshape_mean', _avg_pool_reshape), ('phases', layers.avg_pool_2x2)):
        fwd = jax.jit(pool)
        grad = jax.jit(jax.grad(lambda x, pool=pool: (pool(x).astype(jnp.float32) ** 2).sum()))
        row[name] = {'forward_ms': _median_ms(lambda: fwd(x).block_until_ready(), repeats),
                     'forward_backward_ms': _median_ms(
                         lambda: grad(x).block_until_ready(), repeats)}
      rows.append(row)
  return rows


def narrow_swish(batch, repeats):
  import jax
  import jax.numpy as jnp
  import numpy as np

  from isovolnet_jax import onednn
  from isovolnet_jax.models import layers

  swish = layers.activation_fn('swish')
  rows = []
  for c in SWISH_CHANNELS:
    h = 32 if c < 8 else 16  # IsoVolNet's first block has 3 channels at 32x32.
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, h, h, c)), jnp.bfloat16)
    k = jnp.asarray(0.1 * rng.normal(size=(3, 3, 1, c)), jnp.bfloat16)
    b = jnp.zeros((c,), jnp.float32)
    call = lambda x, k, b, act: onednn.conv_bias_act(x, k, b, act, (1, 1), 'SAME', (1, 1), c,
                                                      None)
    post_op = jax.jit(lambda x, k, b: call(x, k, b, 'swish'))
    after = jax.jit(lambda x, k, b: swish(call(x, k, b, None).astype(jnp.float32)).astype(
        jnp.bfloat16))
    rows.append({'shape': [batch, h, h, c],
                 'post_op_ms': _median_ms(lambda: post_op(x, k, b).block_until_ready(), repeats),
                 'xla_after_ms': _median_ms(lambda: after(x, k, b).block_until_ready(), repeats)})
  return rows


def casts(batch, repeats):
  import jax
  import jax.numpy as jnp
  import numpy as np

  from isovolnet_jax.models import bf16_casts

  swish = jax.nn.swish
  rows = []
  for h, c in CAST_SHAPES:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, h, h, c)), jnp.float32)
    y = x.astype(jnp.bfloat16)
    mul, shift = jnp.asarray(rng.normal(size=c), jnp.float32), jnp.zeros((c,), jnp.float32)
    row = {'shape': [batch, h, h, c]}
    for name, down, up in (('astype', lambda v: v.astype(jnp.bfloat16),
                            lambda v: v.astype(jnp.float32)),
                           ('bits', bf16_casts.to_bfloat16, bf16_casts.to_float32)):
      fns = {'to_bfloat16': (jax.jit(down), x), 'to_float32': (jax.jit(up), y),
             'norm_swish_to_bfloat16': (jax.jit(lambda v, down=down: down(
                 swish(v * mul + shift))), x)}
      row[name] = {k: _median_ms(lambda f=f, a=a: f(a).block_until_ready(), repeats)
                   for k, (f, a) in fns.items()}
    rows.append(row)
  return rows


def narrow_view_cases(batch):
  """{name: (function, arguments)}: `narrow_views`' five ways; the first four
  compute the same values (tests/test_benchmark.py checks)."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  def norm_swish(y, mul, shift):
    return jax.nn.swish(y.astype(jnp.float32) * mul + shift)

  rng = np.random.default_rng(0)
  h, w, c = 32, 32, 12
  y = jnp.asarray(rng.normal(size=(batch, h, w, c)), jnp.bfloat16)
  mul, shift = jnp.asarray(rng.normal(size=c), jnp.float32), jnp.zeros((c,), jnp.float32)
  view = lambda y: y.reshape(batch, h, w * c)
  tile = lambda v: jnp.tile(v, w)
  cases = {
      'nhwc': (norm_swish, (y, mul, shift)),
      'view_tiles_given': (lambda y, m, s: norm_swish(view(y), m, s), (y, tile(mul), tile(shift))),
      'view_tiled_inside': (lambda y, m, s: norm_swish(view(y), tile(m), tile(s)),
                            (y, mul, shift)),
      'view_back_to_nhwc': (lambda y, m, s: norm_swish(view(y), m, s).reshape(y.shape),
                            (y, tile(mul), tile(shift))),
      'wide_4x4x768': (norm_swish, (jnp.asarray(rng.normal(size=(batch, 4, 4, 768)), jnp.bfloat16),
                                    jnp.ones((768,)), jnp.zeros((768,)))),
  }
  return cases


def narrow_views(batch, repeats):
  import jax

  cases = narrow_view_cases(batch)
  out = {'shape': list(cases['nhwc'][1][0].shape)}
  for name, (f, args) in cases.items():
    f = jax.jit(f)
    out[name] = _median_ms(lambda f=f, args=args: f(*args).block_until_ready(), repeats)
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:FLAGS.cores])
  from isovolnet_jax import onednn
  from isovolnet_jax.bench import benchmark

  unknown = set(FLAGS.choices) - set(CHOICES)
  if unknown:
    raise app.UsageError(f'unknown --choices {sorted(unknown)}; choose from {list(CHOICES)}')
  result = {'cpu': benchmark.cpu_description(), 'tcmalloc': cli.tcmalloc_loaded(),
            'cores': FLAGS.cores, 'batch': FLAGS.batch}
  print(f'{result["cpu"]}; {FLAGS.cores} core(s), batch {FLAGS.batch}, ms (median)')
  if 'pooling' in FLAGS.choices:
    result['pooling'] = pooling(FLAGS.batch, FLAGS.repeats)
    print('2x2 average pooling: reshape + mean -> four phases (forward, forward + backward)')
    for r in result['pooling']:
      a, b = r['reshape_mean'], r['phases']
      print(f'  {"x".join(map(str, r["shape"][1:])):>10} {r["dtype"]:<9}'
            f'{a["forward_ms"]:7.3f} -> {b["forward_ms"]:6.3f}'
            f'{a["forward_backward_ms"]:9.3f} -> {b["forward_backward_ms"]:6.3f}')
  if 'casts' in FLAGS.choices:
    result['casts'] = casts(FLAGS.batch, FLAGS.repeats)
    print('casts: astype -> bits (to bfloat16, to float32, norm + swish + to bfloat16)')
    for r in result['casts']:
      a, b = r['astype'], r['bits']
      print(f'  {"x".join(map(str, r["shape"][1:])):>10}' + ''.join(
          f'{a[k]:8.3f} -> {b[k]:6.3f}' for k in a))
  if 'narrow_views' in FLAGS.choices:
    result['narrow_views'] = narrow_views(FLAGS.batch, FLAGS.repeats)
    print('BatchNorm + swish of 32x32x12, float32 out, ms: ' + ', '.join(
        f'{k} {v:.3f}' for k, v in result['narrow_views'].items() if k != 'shape'))
  if 'narrow_swish' in FLAGS.choices and onednn.available():
    result['narrow_swish'] = narrow_swish(FLAGS.batch, FLAGS.repeats)
    print('depthwise 3x3 conv + swish, bfloat16: post-op vs XLA after the call')
    for r in result['narrow_swish']:
      print(f'  {"x".join(map(str, r["shape"][1:])):>10}{r["post_op_ms"]:8.3f}'
            f'{r["xla_after_ms"]:8.3f}')
  elif 'narrow_swish' in FLAGS.choices:
    print(f'narrow swish: not timed, oneDNN unavailable ({onednn.unavailable_reason()})')
  if FLAGS.json:
    print(json.dumps(result))


if __name__ == '__main__':
  define_flags()
  app.run(main)
