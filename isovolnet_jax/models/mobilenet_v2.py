"""MobileNetV2 (Sandler et al. 2018; seed 001's inverted residual block).

Inverted residual: 1x1 expansion (x6) -> 3x3 depthwise -> 1x1 linear
projection (no activation: a ReLU on the narrow bottleneck would destroy
information), with a shortcut when stride is 1 and the width is unchanged.
Every conv is bias-free and followed by BatchNorm; activations are ReLU6.

Widths follow torchvision/Keras: `_make_divisible(c * width_multiplier, 8)`,
and the last 1x1 conv keeps 1280 channels for multipliers below 1. At width
1.0, 224x224x3 input and 1000 classes this is 3,504,872 parameters, the
reference count (BN scale and bias are params; running statistics are
`batch_stats`).

`cifar_stem=True` is the usual 32x32 variant: stem stride 1 and the first
stride-2 stage (24 channels) at stride 1, so the last feature map is 4x4
rather than 1x1.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from isovolnet_jax.errors import InputError
from isovolnet_jax.models import layers

# (expansion t, output channels c, repeats n, first stride s): the paper's Table 2.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
          (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
STEM, LAST = 32, 1280


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
  """The reference rounding: nearest multiple of 8, never more than 10% down."""
  min_value = min_value or divisor
  new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
  if new_v < 0.9 * v:
    new_v += divisor
  return new_v


class InvertedResidual(nn.Module):
  features: int
  strides: int
  expansion: int
  norm: str = 'batch'
  activation: str = 'relu6'
  conv_impl: str = 'auto'
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    common = dict(norm=self.norm, conv_impl=self.conv_impl, conv_dtype=self.conv_dtype,
                  dtype=self.dtype)
    in_features = x.shape[-1]
    hidden = in_features * self.expansion
    y = x
    if self.expansion != 1:  # t = 1 (first stage) has no expansion conv.
      y = layers.ConvNormAct(hidden, (1, 1), activation=self.activation,
                             name='expand', **common)(y, train)
    y = layers.ConvNormAct(hidden, (3, 3), strides=self.strides, groups=hidden,
                           activation=self.activation, name='depthwise',
                           **common)(y, train)
    y = layers.ConvNormAct(self.features, (1, 1), activation=None,
                           name='project', **common)(y, train)
    if self.strides == 1 and in_features == self.features:
      y = x + y
    return y


class MobileNetV2(nn.Module):
  num_classes: int
  width_multiplier: float = 1.0
  cifar_stem: bool = False      # Stem stride 1 and first stride-2 stage at 1.
  expansion: int = 6            # t of every stage but the first (which is 1).
  dropout: float = 0.2          # Before the classifier, as the reference.
  norm: str = 'batch'
  activation: str = 'relu6'
  conv_impl: str = 'auto'      # Depthwise/grouped convs: 'auto', 'lax', 'unrolled'.
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  def __post_init__(self):
    if self.width_multiplier <= 0:
      raise InputError(f'model.width_multiplier={self.width_multiplier} must be > 0')
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False):
    w = self.width_multiplier
    common = dict(norm=self.norm, activation=self.activation,
                  conv_impl=self.conv_impl, conv_dtype=self.conv_dtype, dtype=self.dtype)
    x = x.astype(self.dtype)
    x = layers.ConvNormAct(make_divisible(STEM * w), (3, 3),
                           strides=1 if self.cifar_stem else 2, name='stem',
                           **common)(x, train)
    for i, (t, c, n, s) in enumerate(STAGES):
      if self.cifar_stem and i == 1:
        s = 1
      for j in range(n):
        x = InvertedResidual(make_divisible(c * w), s if j == 0 else 1,
                             self.expansion if t != 1 else 1,
                             name=f'stage{i + 1}_block{j + 1}', **common)(x, train)
    # The head never narrows below 1280 (torchvision: `max(1.0, w)`).
    x = layers.ConvNormAct(make_divisible(LAST * max(1.0, w)), (1, 1),
                           name='head', **common)(x, train)
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(self.num_classes, dtype=self.dtype, name='classifier')(x)
    return x.astype(jnp.float32)
