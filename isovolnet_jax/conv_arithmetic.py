"""Convolution arithmetic (seed 001): output sizes, receptive fields, costs.

Pure Python, one spatial dimension at a time (call twice for H and W), so it
can plan a network before any array exists. `tests/test_conv_arithmetic.py`
checks every formula against the shapes JAX really produces.

Conventions:
  * `padding` is an int p (p zeros on both sides, PyTorch's `padding=p`), a
    `(low, high)` pair (JAX's explicit padding), or 'SAME' / 'VALID' with
    JAX's meaning: 'SAME' gives ceil(n / stride) whatever the kernel,
    'VALID' adds nothing.
  * FLOPs count a multiply-add as 2 FLOPs (one multiply, one add) and a bias
    as 1 FLOP per output value; they are per example (batch size 1).
  * Kernels are ints (square) or (kh, kw) pairs.
"""

import math
from typing import Iterable, Sequence

from isovolnet_jax.errors import InputError

Padding = int | tuple[int, int] | str


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
  if isinstance(v, int):
    return v, v
  kh, kw = v
  return int(kh), int(kw)


def effective_kernel(kernel: int, dilation: int = 1) -> int:
  """Span of a dilated kernel: k taps with d - 1 holes between neighbours."""
  return (kernel - 1) * dilation + 1


def _mode(padding: str) -> str:
  mode = padding.upper()
  if mode not in ('SAME', 'VALID'):
    raise InputError(f"unknown padding {padding!r}; use an int, a (low, high) "
                     f"pair, 'SAME' or 'VALID'")
  return mode


