r"""Per-layer summary of a config's model: output shape, H*W*C, params, FLOPs.

  python -m isovolnet_jax.summary --config=configs/cifar10.py
  python -m isovolnet_jax.summary --config=configs/imagenet_mobilenet_v2.py --json
  python -m isovolnet_jax.summary --config=configs/cifar10.py \
    --config.model.conv=standard --input_shape=64,64,3

Nothing is computed on arrays: the model is initialised under
`jax.eval_shape` with a method interceptor that records every flax module
call, so even ImageNet-sized models take a second on a CPU.

Figures are per example (batch 1). FLOPs count a multiply-add as 2 FLOPs and
a bias add as 1 (`conv_arithmetic`), for conv and dense layers only:
BatchNorm folds into the preceding conv at inference, and pooling,
activations and residual adds are a few FLOPs per value, left out as is
customary. With `--json` the last stdout line is one JSON object with
`total_params`, `total_flops` and `layers`.
"""

import json
import math
from typing import Any, Sequence

from isovolnet_jax import cli

if __name__ == '__main__':
  cli.use_tcmalloc()  # Before JAX starts.

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from isovolnet_jax import conv_arithmetic
from isovolnet_jax.errors import InputError
from isovolnet_jax.models import create_model
from isovolnet_jax.models.fast_cnn import PaddedConv

DEFAULT_SHAPE = (32, 32, 3)
# tfds names whose class count differs from CIFAR-10's 10.
NUM_CLASSES = {'imagenet2012': 1000, 'cifar100': 100}
# Training images of tfds names, before data.val_size is cut off; any other
# data set (an image folder) is taken to be CIFAR-10-sized.
NUM_TRAIN = {'cifar10': 50_000, 'cifar100': 50_000, 'imagenet2012': 1_281_167}


def parse_shape(text: str) -> tuple[int, int, int]:
  try:
    shape = tuple(int(s) for s in text.split(','))
  except ValueError:
    shape = ()
  if len(shape) != 3 or min(shape) < 1:
    raise InputError(f'--input_shape={text!r} must be H,W,C, e.g. 32,32,3')
  return shape


def default_input_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
  size = config.data.image_size
  return (size, size, 3) if size > 0 else DEFAULT_SHAPE


def default_num_classes(config: ml_collections.ConfigDict) -> int:
  return NUM_CLASSES.get(config.data.name, 10)


def default_num_train(config: ml_collections.ConfigDict) -> int:
  """The training examples the config's data would give (its train split
  less data.val_size): what a benchmark on random images plans its epochs
  and schedule with."""
  total = NUM_TRAIN.get(config.data.name, NUM_TRAIN['cifar10'])
  return max(1, total - config.data.val_size)


def _layer_flops(module: nn.Module, in_shape, out_shape) -> int:
  if isinstance(module, nn.Conv):
    kernel = module.kernel_size
    taps = kernel if isinstance(kernel, int) else math.prod(kernel)
    # Any rank: output positions x kernel taps, as one "row" of the 2D formula.
    return conv_arithmetic.conv_flops(
        math.prod(out_shape[1:-1]), 1, in_shape[-1], out_shape[-1], (taps, 1),
        module.feature_group_count, module.use_bias)
  if isinstance(module, PaddedConv):  # FastCNN's stem: a 3x3 conv.
    return conv_arithmetic.conv_flops(math.prod(out_shape[1:-1]), 1, in_shape[-1],
                                      out_shape[-1], (9, 1), 1, module.use_bias)
  if isinstance(module, nn.Dense):
    positions = math.prod(out_shape[1:-1])  # A Dense on a map runs per pixel.
    return positions * conv_arithmetic.dense_flops(in_shape[-1], out_shape[-1],
                                                   module.use_bias)
  return 0


def _own_params(params: dict, path: Sequence[str]) -> int:
  """Parameters a module creates itself (not those of its submodules)."""
  node = params
  for name in path:
    node = node.get(name, {})
  return sum(math.prod(v.shape) for v in node.values() if not isinstance(v, dict))


