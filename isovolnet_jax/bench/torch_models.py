"""PyTorch twins of the Flax models, to time the same net in both frameworks.

`build(config.model, num_classes, image_shape)` is the twin of
`models.create_model`: the same layers and hyper-parameters, read from the
flax module itself so the defaults cannot drift. `load_flax_variables` copies
flax variables into a twin; with them both compute the same logits (tests).

Twins take NCHW float tensors, contiguous or channels_last. Their module names
mirror the flax variable tree (`conv0.Conv_0.weight` is
`params/conv0/Conv_0/kernel`), which lets one loader serve every model.
Flax's BatchNorm momentum 0.9 is torch's 0.1; in training torch updates the
running variance with the unbiased batch variance, flax with the biased one.

torch is imported on first use, not with this module: JAX runs never need it.
"""

import collections
import dataclasses
import functools
import types
from typing import Any, Iterator, Mapping, Sequence

import ml_collections
import numpy as np

from isovolnet_jax import models
from isovolnet_jax.errors import InputError
from isovolnet_jax.models import isovolnet, mobilenet_v2, resnet
from isovolnet_jax.models import layers as flax_layers

ACTIVATIONS = ('relu', 'leaky_relu', 'swish', 'relu6')  # What the twins have.
NORMS = ('batch', 'none')


@functools.cache
def _lib() -> types.SimpleNamespace:
  """torch, torch.nn and the few layers the twins add to them."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise InputError("PyTorch is not installed; run pip install -e '.[bench]'") from None
  from torch import nn  # pylint: disable=g-import-not-at-top
  from torch.nn import functional as F  # pylint: disable=g-import-not-at-top

  class SameConv2d(nn.Conv2d):
    """A conv padded as flax's 'SAME': the odd pixel of padding goes last.

    torch's own padding is symmetric, so it cannot give the (0, 1) that a 3x3
    stride-2 conv on an even input needs; the pads depend on the input size.
    """

    def forward(self, x):
      pads = []
      for n, k, s, d in reversed(list(zip(x.shape[2:], self.kernel_size,
                                          self.stride, self.dilation))):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pads += [total // 2, total - total // 2]
      return super().forward(F.pad(x, pads))

  class Residual(nn.Sequential):
    """`post(shortcut(x) + layers(x))`.

    The shortcut subsamples by `stride` and zero-pads `pad_channels` (ResNet
    option A; identity by default). `post` is a function, not a module, so
    Sequential does not run it as a layer. `flat=True`: the flax model has no
    module for the block, its layers sit at the parent level.
    """

    def __init__(self, layers, stride=1, pad_channels=(0, 0), post=None,
                 flat=False):
      super().__init__(collections.OrderedDict(layers))
      self.stride, self.pad_channels, self.post = stride, pad_channels, post
      self.flax_flat = flat

    def forward(self, x):
      y = super().forward(x)
      if self.stride != 1:
        x = x[:, :, ::self.stride, ::self.stride]
      if any(self.pad_channels):
        x = F.pad(x, (0, 0, 0, 0, *self.pad_channels))
      y = x + y
      return self.post(y) if self.post is not None else y

  class Concat(nn.Sequential):
    """A DenseNet layer: its input and its new features, stacked on channels."""

    def forward(self, x):
      return torch.cat([x, super().forward(x)], dim=1)

  class GlobalPool(nn.Module):
    """NCHW -> NC by 'max' or 'mean' over H and W."""

    def __init__(self, op: str):
      super().__init__()
      self.op = op

    def forward(self, x):
      return x.amax(dim=(2, 3)) if self.op == 'max' else x.mean(dim=(2, 3))

  # In place is safe after a conv or a norm (a fresh tensor) and its backward
  # reads the output; SiLU's needs the input, so it runs out of place.
  acts = {'relu': lambda: nn.ReLU(inplace=True),
          'leaky_relu': lambda: nn.LeakyReLU(0.01, inplace=True),
          'swish': nn.SiLU, 'relu6': lambda: nn.ReLU6(inplace=True)}
  act_fns = {'relu': F.relu, 'leaky_relu': F.leaky_relu, 'swish': F.silu,
             'relu6': F.relu6}
  return types.SimpleNamespace(
      torch=torch, nn=nn, acts=acts, act_fns=act_fns, SameConv2d=SameConv2d,
      Residual=Residual, Concat=Concat, GlobalPool=GlobalPool)


def _seq(layers: Mapping[str, Any]):
  return _lib().nn.Sequential(collections.OrderedDict(layers))


def _conv(cin, cout, k, stride=1, dilation=1, groups=1, padding='SAME',
          bias=False):
  """nn.Conv2d padded like flax's `padding` ('SAME', 'VALID' or an int)."""
  t = _lib()
  if padding == 'SAME':
    if stride != 1 or (k - 1) * dilation % 2:  # Asymmetric or size-dependent.
      return t.SameConv2d(cin, cout, k, stride, 0, dilation, groups, bias)
    padding = (k - 1) * dilation // 2
  elif padding == 'VALID':
    padding = 0
  return t.nn.Conv2d(cin, cout, k, stride, padding, dilation, groups, bias)