def _pads(size: int, k_eff: int, stride: int, padding: Padding) -> tuple[int, int]:
  if isinstance(padding, str):
    if _mode(padding) == 'VALID':
      return 0, 0
    # XLA's 'SAME': pad just enough that the output is ceil(n / s).
    out = -(-size // stride)
    total = max((out - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2
  if isinstance(padding, int):
    return padding, padding
  low, high = padding
  return int(low), int(high)


def _check_positive(**values: int) -> None:
  for name, v in values.items():
    if v < 1:
      raise InputError(f'{name}={v} must be >= 1')


def conv_output_size(size: int, kernel: int, stride: int = 1,
                     padding: Padding = 0, dilation: int = 1) -> int:
  """floor((n + p_lo + p_hi - k_eff) / s) + 1, the seed's (n - f + 2p)/s + 1."""
  _check_positive(size=size, kernel=kernel, stride=stride, dilation=dilation)
  k_eff = effective_kernel(kernel, dilation)
  low, high = _pads(size, k_eff, stride, padding)
  span = size + low + high - k_eff
  if span < 0:
    raise InputError(f'kernel span {k_eff} is larger than the padded input '
                     f'{size + low + high}; pad more or use a smaller kernel')
  return span // stride + 1


def pool_output_size(size: int, window: int, stride: int | None = None,
                     padding: Padding = 0) -> int:
  """Pooling is a conv without weights; stride defaults to the window.

  (PyTorch's default. Flax's `nn.max_pool` defaults to stride 1: pass it.)
  """
  return conv_output_size(size, window, window if stride is None else stride,
                          padding)


def transposed_conv_output_size(size: int, kernel: int, stride: int = 1,
                                padding: Padding = 0, output_padding: int = 0,
                                dilation: int = 1) -> int:
  """(n - 1) s - p_lo - p_hi + d (k - 1) + output_padding + 1.

  An int/pair `padding` is the padding of the forward conv being transposed
  (PyTorch's `ConvTranspose2d`, JAX's `use_consistent_padding=True`);
  `output_padding` adds rows at the far end to pick one of the input sizes
  that a strided conv maps to the same output. 'SAME' and 'VALID' follow
  `jax.lax.conv_transpose`: n * s, and n * s + max(k_eff - s, 0).
  """
  _check_positive(size=size, kernel=kernel, stride=stride, dilation=dilation)
  if not 0 <= output_padding < max(stride, dilation):
    # Larger values would add rows no input pixel reaches (PyTorch refuses too).
    raise InputError(f'output_padding={output_padding} must be >= 0 and smaller '
                     f'than the stride or the dilation')
  k_eff = effective_kernel(kernel, dilation)
  if isinstance(padding, str):
    if _mode(padding) == 'SAME':
      return size * stride + output_padding
    return size * stride + max(k_eff - stride, 0) + output_padding
  low, high = _pads(size, k_eff, stride, padding)
  out = (size - 1) * stride - low - high + k_eff + output_padding
  if out < 1:
    raise InputError(f'transposed conv output size {out} < 1; reduce the padding')
  return out


def receptive_field(layers: Iterable[Sequence[int]]) -> int:
  """Receptive field of a stack of (kernel, stride[, dilation]) layers.

  Each layer widens the field by (k_eff - 1) input-pixel steps of the current
  jump (the product of the strides before it): r += (k_eff - 1) * jump.
  Three 3x3 stride-1 convs see 7x7, the seed's example.
  """
  field, jump = 1, 1
  for layer in layers:
    kernel, stride, *rest = layer
    dilation = rest[0] if rest else 1
    field += (effective_kernel(kernel, dilation) - 1) * jump
    jump *= stride
  return field


# ------------------------------------------------------------------ costs.

def conv_params(in_channels: int, out_channels: int, kernel: int | Sequence[int],
                groups: int = 1, bias: bool = True) -> int:
  """k_h k_w (C_in / groups) C_out weights, plus C_out biases."""
  if in_channels % groups or out_channels % groups:
    raise InputError(f'groups={groups} must divide both in_channels={in_channels} '
                     f'and out_channels={out_channels}')
  kh, kw = _pair(kernel)
  return kh * kw * (in_channels // groups) * out_channels + (out_channels if bias else 0)


def conv_flops(out_h: int, out_w: int, in_channels: int, out_channels: int,
               kernel: int | Sequence[int], groups: int = 1,
               bias: bool = True) -> int:
  """2 FLOPs per multiply-add over every output value, + 1 per bias add."""
  kh, kw = _pair(kernel)
  outputs = out_h * out_w * out_channels
  macs = outputs * kh * kw * (in_channels // groups)
  return 2 * macs + (outputs if bias else 0)


def standard_conv_params(c_in: int, c_out: int, kernel, bias: bool = True) -> int:
  return conv_params(c_in, c_out, kernel, 1, bias)


def depthwise_conv_params(channels: int, kernel, multiplier: int = 1,
                          bias: bool = True) -> int:
  return conv_params(channels, channels * multiplier, kernel, channels, bias)


def pointwise_conv_params(c_in: int, c_out: int, bias: bool = True) -> int:
  return conv_params(c_in, c_out, 1, 1, bias)


def separable_conv_params(c_in: int, c_out: int, kernel, bias: bool = True) -> int:
  """Depthwise k x k then pointwise 1 x 1; `bias` applies to both convs."""
  return (depthwise_conv_params(c_in, kernel, 1, bias)
          + pointwise_conv_params(c_in, c_out, bias))


def standard_conv_flops(out_h, out_w, c_in, c_out, kernel, bias=True) -> int:
  return conv_flops(out_h, out_w, c_in, c_out, kernel, 1, bias)


def depthwise_conv_flops(out_h, out_w, channels, kernel, multiplier=1,
                         bias=True) -> int:
  return conv_flops(out_h, out_w, channels, channels * multiplier, kernel,
                    channels, bias)


def pointwise_conv_flops(out_h, out_w, c_in, c_out, bias=True) -> int:
  return conv_flops(out_h, out_w, c_in, c_out, 1, 1, bias)


def separable_conv_flops(out_h, out_w, c_in, c_out, kernel, bias=True) -> int:
  """The pointwise conv runs at the depthwise conv's output size."""
  return (depthwise_conv_flops(out_h, out_w, c_in, kernel, 1, bias)
          + pointwise_conv_flops(out_h, out_w, c_in, c_out, bias))


def separable_saving(c_out: int, kernel: int) -> float:
  """Separable / standard cost, without biases: 1/C_out + 1/k^2 (MobileNet)."""
  return 1 / c_out + 1 / kernel**2


def dense_params(in_features: int, out_features: int, bias: bool = True) -> int:
  return in_features * out_features + (out_features if bias else 0)


def dense_flops(in_features: int, out_features: int, bias: bool = True) -> int:
  return 2 * in_features * out_features + (out_features if bias else 0)


def volume(shape: Sequence[int]) -> int:
  """H * W * C of a feature map (no batch axis)."""
  return math.prod(shape)