def _record_calls(model: nn.Module, input_shape: Sequence[int]):
  calls = []

  def interceptor(next_fun, args, kwargs, context):
    if context.method_name != '__call__' or not args:
      return next_fun(*args, **kwargs)
    entry = {'module': context.module, 'in_shape': tuple(args[0].shape)}
    calls.append(entry)  # Before the call: the list is in call order.
    out = next_fun(*args, **kwargs)
    entry['out_shape'] = tuple(out.shape) if hasattr(out, 'shape') else None
    return out

  def init():
    with nn.intercept_methods(interceptor):
      rngs = {'params': jax.random.key(0), 'dropout': jax.random.key(1)}
      return model.init(rngs, jnp.zeros((1, *input_shape)), train=False)

  variables = jax.eval_shape(init)
  return variables, calls


def summarize(config: ml_collections.ConfigDict, input_shape: Sequence[int],
              num_classes: int) -> dict[str, Any]:
  """The summary of `config.model` on one `input_shape` (H, W, C) image."""
  model = create_model(config.model, num_classes, jnp.float32)
  variables, calls = _record_calls(model, input_shape)
  params = variables.get('params', {})
  layers, seen = [], set()
  for call in calls:
    path, out_shape = call['module'].path, call['out_shape']
    own = 0 if path in seen else _own_params(params, path)  # Shared: count once.
    seen.add(path)
    flops = _layer_flops(call['module'], call['in_shape'], out_shape)
    if not (own or flops):  # Containers, dropout: nothing of their own.
      continue
    layers.append({
        'path': '/'.join(path) or type(call['module']).__name__,
        'type': type(call['module']).__name__,
        'output_shape': list(out_shape[1:]) if out_shape else None,
        'volume': math.prod(out_shape[1:]) if out_shape else 0,
        'params': own,
        'flops': flops,
    })
  count = lambda tree: sum(math.prod(v.shape) for v in jax.tree.leaves(tree))
  return {
      'model': config.model.name,
      'input_shape': list(input_shape),
      'num_classes': num_classes,
      'total_params': sum(l['params'] for l in layers),
      'total_flops': sum(l['flops'] for l in layers),
      'batch_stats': count(variables.get('batch_stats', {})),
      'layers': layers,
  }


def format_table(summary: dict[str, Any]) -> str:
  header = ('layer', 'type', 'output shape', 'H*W*C', 'params', 'FLOPs')
  rows = [(l['path'], l['type'], 'x'.join(map(str, l['output_shape'] or [])),
           f"{l['volume']:,}", f"{l['params']:,}", f"{l['flops']:,}")
          for l in summary['layers']]
  rows.append(('total', '', '', '', f"{summary['total_params']:,}",
               f"{summary['total_flops']:,}"))
  widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
  line = lambda r: '  '.join(c.ljust(w) if i < 3 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths)))
  rule = '-' * len(line(header))
  shape = 'x'.join(map(str, summary['input_shape']))
  return '\n'.join([
      f"{summary['model']} on {shape} input, {summary['num_classes']} classes "
      f"(per example; FLOPs: multiply-add = 2, conv and dense layers only)",
      line(header), rule, *map(line, rows[:-1]), rule, line(rows[-1]),
      f"{summary['total_params']:,} params "
      f"({summary['total_params'] / 1e6:.3f}M), "
      f"{summary['total_flops'] / 1e6:.1f} MFLOPs, "
      f"{summary['batch_stats']:,} BatchNorm statistics (not params)"])


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}')
  FLAGS = flags.FLAGS
  config = FLAGS.config
  shape = (parse_shape(FLAGS.input_shape) if FLAGS.input_shape
           else default_input_shape(config))
  num_classes = FLAGS.num_classes or default_num_classes(config)
  summary = summarize(config, shape, num_classes)
  print(format_table(summary))
  if FLAGS.json:
    print(json.dumps(summary))


def define_flags() -> None:
  """Defined on demand, so importing this module next to `main` is safe."""
  cli.define_flags()
  flags.DEFINE_string('input_shape', '', 'H,W,C of one image. Default: '
                      'data.image_size if > 0, else 32,32,3.')
  flags.DEFINE_integer('num_classes', 0, 'Classes. Default: 1000 for '
                       'imagenet2012, 100 for cifar100, else 10.')
  flags.DEFINE_bool('json', False, 'Also print the summary as one JSON line, last.')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