def _conv_norm_act(cin, cout, k=3, *, norm, act, stride=1, dilation=1,
                   groups=1, padding='SAME', act_first=False, dropout=0.0,
                   names=('Conv_0', 'BatchNorm_0')):
  """layers.ConvNormAct (or, with act_first, dilated_ds.ConvActNorm)."""
  t = _lib()
  conv = {names[0]: _conv(cin, cout, k, stride, dilation, groups, padding,
                          bias=norm == 'none')}
  bn = {}
  if norm == 'batch':  # Flax's momentum 0.9 keeps 0.9 of the old statistics.
    bn[names[1]] = t.nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
  act = {'act': t.acts[act]()} if act else {}
  layers = {**conv, **act, **bn} if act_first else {**conv, **bn, **act}
  if dropout:
    layers['dropout'] = t.nn.Dropout(dropout)
  return _seq(layers)


def _separable(cin, cout, separable, norm, act) -> dict[str, Any]:
  """The layers of layers.SeparableConv, under its flax names."""
  if not separable:
    return {'ConvNormAct_0': _conv_norm_act(cin, cout, norm=norm, act=act)}
  return {'depthwise': _conv_norm_act(cin, cin, groups=cin, norm=norm, act=act),
          'pointwise': _conv_norm_act(cin, cout, 1, norm=norm, act=act)}


def _head(layers, pool, dropout, cin, num_classes, bias=True):
  """Global pool ('max', 'mean' or None) -> dropout -> dense classifier."""
  t = _lib()
  if pool:
    layers['global_pool'] = t.GlobalPool(pool)
  if dropout:
    layers['dropout'] = t.nn.Dropout(dropout)
  layers['classifier'] = t.nn.Linear(cin, num_classes, bias=bias)
  return _seq(layers)


def _fast_cnn(m, image_shape):
  layers, cin = {}, image_shape[-1]
  for i, width in enumerate(m.widths):
    layers[f'conv{i}'] = _conv_norm_act(cin, width, norm=m.norm, act=m.activation)
    if i in m.pool_after:
      layers[f'pool{i}'] = _lib().nn.MaxPool2d(2)  # Floor, as the reshape pool.
    cin = width
  return _head(layers, 'max', 0.0, cin, m.num_classes)


def _isovolnet(m, image_shape):
  # The block count can depend on the image size, which flax reads off its input.
  blocks = isovolnet.plan(image_shape, m.stem_features, m.num_blocks,
                          m.channel_multiplier)
  nn, layers = _lib().nn, {}
  if m.stem_features:
    layers['stem'] = _conv_norm_act(image_shape[-1], m.stem_features,
                                    norm=m.norm, act=m.activation)
  pool = nn.MaxPool2d if m.pool == 'max' else nn.AvgPool2d
  for i, block in enumerate(blocks):
    cin = block.in_shape[2]
    for j in range(m.convs_per_block):
      cout = block.out_shape[2] if j == m.convs_per_block - 1 else cin
      layers[f'block{i + 1}_conv{j + 1}'] = _seq(_separable(
          cin, cout, m.conv == 'separable', m.norm, m.activation))
      cin = cout
    layers[f'block{i + 1}_pool'] = pool(2)
  return _head(layers, 'max', m.dropout, blocks[-1].out_shape[2], m.num_classes)


def _dilated_ds(m, image_shape):
  common = dict(norm=m.norm, act=m.activation, act_first=True,
                dropout=m.dropout, names=('conv', 'norm'))
  layers = {'stem': _conv_norm_act(image_shape[-1], m.width, padding='VALID',
                                   **common)}
  for i, d in enumerate(m.dilations):
    valid = i < m.valid_blocks
    pair = {
        f'block{i + 1}_grouped': _conv_norm_act(
            m.width, m.expanded, dilation=d, groups=m.groups,
            padding='VALID' if valid else 'SAME', **common),
        f'block{i + 1}_pointwise': _conv_norm_act(m.expanded, m.width, 1, **common)}
    if valid:
      layers.update(pair)
    else:
      layers[f'block{i + 1}'] = _lib().Residual(pair, flat=True)
  return _head(layers, 'mean', 0.0, m.width, m.num_classes, bias=False)


