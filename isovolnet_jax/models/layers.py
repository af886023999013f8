"""Building blocks shared by the models."""

import functools
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from isovolnet_jax.errors import InputError

ACTIVATIONS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    'relu': nn.relu,
    'leaky_relu': nn.leaky_relu,  # slope 0.01, as PyTorch's default.
    'swish': nn.swish,
    'relu6': nn.relu6,
}


def activation_fn(name: str) -> Callable[[jnp.ndarray], jnp.ndarray]:
  if name not in ACTIVATIONS:
    raise InputError(f'unknown model.activation={name!r}; choose one of '
                     f'{sorted(ACTIVATIONS)}')
  return ACTIVATIONS[name]


def norm_layer(name: str, train: bool, dtype: Any) -> Callable[..., Any]:
  """BatchNorm (statistics kept in float32 whatever the compute dtype)."""
  if name == 'batch':
    return functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=0.9, epsilon=1e-5, dtype=dtype,
                             param_dtype=jnp.float32)
  if name == 'none':
    return lambda **kw: (lambda x: x)
  raise InputError(f"unknown model.norm={name!r}; choose 'batch' or 'none'")


class ConvNormAct(nn.Module):
  """conv -> norm -> activation, the unit every model here repeats."""
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: int = 1
  dilation: int = 1
  groups: int = 1
  norm: str = 'batch'
  activation: str | None = 'relu'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.Conv(self.features, self.kernel_size, strides=self.strides,
                kernel_dilation=self.dilation, padding='SAME',
                feature_group_count=self.groups,
                use_bias=self.norm == 'none', dtype=self.dtype)(x)
    x = norm_layer(self.norm, train, self.dtype)()(x)
    if self.activation is not None:
      x = activation_fn(self.activation)(x)
    return x


class SeparableConv(nn.Module):
  """Depthwise k x k conv then pointwise 1 x 1 conv, each with norm + act.

  With `separable=False` it is the standard-conv twin: one full k x k conv to
  the same output width, for the efficiency comparison of seeds 001/003.
  """
  features: int
  kernel_size: int = 3
  dilation: int = 1
  separable: bool = True
  norm: str = 'batch'
  activation: str = 'relu'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    k = (self.kernel_size, self.kernel_size)
    common = dict(norm=self.norm, activation=self.activation, dtype=self.dtype)
    if not self.separable:
      return ConvNormAct(self.features, k, dilation=self.dilation,
                         **common)(x, train)
    channels = x.shape[-1]
    x = ConvNormAct(channels, k, dilation=self.dilation, groups=channels,
                    name='depthwise', **common)(x, train)
    return ConvNormAct(self.features, (1, 1), name='pointwise',
                       **common)(x, train)
