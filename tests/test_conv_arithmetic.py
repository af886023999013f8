"""conv_arithmetic against the shapes, parameters and FLOPs JAX really has.

Shapes come from `jax.eval_shape` (tracing only, no compute), so a few
hundred random cases take a couple of seconds.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from isovolnet_jax import conv_arithmetic as ca
from isovolnet_jax.errors import InputError

CASES = 120
DN = ('NHWC', 'HWIO', 'NHWC')


def _random_padding(rng, kernel_span):
  """'SAME', 'VALID', a symmetric int or a (low, high) pair."""
  kind = rng.integers(4)
  if kind == 0:
    return 'SAME'
  if kind == 1:
    return 'VALID'
  if kind == 2:
    return int(rng.integers(0, kernel_span + 1))
  return tuple(int(p) for p in rng.integers(0, kernel_span + 1, size=2))


def _lax_padding(padding):
  if isinstance(padding, str):
    return padding
  return (padding, padding) if isinstance(padding, int) else padding


def _shape(f, *shapes):
  return jax.eval_shape(f, *(jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes)).shape


# ------------------------------------------------------------ worked examples.

def test_seed_examples():
  assert ca.conv_output_size(32, 5, 1, 2) == 32      # 'same' by padding 2.
  assert ca.conv_output_size(32, 5, 1, 'VALID') == 28
  assert ca.conv_output_size(32, 5, 1, 0) == 28
  assert ca.conv_output_size(32, 5, 1, 'SAME') == 32
  assert ca.pool_output_size(32, 2, 2) == 16
  assert ca.pool_output_size(32, 2) == 16            # Stride defaults to window.
  assert ca.transposed_conv_output_size(2, 3, 2, 0) == 5
  assert ca.receptive_field([(3, 1)] * 3) == 7       # Three 3x3 convs see 7x7.
  assert ca.receptive_field([(3, 1), (3, 1), (2, 2), (3, 1)]) == 10
  assert ca.receptive_field([(3, 1, 2)]) == 5


def test_separable_saving_matches_counts():
  # MobileNet's ratio 1/C_out + 1/k^2, bias-free.
  for c_in, c_out, k in [(32, 64, 3), (128, 256, 3), (16, 10, 5)]:
    ratio = (ca.separable_conv_params(c_in, c_out, k, bias=False)
             / ca.standard_conv_params(c_in, c_out, k, bias=False))
    assert ratio == pytest.approx(ca.separable_saving(c_out, k))
    flops = (ca.separable_conv_flops(8, 8, c_in, c_out, k, bias=False)
             / ca.standard_conv_flops(8, 8, c_in, c_out, k, bias=False))
    assert flops == pytest.approx(ca.separable_saving(c_out, k))


def test_bad_arguments_raise_input_error():
  with pytest.raises(InputError, match='padding'):
    ca.conv_output_size(32, 3, 1, 'FULL')
  with pytest.raises(InputError, match='larger than the padded input'):
    ca.conv_output_size(4, 7, 1, 'VALID')
  with pytest.raises(InputError, match='stride'):
    ca.conv_output_size(32, 3, 0)
  with pytest.raises(InputError, match='output_padding'):
    ca.transposed_conv_output_size(4, 3, 2, 1, output_padding=2)
  with pytest.raises(InputError, match='groups'):
    ca.conv_params(6, 8, 3, groups=4)


# ------------------------------------------------------------------ shapes.

def test_conv_output_size_matches_lax():
  rng = np.random.default_rng(0)
  checked = 0
  while checked < CASES:
    n, k, s, d = (int(rng.integers(1, 40)), int(rng.integers(1, 8)),
                  int(rng.integers(1, 5)), int(rng.integers(1, 4)))
    padding = _random_padding(rng, ca.effective_kernel(k, d))
    try:
      expected = ca.conv_output_size(n, k, s, padding, d)
    except InputError:
      continue  # Kernel larger than the padded input: no conv to compare.
    # The random case on H; W has a 1-wide kernel, which any padding keeps.
    lax_padding = padding if isinstance(padding, str) else [
        _lax_padding(padding), (0, 0)]
    f = lambda x, w: jax.lax.conv_general_dilated(
        x, w, (s, 1), lax_padding, rhs_dilation=(d, 1), dimension_numbers=DN)
    shape = _shape(f, (1, n, 5, 2), (k, 1, 2, 3))
    assert shape[2] == 5
    assert shape[1] == expected, (n, k, s, padding, d)
    checked += 1


def test_pool_output_size_matches_flax():
  rng = np.random.default_rng(1)
  checked = 0
  while checked < CASES:
    n, window, stride = (int(rng.integers(1, 40)), int(rng.integers(1, 6)),
                         int(rng.integers(1, 5)))
    padding = rng.choice(['SAME', 'VALID', 'pairs'])
    if padding == 'pairs':
      # Flax pools pad with the reduction's identity; the pad must be < window.
      padding = tuple(int(p) for p in rng.integers(0, window, size=2))
      flax_padding = (padding, (0, 0))
    else:
      flax_padding = str(padding)
    try:
      expected = ca.pool_output_size(n, window, stride, padding)
    except InputError:
      continue
    pool = nn.max_pool if checked % 2 else nn.avg_pool
    f = lambda x: pool(x, (window, 1), strides=(stride, 1), padding=flax_padding)
    assert _shape(f, (2, n, 3, 4))[1] == expected, (n, window, stride, padding)
    checked += 1


def test_transposed_conv_output_size_matches_lax():
  rng = np.random.default_rng(2)
  checked = 0
  while checked < CASES:
    n, k, s, d = (int(rng.integers(1, 20)), int(rng.integers(1, 6)),
                  int(rng.integers(1, 4)), int(rng.integers(1, 3)))
    k_eff = ca.effective_kernel(k, d)
    if rng.random() < 0.3:
      padding, op = str(rng.choice(['SAME', 'VALID'])), 0
      lax_padding = padding
    else:
      padding = int(rng.integers(0, k_eff))
      op = int(rng.integers(0, max(s, d)))
      # PyTorch's (padding p, output_padding op) is the forward padding
      # (p, p - op) under JAX's use_consistent_padding.
      lax_padding = [(padding, padding - op), (0, 0)]
    try:
      expected = ca.transposed_conv_output_size(n, k, s, padding, op, d)
    except InputError:
      continue
    strides = (s, s) if isinstance(padding, str) else (s, 1)
    kernel = (k, k) if isinstance(padding, str) else (k, 1)
    f = lambda x, w: jax.lax.conv_transpose(
        x, w, strides, lax_padding, rhs_dilation=(d, d) if isinstance(padding, str)
        else (d, 1), dimension_numbers=DN,
        use_consistent_padding=not isinstance(padding, str))
    assert _shape(f, (1, n, 4, 2), (*kernel, 2, 3))[1] == expected, (
        n, k, s, padding, op, d)
    checked += 1


def test_receptive_field_matches_gradient_support():
  # The receptive field of the first output pixel is the span of input pixels
  # its gradient reaches (all-ones kernels: no cancellation).
  rng = np.random.default_rng(3)
  for _ in range(25):
    stack = [(int(rng.integers(1, 6)), int(rng.integers(1, 3)),
              int(rng.integers(1, 3))) for _ in range(int(rng.integers(1, 5)))]
    field = ca.receptive_field(stack)
    n = field + int(rng.integers(0, 8))

    def first_output(x):
      for k, s, d in stack:
        x = jax.lax.conv_general_dilated(
            x, jnp.ones((k, 1, 1)), (s,), 'VALID', rhs_dilation=(d,),
            dimension_numbers=('NHC', 'HIO', 'NHC'))
      return x[0, 0, 0]

    grad = np.asarray(jax.grad(first_output)(jnp.ones((1, n, 1))))[0, :, 0]
    touched = np.flatnonzero(grad)
    assert touched.max() - touched.min() + 1 == field, stack


# ------------------------------------------------------------ params / FLOPs.

def _param_count(module, in_shape):
  variables = jax.eval_shape(module.init, jax.random.key(0),
                             jax.ShapeDtypeStruct(in_shape, jnp.float32))
  return sum(math.prod(v.shape) for v in jax.tree.leaves(variables['params']))


def test_conv_params_match_flax():
  rng = np.random.default_rng(4)
  for _ in range(CASES):
    groups = int(rng.choice([1, 1, 2, 3, 4]))
    c_in = groups * int(rng.integers(1, 9))
    c_out = groups * int(rng.integers(1, 9))
    kernel = tuple(int(k) for k in rng.integers(1, 6, size=2))
    bias = bool(rng.integers(2))
    conv = nn.Conv(c_out, kernel, feature_group_count=groups, use_bias=bias)
    assert _param_count(conv, (1, 8, 8, c_in)) == ca.conv_params(
        c_in, c_out, kernel, groups, bias)


def test_named_conv_params_match_flax():
  rng = np.random.default_rng(5)
  for _ in range(CASES):
    c_in, c_out, k = (int(rng.integers(1, 33)), int(rng.integers(1, 33)),
                      int(rng.choice([1, 3, 5, 7])))
    mult, bias = int(rng.integers(1, 4)), bool(rng.integers(2))
    shape = (1, 8, 8, c_in)
    assert _param_count(nn.Conv(c_out, (k, k), use_bias=bias), shape) == \
        ca.standard_conv_params(c_in, c_out, k, bias)
    depthwise = nn.Conv(c_in * mult, (k, k), feature_group_count=c_in, use_bias=bias)
    assert _param_count(depthwise, shape) == ca.depthwise_conv_params(c_in, k, mult, bias)
    pointwise = nn.Conv(c_out, (1, 1), use_bias=bias)
    assert _param_count(pointwise, shape) == ca.pointwise_conv_params(c_in, c_out, bias)
    separable = (_param_count(nn.Conv(c_in, (k, k), feature_group_count=c_in,
                                      use_bias=bias), shape)
                 + _param_count(nn.Conv(c_out, (1, 1), use_bias=bias), shape))
    assert separable == ca.separable_conv_params(c_in, c_out, k, bias)
    assert _param_count(nn.Dense(c_out, use_bias=bias), (1, c_in)) == \
        ca.dense_params(c_in, c_out, bias)


def test_conv_flops_match_xla_cost_analysis():
  # XLA's cost model also counts a multiply-add as 2 FLOPs (unpadded convs,
  # no bias: XLA does not count padding taps, and a bias is a separate add).
  rng = np.random.default_rng(6)
  for _ in range(40):
    groups = int(rng.choice([1, 2, 4]))
    c_in, c_out = groups * int(rng.integers(1, 5)), groups * int(rng.integers(1, 5))
    k, s, n = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(4, 12))
    f = lambda x, w: jax.lax.conv_general_dilated(
        x, w, (s, s), 'VALID', feature_group_count=groups, dimension_numbers=DN)
    x, w = jnp.zeros((1, n, n, c_in)), jnp.zeros((k, k, c_in // groups, c_out))
    flops = jax.jit(f).lower(x, w).cost_analysis()['flops']
    out = ca.conv_output_size(n, k, s, 'VALID')
    assert flops == ca.conv_flops(out, out, c_in, c_out, k, groups, bias=False)