def _resnet20(m, image_shape):
  t, common = _lib(), dict(norm=m.norm)
  cin = resnet.WIDTHS[0]
  layers = {'stem': _conv_norm_act(image_shape[-1], cin, act=m.activation, **common)}
  for i, width in enumerate(resnet.WIDTHS):
    for j in range((m.depth - 2) // 6):
      stride, extra = (2 if i > 0 and j == 0 else 1), width - cin
      body = {'conv1': _conv_norm_act(cin, width, stride=stride,
                                      act=m.activation, **common),
              'conv2': _conv_norm_act(width, width, act=None, **common)}
      layers[f'stage{i + 1}_block{j + 1}'] = t.Residual(
          body, stride, (extra // 2, extra - extra // 2), t.act_fns[m.activation])
      cin = width
  return _head(layers, 'mean', 0.0, cin, m.num_classes)


def _simple_cnn(m, image_shape):
  t, layers, cin = _lib(), {}, image_shape[-1]
  for i, width in enumerate(m.widths, start=1):
    layers[f'conv{i}'] = _conv(cin, width, 3, padding=1, bias=True)
    if m.norm == 'batch':
      layers[f'norm{i}'] = t.nn.BatchNorm2d(width, eps=1e-5, momentum=0.1)
    layers[f'act{i}'] = t.acts[m.activation]()
    layers[f'pool{i}'] = t.nn.MaxPool2d(2)
    cin = width
  layers['global_pool'] = t.GlobalPool('mean')
  layers['fc1'] = t.nn.Linear(cin, m.hidden)
  layers['fc1_act'] = t.acts[m.activation]()
  return _head(layers, None, m.dropout, m.hidden, m.num_classes)


def _dense_ds(m, image_shape):
  t, common = _lib(), dict(norm=m.norm, act=m.activation)
  c = m.stem_features or 2 * m.growth_rate
  layers = {'stem': _conv_norm_act(image_shape[-1], c, **common)}
  for b in range(m.num_blocks):
    for i in range(m.layers_per_block):
      body = _separable(c, m.growth_rate, m.conv == 'separable', **common)
      if m.dropout:
        body['dropout'] = t.nn.Dropout(m.dropout)
      layers[f'block{b + 1}_layer{i + 1}'] = t.Concat(collections.OrderedDict(body))
      c += m.growth_rate
    if b < m.num_blocks - 1:
      width = max(1, int(c * m.compression))
      layers[f'transition{b + 1}'] = _conv_norm_act(c, width, 1, **common)
      layers[f'pool{b + 1}'] = t.nn.AvgPool2d(2)
      c = width
  return _head(layers, 'mean', 0.0, c, m.num_classes)


def _mobilenet_v2(m, image_shape):
  t, common = _lib(), dict(norm=m.norm)
  divisible, w = mobilenet_v2.make_divisible, m.width_multiplier
  cin = divisible(mobilenet_v2.STEM * w)
  layers = {'stem': _conv_norm_act(image_shape[-1], cin, act=m.activation,
                                   stride=1 if m.cifar_stem else 2, **common)}
  for i, (expansion, c, n, s) in enumerate(mobilenet_v2.STAGES):
    if m.cifar_stem and i == 1:
      s = 1
    for j in range(n):
      cout, stride = divisible(c * w), s if j == 0 else 1
      expansion = m.expansion if expansion != 1 else 1
      hidden, body = cin * expansion, {}
      if expansion != 1:
        body['expand'] = _conv_norm_act(cin, hidden, 1, act=m.activation, **common)
      body['depthwise'] = _conv_norm_act(hidden, hidden, stride=stride, groups=hidden,
                                         act=m.activation, **common)
      body['project'] = _conv_norm_act(hidden, cout, 1, act=None, **common)
      name = f'stage{i + 1}_block{j + 1}'
      if stride == 1 and cin == cout:
        layers[name] = t.Residual(body)
      else:
        layers[name] = _seq(body)
      cin = cout
  head = divisible(mobilenet_v2.LAST * max(1.0, w))
  layers['head'] = _conv_norm_act(cin, head, 1, act=m.activation, **common)
  return _head(layers, 'mean', m.dropout, head, m.num_classes)


BUILDERS = {
    'fast_cnn': _fast_cnn,
    'isovolnet': _isovolnet,
    'dilated_ds': _dilated_ds,
    'resnet20': _resnet20,
    'simple_cnn': _simple_cnn,
    'dense_ds': _dense_ds,
    'mobilenet_v2': _mobilenet_v2,
}


def build(model_config: ml_collections.ConfigDict, num_classes: int,
          image_shape: Sequence[int] = (32, 32, 3)) -> 'torch.nn.Module':
  """The torch twin of `models.create_model(model_config, num_classes)`.

  `image_shape` (H, W, C) fixes what flax reads off its input: the input
  channels and, for isovolnet with num_blocks=-1, the number of blocks.
  """
  name = model_config.get('name')
  if name not in BUILDERS:
    raise InputError(f'unknown model.name={name!r} for the PyTorch twin; choose '
                     f'one of {sorted(BUILDERS)}')
  # The flax module checks the options and holds the defaults, so the twin
  # reads the very values flax would use.
  m = models.create_model(model_config, num_classes)
  options = {f.name: getattr(m, f.name) for f in dataclasses.fields(m)}
  # Flax checks these two only when called; same messages, raised here.
  if options['activation'] not in ACTIVATIONS:
    flax_layers.activation_fn(options['activation'])
    raise InputError(f'the PyTorch twin has no model.activation='
                     f'{options["activation"]!r}; use one of {ACTIVATIONS}')
  if options['norm'] not in NORMS:
    flax_layers.norm_layer(options['norm'], False, None)
    raise InputError(f'the PyTorch twin has no model.norm={options["norm"]!r}')
  if options.get('whiten_stem'):
    raise InputError('the PyTorch twin has no model.whiten_stem; set '
                     '--config.model.whiten_stem=false')
  _lib()  # A missing torch is an InputError before any layer is built.
  return BUILDERS[name](m, tuple(image_shape))


def num_params(torch_model) -> int:
  """Trainable parameters: flax's `params` count (BN statistics are buffers)."""
  return sum(p.numel() for p in torch_model.parameters())


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...]) -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      out.update(_flatten(value, prefix + (key,)))
    else:
      out[prefix + (key,)] = value
  return out


def _flax_paths(module, path=()) -> Iterator[tuple[Any, tuple[str, ...]]]:
  """(module, its flax path), skipping the names of `flax_flat` modules."""
  yield module, path
  for name, child in module.named_children():
    child_path = path if getattr(child, 'flax_flat', False) else path + (name,)
    yield from _flax_paths(child, child_path)


# torch (layer, tensor) -> flax (collection, leaf, axes: flax -> torch layout).
_CONV = {'weight': ('params', 'kernel', (3, 2, 0, 1)),  # HWIO -> OIHW, grouped too.
         'bias': ('params', 'bias', None)}
_DENSE = {'weight': ('params', 'kernel', (1, 0)), 'bias': ('params', 'bias', None)}
_NORM = {'weight': ('params', 'scale', None), 'bias': ('params', 'bias', None),
         'running_mean': ('batch_stats', 'mean', None),
         'running_var': ('batch_stats', 'var', None)}


def _targets(torch_model) -> dict:
  """flax variable path -> (torch tensor, axes from the flax layout or None)."""
  nn = _lib().nn
  targets = {}
  for module, path in _flax_paths(torch_model):
    if isinstance(module, nn.Conv2d):
      leaves = _CONV
    elif isinstance(module, nn.Linear):
      leaves = _DENSE
    elif isinstance(module, nn.BatchNorm2d):
      leaves = _NORM
    else:
      leaves = {}
    tensors = dict(module.named_parameters(recurse=False))
    tensors.update(module.named_buffers(recurse=False))
    for attr, tensor in tensors.items():
      if attr == 'num_batches_tracked':  # Unused: momentum is fixed.
        continue
      if attr not in leaves:  # A twin bug, not bad input.
        raise TypeError(f'no flax twin for {type(module).__name__}.{attr}')
      collection, leaf, axes = leaves[attr]
      targets[(collection, *path, leaf)] = (tensor, axes)
  return targets


def load_flax_variables(torch_model, variables: Mapping[str, Any]) -> None:
  """Copies flax {'params', 'batch_stats'} into a twin: all of it or nothing."""
  torch = _lib().torch
  arrays = {}
  for collection in ('params', 'batch_stats'):
    arrays.update(_flatten(variables.get(collection, {}), (collection,)))
  targets = _targets(torch_model)
  show = lambda paths: ', '.join('/'.join(p) for p in sorted(paths)[:3])
  problems = []
  if missing := targets.keys() - arrays.keys():
    problems.append(f'{len(missing)} missing from the flax variables ({show(missing)})')
  if extra := arrays.keys() - targets.keys():
    problems.append(f'{len(extra)} not in the torch model ({show(extra)})')
  for path in sorted(targets.keys() & arrays.keys()):
    tensor, axes = targets[path]
    want = tuple(tensor.shape)
    if axes is not None:
      want = tuple(want[i] for i in np.argsort(axes))
    if np.shape(arrays[path]) != want:
      problems.append(f'{"/".join(path)} has shape {np.shape(arrays[path])}, '
                      f'the torch model needs {want}')
  if problems:
    more = f'; and {len(problems) - 4} more' if len(problems) > 4 else ''
    raise InputError('flax variables do not fit the torch model (same model '
                     'config and image shape?): ' + '; '.join(problems[:4]) + more)
  with torch.no_grad():
    for path, (tensor, axes) in targets.items():
      array = np.asarray(arrays[path], dtype=np.float32)  # bf16 has no torch twin.
      tensor.copy_(torch.tensor(array if axes is None else array.transpose(axes)))
