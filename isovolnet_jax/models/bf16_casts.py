"""float32 <-> bfloat16 casts as integer bit operations where lowered for CPU.

The mixed_bfloat16 policy (`layers._with_operands_in`) casts every conv's
operands to bfloat16 and its output back, and the backward pass casts each
cotangent. XLA:CPU emits its `convert` to bfloat16 as scalar code: a fusion
that ends in one ran about twice as long as the same fusion ending in float32,
and on a tensor of few channels (12) a plain bfloat16 -> float32 convert took
6x longer than on a wide one. The same casts written as integer operations on
the bits (round to nearest even, NaN kept NaN) vectorise like any elementwise
op. They give the same bits as `astype` (tests/test_bf16_casts.py checks
random bit patterns, subnormals included, and every bfloat16), so training
computes the same numbers, faster (docs/performance.md, "Figures behind code
choices"). Lowered for any other platform: `astype`, which GPUs and TPUs
convert natively.
"""

import jax
import jax.numpy as jnp
from jax import lax

_BF16_NAN = 0x7FC0


def _bits_to_bfloat16(x):
  bits = lax.bitcast_convert_type(x, jnp.uint32)
  lsb = (bits >> 16) & 1  # Ties round to the even bfloat16.
  rounded = (bits + (0x7FFF + lsb)) >> 16
  rounded = jnp.where(jnp.isnan(x), jnp.uint32(_BF16_NAN), rounded)  # Rounding could make it inf.
  return lax.bitcast_convert_type(rounded.astype(jnp.uint16), jnp.bfloat16)


def _bits_to_float32(y):
  bits = lax.bitcast_convert_type(y, jnp.uint16).astype(jnp.uint32) << 16
  return lax.bitcast_convert_type(bits, jnp.float32)


@jax.custom_vjp
def to_bfloat16(x):
  """float32 `x` as bfloat16 (`astype`'s bits); its gradient casts back."""
  return lax.platform_dependent(x, cpu=_bits_to_bfloat16,
                                default=lambda x: x.astype(jnp.bfloat16))


@jax.custom_vjp
def to_float32(y):
  """bfloat16 `y` as float32 (exact); its gradient casts to bfloat16."""
  return lax.platform_dependent(y, cpu=_bits_to_float32,
                                default=lambda y: y.astype(jnp.float32))


to_bfloat16.defvjp(lambda x: (to_bfloat16(x), None), lambda _, g: (to_float32(g),))
to_float32.defvjp(lambda y: (to_float32(y), None), lambda _, g: (to_bfloat16(g),))


def cast(x, dtype):
  """`x.astype(dtype)`, through the bit casts between float32 and bfloat16."""
  dtype = jnp.dtype(dtype)
  if x.dtype == jnp.float32 and dtype == jnp.bfloat16:
    return to_bfloat16(x)
  if x.dtype == jnp.bfloat16 and dtype == jnp.float32:
    return to_float32(x)
  return x.astype(dtype)
