"""BatchNorm whose reductions cost what their bytes say on XLA:CPU.

The same module as `flax.linen.BatchNorm` as the models configure it (same
`scale`/`bias` params, `mean`/`var` batch statistics, momentum update, fast
variance E[x^2] - E[x]^2 clipped at 0, statistics in float32), with two
changes of how, not what:

  * per-channel sums reduce the batch axis first, over a wide H*W*C minor
    dimension (`unrolled_conv.channel_sum`): XLA:CPU's reductions to a
    handful of channels barely vectorise;
  * a custom VJP writes the training-mode backward pass as the textbook
    formula with two such sums (of g and of g * x_hat) instead of the
    reductions autodiff derives from the forward pass.

IsoVolNet's default net (configs/cifar10.py, batch 128 on one core) spent
80 of 245 ms of a forward + backward pass in BatchNorm with flax's module;
README "Speed" has the figures after this change.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from isovolnet_jax.models.unrolled_conv import channel_sum


def _stats(x):
  """(mean, biased variance) per channel, in float32, as flax computes them."""
  count = x.size // x.shape[-1]
  x = x.astype(jnp.float32)
  mean = channel_sum(x) / count
  mean2 = channel_sum(x * x) / count
  return mean, jnp.maximum(0.0, mean2 - mean * mean)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _normalize_train(x, scale, bias, epsilon):
  y, mean, var, _ = _train_fwd(x, scale, bias, epsilon)
  return y, mean, var


def _train_fwd(x, scale, bias, epsilon):
  mean, var = _stats(x)
  inv = jax.lax.rsqrt(var + epsilon)
  x_hat = (x.astype(jnp.float32) - mean) * inv
  y = (x_hat * scale + bias).astype(x.dtype)
  return y, mean, var, inv


def _normalize_train_fwd(x, scale, bias, epsilon):
  y, mean, var, inv = _train_fwd(x, scale, bias, epsilon)
  return (y, mean, var), (x, mean, inv, scale)


def _normalize_train_bwd(epsilon, res, cotangents):
  # The statistics are outputs only for the running averages, which the
  # module stops gradients through, so their cotangents are zero.
  x, mean, inv, scale = res
  g = cotangents[0].astype(jnp.float32)
  count = x.size // x.shape[-1]
  x_hat = (x.astype(jnp.float32) - mean) * inv
  d_bias = channel_sum(g)
  d_scale = channel_sum(g * x_hat)
  dx = (scale * inv / count) * (count * g - d_bias - x_hat * d_scale)
  return dx.astype(x.dtype), d_scale, d_bias


_normalize_train.defvjp(_normalize_train_fwd, _normalize_train_bwd)


class BatchNorm(nn.Module):
  """Per-channel (last axis) batch normalization; see the module docstring."""
  use_running_average: bool = False
  momentum: float = 0.9
  epsilon: float = 1e-5
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    ra_mean = self.variable('batch_stats', 'mean', lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable('batch_stats', 'var', lambda: jnp.ones((c,), jnp.float32))
    scale = self.param('scale', nn.initializers.ones, (c,), self.param_dtype)
    bias = self.param('bias', nn.initializers.zeros, (c,), self.param_dtype)
    dtype = self.dtype or x.dtype
    if self.use_running_average:
      mul = scale * jax.lax.rsqrt(ra_var.value + self.epsilon)
      return ((x.astype(jnp.float32) - ra_mean.value) * mul + bias).astype(dtype)
    y, mean, var = _normalize_train(x, scale.astype(jnp.float32),
                                    bias.astype(jnp.float32), self.epsilon)
    if not self.is_initializing():
      m = self.momentum
      ra_mean.value = m * ra_mean.value + (1 - m) * jax.lax.stop_gradient(mean)
      ra_var.value = m * ra_var.value + (1 - m) * jax.lax.stop_gradient(var)
    return y.astype(dtype)
