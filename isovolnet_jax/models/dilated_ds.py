"""Seed 002's dilated "depthwise separable" residual net (100,416 params).

Rebuilt from the seed's torchsummary table, which is the ground truth:

  Conv2d-1    3 -> 64, 3x3, no padding, no bias        32 -> 30      1,728
  BN                                                                   128
  9 x [grouped 3x3 conv 64 -> 128, no bias                           2,304
       BN                                                              256
       1x1 conv 128 -> 64, no bias                                   8,192
       BN]                                                             128
                                          9 x 10,880 =              97,920
  global average pool, 1x1 conv 64 -> 10, no bias (a Dense)            640
                                                           total   100,416

Our count is the same 100,416 (BN scale + bias = torchsummary's BN weight +
bias; running statistics are `batch_stats` here and buffers there).

What the table fixes and what it does not:
  * 2,304 = 3*3 * 2 * 128: the "depthwise" conv is a grouped conv with 32
    groups (2 input channels each), not a true depthwise conv (which, with
    depth multiplier 2, would have 1,152). `groups=32` reproduces the table.
  * The first two blocks shrink 30 -> 28 -> 26 (unpadded, dilation 1); the
    other seven keep 26x26 (padding = dilation). Dilations and the residual
    adds change neither shapes nor counts, so the table cannot show them:
    they come from the seed author's model.py of the same commit
    (dilations 2, 4, 8, 12, 16, 20, 22; `x = x + block(x)` on those seven
    blocks, the ones whose input and output shapes match).
  * Each unit is conv -> ReLU -> BN -> dropout (activation before norm), the
    seed's order and the table's row order; dropout 0.05.
  * The seed ends in log_softmax; we return the logits (same loss under
    softmax cross-entropy).
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from isovolnet_jax.errors import InputError
from isovolnet_jax.airbench import model as airbench_model
from isovolnet_jax.models import layers


class ConvActNorm(nn.Module):
  """conv -> activation -> norm -> dropout: the seed's unit order."""
  features: int
  kernel_size: int = 3
  dilation: int = 1
  groups: int = 1
  padding: str = 'SAME'
  dropout: float = 0.0
  norm: str = 'batch'
  activation: str = 'relu'
  conv_impl: str = 'auto'
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    k = (self.kernel_size, self.kernel_size)
    x = layers.Conv(self.features, k, kernel_dilation=self.dilation,
                    padding=self.padding, feature_group_count=self.groups,
                    use_bias=self.norm == 'none', dtype=self.dtype,
                    conv_impl=self.conv_impl, conv_dtype=self.conv_dtype, name='conv')(x)
    x = layers.activation_fn(self.activation)(x)
    x = layers.norm_layer(self.norm, train, self.dtype)(name='norm')(x)
    return nn.Dropout(self.dropout, deterministic=not train)(x)


class DilatedDS(nn.Module):
  num_classes: int
  width: int = 64               # Channels between blocks.
  expanded: int = 128           # Channels inside a block (grouped conv output).
  groups: int = 32              # Of the 3x3 conv; the table's 2,304 needs 32.
  dilations: tuple[int, ...] = (1, 1, 2, 4, 8, 12, 16, 20, 22)
  valid_blocks: int = 2         # First blocks: unpadded, shrink, no shortcut.
  whiten_stem: bool = False     # airbench's 2x2 whitening conv + GELU before the stem (3 -> 24).
  dropout: float = 0.05
  norm: str = 'batch'
  activation: str = 'relu'
  conv_impl: str = 'auto'      # Depthwise/grouped convs: 'auto', 'lax', 'unrolled'.
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  def __post_init__(self):
    if self.width % self.groups or self.expanded % self.groups:
      raise InputError(f'model.groups={self.groups} must divide model.width='
                       f'{self.width} and model.expanded={self.expanded}')
    if not 0 <= self.valid_blocks <= len(self.dilations):
      raise InputError(f'model.valid_blocks={self.valid_blocks} must be between '
                       f'0 and len(model.dilations)={len(self.dilations)}')
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False):
    common = dict(dropout=self.dropout, norm=self.norm, activation=self.activation,
                  conv_impl=self.conv_impl, conv_dtype=self.conv_dtype, dtype=self.dtype)
    x = x.astype(self.dtype)
    if self.whiten_stem:
      # Padded ((0, 1), (0, 1)): 32x32 stays 32x32, so the seed's shapes
      # (30, 28, 26 after the VALID stem and blocks) are unchanged.
      x = airbench_model.whiten_stem(x, conv_impl=self.conv_impl, conv_dtype=self.conv_dtype,
                             dtype=self.dtype)
    x = ConvActNorm(self.width, padding='VALID', name='stem', **common)(x, train)
    for i, d in enumerate(self.dilations):
      valid = i < self.valid_blocks
      y = ConvActNorm(self.expanded, dilation=d, groups=self.groups,
                      padding='VALID' if valid else 'SAME',
                      name=f'block{i + 1}_grouped', **common)(x, train)
      y = ConvActNorm(self.width, kernel_size=1, name=f'block{i + 1}_pointwise',
                      **common)(y, train)
      x = y if valid else x + y
    x = jnp.mean(x, axis=(1, 2))
    # The seed's 1x1 conv on the pooled 1x1 map is a bias-free Dense.
    x = nn.Dense(self.num_classes, use_bias=False, dtype=self.dtype,
                 name='classifier')(x)
    return x.astype(jnp.float32)
