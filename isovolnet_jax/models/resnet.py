"""CIFAR ResNet (He et al. 2016, section 4.2): `resnet20` is depth 20.

3x3 conv (16) -> three stages of n basic blocks at 16, 32, 64 channels
(32x32, 16x16, 8x8; the first block of stages 2 and 3 has stride 2) ->
global average pool -> dense. depth = 6n + 2.

Shortcuts are option A, the paper's choice for CIFAR: identity, and where the
shape changes, subsample by 2 and zero-pad the new channels, so shortcuts
have no parameters. ResNet-20 then has 269,722 parameters (the paper's
"0.27M"; BN scale and bias counted, running statistics are `batch_stats`).
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from isovolnet_jax.errors import InputError
from isovolnet_jax.models import layers

WIDTHS = (16, 32, 64)


class BasicBlock(nn.Module):
  features: int
  strides: int
  norm: str = 'batch'
  activation: str = 'relu'
  conv_impl: str = 'auto'
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    common = dict(norm=self.norm, conv_impl=self.conv_impl, conv_dtype=self.conv_dtype,
                  dtype=self.dtype)
    y = layers.ConvNormAct(self.features, strides=self.strides,
                           activation=self.activation, name='conv1',
                           **common)(x, train)
    y = layers.ConvNormAct(self.features, activation=None, name='conv2',
                           **common)(y, train)
    if x.shape != y.shape:  # Option A: parameter-free projection.
      x = x[:, ::self.strides, ::self.strides, :]
      extra = self.features - x.shape[-1]
      x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
    return layers.activation_fn(self.activation)(x + y)


class CifarResNet(nn.Module):
  num_classes: int
  depth: int = 20
  norm: str = 'batch'
  activation: str = 'relu'
  conv_impl: str = 'auto'      # 'auto', 'lax', 'unrolled', 'onednn' (layers.conv_function).
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  def __post_init__(self):
    if self.depth < 8 or (self.depth - 2) % 6:
      raise InputError(f'model.depth={self.depth} is not 6n + 2 (20, 32, 44, 56, 110)')
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False):
    common = dict(norm=self.norm, activation=self.activation, conv_impl=self.conv_impl,
                  conv_dtype=self.conv_dtype, dtype=self.dtype)
    x = x.astype(self.dtype)
    x = layers.ConvNormAct(WIDTHS[0], name='stem', **common)(x, train)
    for i, width in enumerate(WIDTHS):
      for j in range((self.depth - 2) // 6):
        x = BasicBlock(width, 2 if i > 0 and j == 0 else 1,
                       name=f'stage{i + 1}_block{j + 1}', **common)(x, train)
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dense(self.num_classes, dtype=self.dtype, name='classifier')(x)
    return x.astype(jnp.float32)
