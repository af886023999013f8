"""AirBench: the net of airbench94 (Keller Jordan, arXiv 2404.00498).

  whiten: 2x2 conv 3 -> 24, no padding, with bias   32 -> 31
  GELU
  3 blocks: 3x3 conv -> 2x2 max pool -> BN -> GELU
            -> 3x3 conv -> BN -> GELU               31 -> 15 -> 7 -> 3
  3x3 max pool                                      3 -> 1
  linear 256 -> 10 without bias, times 1/9

Widths (64, 256, 256) are airbench94's, (128, 384, 384) airbench95's. The
whitening layer's kernel is meant to be set from the training images
(`airbench.whitening`) and frozen (`optimizer.freeze_whiten_kernel`);
here it is only given its shape and a placeholder init.

BatchNorm as published: no scale (airbench keeps the scales frozen at 1, which
is the same function with no parameter), epsilon 1e-12, running statistics
with momentum 0.6 (flax's convention: new = 0.6 * old + 0.4 * batch).

The zoo's registry (`models.MODELS['airbench']`) imports it from here. It
uses the zoo's `models.layers` (Conv, max_pool_2x2), imported where the
layers are built (in `__call__`): `models/__init__` imports this module, so a
module-level import would be circular when this module is imported first.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


# model.whiten_stem's padding: one row below and one column right, so a 2x2
# conv keeps H x W (32 -> 32, where airbench's VALID gives 31) and the model's
# own spatial plan (IsoVolNet's exact halvings, FastCNN's pools, DilatedDS's
# 30/28/26) is the one it has without the stem. The padded last row and
# column see zeros, patches the whitening kernel (computed from VALID patches)
# was not fitted on: 63 of 1,024 positions on a 32x32 image.
WHITEN_PADDING = ((0, 1), (0, 1))


def whiten_stem(x: jnp.ndarray, *, conv_impl: str = 'auto', conv_dtype: Any = None,
                dtype: Any = jnp.float32, kernel_size: int = 2) -> jnp.ndarray:
  """airbench's whitening stem for the other zoo models (model.whiten_stem):
  a k x k conv with bias named 'whiten', 2*k*k*C wide (24 for RGB: the +- pairs
  of the k*k*C patch eigenvectors), then exact GELU, as airbench's. Called in
  a model's compact __call__, so 'whiten' is a top-level layer: the one
  `airbench.whitening` (whiten_images) and `airbench.optim.param_labels`
  (freeze_whiten_kernel, whiten_bias_epochs) look for."""
  from isovolnet_jax.models import layers  # pylint: disable=import-outside-toplevel
  k = kernel_size
  x = layers.Conv(2 * k * k * x.shape[-1], (k, k), padding=WHITEN_PADDING, use_bias=True,
                 dtype=dtype, conv_impl=conv_impl, conv_dtype=conv_dtype, name='whiten')(x)
  return nn.gelu(x, approximate=False)


# PyTorch's default conv/linear init (kaiming_uniform, a=sqrt(5)): uniform with
# variance 1/(3 fan_in). airbench's rates were tuned with it; flax's default
# (lecun_normal) draws weights sqrt(3) times larger.
torch_default_init = nn.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform')


def dirac_init(base=torch_default_init):
  """`base`, then output channel o < in_channels replaced by the identity on
  input channel o (centre tap 1, the rest 0), as torch.nn.init.dirac_ on the
  first in_channels filters: the conv starts as an implicit residual that
  passes its input through on those channels.
  """
  def init(key, shape, dtype=jnp.float32):
    kh, kw, cin, cout = shape
    kernel = base(key, shape, dtype)
    n = min(cin, cout)
    ident = jnp.zeros((kh, kw, cin, n), dtype).at[kh // 2, kw // 2,
                                                  jnp.arange(n), jnp.arange(n)].set(1)
    return kernel.at[..., :n].set(ident)
  return init


class AirBenchBlock(nn.Module):
  """conv -> 2x2 max pool -> BN -> GELU -> conv -> BN -> GELU.

  The pool comes before the first BN: normalizing a quarter of the
  activations is cheaper, and is what airbench does.
  """
  features: int
  dirac_init: bool = True
  bn_momentum: float = 0.6
  bn_eps: float = 1e-12
  bn_scale: bool = False
  gelu_approximate: bool = False
  conv_impl: str = 'auto'
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    from isovolnet_jax.models import layers  # pylint: disable=import-outside-toplevel
    init = dirac_init() if self.dirac_init else torch_default_init
    def norm(name):
      return nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                          epsilon=self.bn_eps, use_scale=self.bn_scale, dtype=self.dtype,
                          param_dtype=jnp.float32, name=name)
    def act(y):
      return nn.gelu(y, approximate=self.gelu_approximate)
    conv = lambda name: layers.Conv(self.features, (3, 3), padding='SAME', use_bias=False,
                                    kernel_init=init, dtype=self.dtype,
                                    conv_impl=self.conv_impl, conv_dtype=self.conv_dtype, name=name)
    x = conv('conv1')(x)
    x = layers.max_pool_2x2(x)
    x = act(norm('norm1')(x))
    x = conv('conv2')(x)
    return act(norm('norm2')(x))


class AirBench(nn.Module):
  num_classes: int
  widths: tuple[int, ...] = (64, 256, 256)
  # 2 * 3 * 2**2: + and - each eigenvector of the 12-dim 2x2-patch covariance.
  whiten_width: int = 24
  whiten_kernel_size: int = 2
  dirac_init: bool = True      # Identity init of each conv's first in_channels filters.
  bn_momentum: float = 0.6     # flax's convention (airbench's torch 'momentum=1-0.6').
  bn_eps: float = 1e-12
  bn_scale: bool = False       # False: BN scales are fixed at 1 (airbench freezes them).
  output_scale: float = 1 / 9  # Logits scaled down: a lower effective head rate.
  gelu_approximate: bool = False  # False: erf GELU, as torch's nn.GELU.
  conv_impl: str = 'auto'      # 'auto', 'lax', 'unrolled', 'onednn' (layers.conv_function).
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    from isovolnet_jax.models import layers  # pylint: disable=import-outside-toplevel
    x = x.astype(self.dtype)
    k = self.whiten_kernel_size
    # VALID: no padding, 32 -> 31; the odd size is why the 2x2 pools drop a row.
    x = layers.Conv(self.whiten_width, (k, k), padding='VALID', use_bias=True,
                    kernel_init=torch_default_init, dtype=self.dtype,
                    conv_impl=self.conv_impl, conv_dtype=self.conv_dtype, name='whiten')(x)
    x = nn.gelu(x, approximate=self.gelu_approximate)
    for i, width in enumerate(self.widths):
      x = AirBenchBlock(width, dirac_init=self.dirac_init, bn_momentum=self.bn_momentum,
                        bn_eps=self.bn_eps, bn_scale=self.bn_scale,
                        gelu_approximate=self.gelu_approximate, conv_impl=self.conv_impl,
                        conv_dtype=self.conv_dtype,
                        dtype=self.dtype, name=f'block{i + 1}')(x, train)
    # airbench's MaxPool2d(3) on the final 3x3 map: a global max pool.
    x = jnp.max(x, axis=(1, 2))
    x = nn.Dense(self.num_classes, use_bias=False, kernel_init=torch_default_init,
                 dtype=self.dtype, name='head')(x)
    return (x * self.output_scale).astype(jnp.float32)

