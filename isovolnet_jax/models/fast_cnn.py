"""FastCNN: a plain conv-BN-ReLU stack with max pools, for fast CPU training.

The default is the CPU-speed reference net: 3x3 convs 24-32-32-64-64-80-80, a
2x2 max pool after the 2nd, 4th and 6th conv, global max pool and one dense
layer; 177,314 parameters for 10 classes. `configs/cifar10_fast_cpu.py`
trains it and `isovolnet_jax.bench.benchmark` times it against the same net
in PyTorch (`isovolnet_jax/bench/torch_models.py`).

Plain 3x3 convs, not depthwise-separable ones: XLA's CPU depthwise conv runs
at a small fraction of a dense conv's FLOP/s (docs/performance.md).
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from isovolnet_jax.airbench import model as airbench_model
from isovolnet_jax.models import layers


class PaddedConv(nn.Module):
  """nn.Conv (3x3, SAME) computed on inputs zero-padded to 4 channels.

  The same function and parameters as nn.Conv on 3 channels (the extra input
  channel is zero and its kernel slice a constant zero), but XLA's CPU conv has
  a slow path for 3 input channels, several times slower forward and about
  twice in the kernel gradient (docs/performance.md, "Figures behind code
  choices"). oneDNN has none: with 'onednn' the input is not padded.
  """
  features: int
  channels_to: int = 4
  use_bias: bool = False
  conv_impl: str = 'auto'
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (3, 3, c, self.features), jnp.float32)
    conv = layers.conv_function(self.conv_impl, self.conv_dtype)
    extra = 0 if layers.runs_onednn_on_cpu(conv) else max(0, self.channels_to - c)
    x = jnp.pad(x, ((0, 0),) * 3 + ((0, extra),)).astype(self.dtype)
    kernel = jnp.pad(kernel, ((0, 0), (0, 0), (0, extra), (0, 0))).astype(self.dtype)
    y = conv(x, kernel, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    if self.use_bias:  # As ConvNormAct's conv has one when there is no norm.
      y = y + self.param('bias', nn.initializers.zeros, (self.features,),
                         jnp.float32).astype(self.dtype)
    return y


class Stem(nn.Module):
  """conv0 of FastCNN: PaddedConv -> norm -> activation, named as ConvNormAct
  and, like it, one oneDNN call in inference where oneDNN runs the convs (then
  the input is not padded: the same conv as ConvNormAct's)."""
  features: int
  norm: str = 'batch'
  activation: str = 'relu'
  conv_impl: str = 'auto'
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    if layers.fuses_inference(self, train):
      return layers.fused_inference_call(self, x)
    x = PaddedConv(self.features, use_bias=self.norm == 'none', conv_impl=self.conv_impl,
                   conv_dtype=self.conv_dtype, dtype=self.dtype, name='Conv_0')(x)
    x = layers.norm_layer(self.norm, train, self.dtype)(name='BatchNorm_0')(x)
    return layers.activation_fn(self.activation)(x)


class FastCNN(nn.Module):
  num_classes: int
  widths: tuple[int, ...] = (24, 32, 32, 64, 64, 80, 80)
  pool_after: tuple[int, ...] = (1, 3, 5)  # 0-based conv indices.
  whiten_stem: bool = False    # airbench's 2x2 whitening conv + GELU before conv0 (3 -> 24).
  norm: str = 'batch'
  activation: str = 'relu'
  conv_impl: str = 'auto'      # 'auto', 'lax', 'unrolled', 'onednn' (layers.conv_function).
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    if self.whiten_stem:
      # Padded ((0, 1), (0, 1)): 32x32 stays 32x32, so the pools see the
      # shapes they do without the stem (16, 8, 4). conv0 then takes 24
      # channels, a plain ConvNormAct (the 3-channel PaddedConv is not needed).
      x = airbench_model.whiten_stem(x, conv_impl=self.conv_impl, conv_dtype=self.conv_dtype,
                             dtype=self.dtype)
    for i, width in enumerate(self.widths):
      unit = Stem if i == 0 and x.shape[-1] < 4 else layers.ConvNormAct
      x = unit(width, norm=self.norm, activation=self.activation,
               conv_impl=self.conv_impl, conv_dtype=self.conv_dtype, dtype=self.dtype,
               name=f'conv{i}')(x, train)
      if i in self.pool_after:
        x = layers.max_pool_2x2(x)
    x = jnp.max(x, axis=(1, 2))
    x = nn.Dense(self.num_classes, dtype=self.dtype, name='classifier')(x)
    return x.astype(jnp.float32)
