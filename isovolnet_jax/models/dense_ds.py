"""Seed 003's net: four dense blocks of depthwise-separable convs.

stem 3x3 conv (2 x growth_rate channels, DenseNet-BC's CIFAR stem) ->
4 dense blocks -> global average pool -> dense classifier. In a dense block
every layer sees the concatenation of all earlier feature maps and adds
`growth_rate` new channels; a layer is a depthwise 3x3 conv and a pointwise
1x1 conv, each with BN + activation (`layers.SeparableConv`), then dropout.
Between blocks a DenseNet-BC transition: 1x1 conv to `compression` x the
channels, then 2x2 average pooling (32 -> 16 -> 8 -> 4).

`conv='standard'` swaps each depthwise-separable conv for one full 3x3 conv
of the same width: the seed's comparison of the two.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from isovolnet_jax.errors import InputError
from isovolnet_jax.models import layers


class DenseDS(nn.Module):
  num_classes: int
  growth_rate: int = 32
  layers_per_block: int = 6
  num_blocks: int = 4           # The seed's four dense blocks.
  compression: float = 0.5      # Transition width / its input width.
  stem_features: int = 0        # 0: 2 x growth_rate.
  dropout: float = 0.1          # After every dense layer.
  conv: str = 'separable'       # or 'standard': the full-conv twin.
  norm: str = 'batch'
  activation: str = 'relu'
  conv_impl: str = 'auto'      # Depthwise/grouped convs: 'auto', 'lax', 'unrolled'.
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  def __post_init__(self):
    if self.conv not in ('separable', 'standard'):
      raise InputError(f"unknown model.conv={self.conv!r}; choose 'separable' "
                       f"or 'standard'")
    if not 0 < self.compression <= 1:
      raise InputError(f'model.compression={self.compression} must be in (0, 1]')
    if min(self.growth_rate, self.layers_per_block, self.num_blocks) < 1:
      raise InputError('model.growth_rate, layers_per_block and num_blocks '
                       'must be >= 1')
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False):
    common = dict(norm=self.norm, activation=self.activation,
                  conv_impl=self.conv_impl, conv_dtype=self.conv_dtype, dtype=self.dtype)
    x = x.astype(self.dtype)
    x = layers.ConvNormAct(self.stem_features or 2 * self.growth_rate,
                           name='stem', **common)(x, train)
    for b in range(self.num_blocks):
      for i in range(self.layers_per_block):
        y = layers.SeparableConv(self.growth_rate,
                                 separable=self.conv == 'separable',
                                 name=f'block{b + 1}_layer{i + 1}',
                                 **common)(x, train)
        y = nn.Dropout(self.dropout, deterministic=not train)(y)
        x = jnp.concatenate([x, y], axis=-1)
      if b < self.num_blocks - 1:
        width = max(1, int(x.shape[-1] * self.compression))
        x = layers.ConvNormAct(width, (1, 1), name=f'transition{b + 1}',
                               **common)(x, train)
        x = layers.avg_pool_2x2(x)
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dense(self.num_classes, dtype=self.dtype, name='classifier')(x)
    return x.astype(jnp.float32)
