"""SimpleCNN (seed 004): three conv-BN-ReLU-maxpool blocks and an MLP head.

3x3 convs at 64, 128, 256 channels, each halved by 2x2 max pooling, global
average pooling, Linear 256 -> 128, ReLU, Dropout 0.5, Linear -> classes.

The seed's `nn.Conv2d` keeps PyTorch's default bias even though BatchNorm
follows (the bias is redundant but trained); we keep it so the count matches
the seed's model: 405,898 parameters for 10 classes.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from isovolnet_jax.models import layers


class SimpleCNN(nn.Module):
  num_classes: int
  widths: tuple[int, ...] = (64, 128, 256)
  hidden: int = 128
  dropout: float = 0.5
  norm: str = 'batch'
  activation: str = 'relu'
  conv_impl: str = 'auto'      # 'auto', 'lax', 'unrolled', 'onednn' (layers.conv_function).
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    act = layers.activation_fn(self.activation)
    x = x.astype(self.dtype)
    for i, width in enumerate(self.widths):
      x = layers.Conv(width, (3, 3), padding=1, use_bias=True, dtype=self.dtype,
                      conv_impl=self.conv_impl, conv_dtype=self.conv_dtype, name=f'conv{i + 1}')(x)
      x = layers.norm_layer(self.norm, train, self.dtype)(name=f'norm{i + 1}')(x)
      x = layers.max_pool_2x2(act(x))
    x = jnp.mean(x, axis=(1, 2))
    x = act(nn.Dense(self.hidden, dtype=self.dtype, name='fc1')(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(self.num_classes, dtype=self.dtype, name='classifier')(x)
    return x.astype(jnp.float32)
