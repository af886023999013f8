"""bf16_casts: float32 <-> bfloat16 casts as bit operations where lowered for
CPU, `astype` elsewhere; the mixed_bfloat16 policy casts through them.

The casts must give astype's bits (so mixed training computes the same numbers
as before), their gradients must be astype's, the CPU lowering must hold the
bit operations and no convert to bfloat16 (or the speed is gone), and the
CUDA lowering must hold the plain converts.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from isovolnet_jax.models import bf16_casts
from test_lowering import stablehlo, traced_train_step

F32_EDGES = np.array([
    0x00000000, 0x80000000,              # +-0
    0x00000001, 0x007FFFFF, 0x80400000,  # subnormals
    0x00800000, 0x7F7FFFFF, 0xFF7FFFFF,  # smallest normal, +-largest finite (rounds to inf)
    0x7F7F7FFF, 0x7F7F8000,              # just below / at the tie before inf
    0x3F808000, 0x3F818000,              # ties: to the even below / above
    0x3F808001, 0x3F817FFF,              # just past / before a tie
    0x7F800000, 0xFF800000,              # +-inf
    0x7FC00000, 0x7F800001, 0xFFFFFFFF,  # NaNs: quiet, smallest payload, negative
], dtype=np.uint32)


def _bits(a, dtype):
  return np.asarray(a).view(dtype)


def _f32_samples():
  rng = np.random.default_rng(0)
  bits = np.concatenate([F32_EDGES, rng.integers(0, 2**32, 1 << 20, dtype=np.uint64)
                         .astype(np.uint32)])
  return jnp.asarray(bits.view(np.float32))


def test_to_bfloat16_gives_astypes_bits():
  x = _f32_samples()
  got = _bits(jax.jit(bf16_casts.to_bfloat16)(x), np.uint16)
  want = _bits(jax.jit(lambda x: x.astype(jnp.bfloat16))(x), np.uint16)
  nan = np.isnan(np.asarray(x))
  np.testing.assert_array_equal(got[~nan], want[~nan])
  assert np.isnan(got[nan].view(jnp.bfloat16).astype(np.float32)).all()  # NaN stays NaN.
  assert nan.sum() > 3 and (~nan).sum() > 1000


def test_to_float32_every_bfloat16():
  y = jnp.asarray(np.arange(1 << 16, dtype=np.uint16).view(jnp.bfloat16))
  got = _bits(jax.jit(bf16_casts.to_float32)(y), np.uint32)
  want = _bits(jax.jit(lambda y: y.astype(jnp.float32))(y), np.uint32)
  nan = np.isnan(np.asarray(y, np.float32))
  np.testing.assert_array_equal(got[~nan], want[~nan])
  assert np.isnan(got[nan].view(np.float32)).all()


def test_cast_is_astype_for_other_pairs():
  x = jnp.arange(6.)
  for src, dst in [(jnp.float32, jnp.float32), (jnp.float32, jnp.float16),
                   (jnp.bfloat16, jnp.bfloat16), (jnp.int32, jnp.float32)]:
    got = bf16_casts.cast(x.astype(src), dst)
    assert got.dtype == jnp.dtype(dst)
    np.testing.assert_array_equal(np.asarray(got, np.float32), np.arange(6.))


def test_gradients_are_astypes():
  """Each cast's gradient is the other cast, as astype's transpose is."""
  x = jax.random.normal(jax.random.key(0), (64,)) * 3
  w = jax.random.normal(jax.random.key(1), (64,))
  loss = lambda c_down, c_up: lambda x: jnp.sum(c_up(c_down(x) * w.astype(jnp.bfloat16)) ** 2)
  ours = jax.grad(loss(bf16_casts.to_bfloat16, bf16_casts.to_float32))(x)
  theirs = jax.grad(loss(lambda x: x.astype(jnp.bfloat16),
                         lambda y: y.astype(jnp.float32)))(x)
  assert ours.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
  _, vjp = jax.vjp(bf16_casts.to_float32, x.astype(jnp.bfloat16))
  (g,) = vjp(x)
  assert g.dtype == jnp.bfloat16
  np.testing.assert_array_equal(_bits(g, np.uint16), _bits(x.astype(jnp.bfloat16), np.uint16))


def _lowered(f, x, platform):
  return jax.jit(f).trace(x).lower(lowering_platforms=(platform,)).as_text()


def _converts_to_bf16(text):
  return [l for l in text.splitlines() if 'stablehlo.convert' in l and 'xbf16>' in l.split('->')[-1]]


@pytest.mark.parametrize('f', [bf16_casts.to_bfloat16, jax.grad(
    lambda x: jnp.sum(bf16_casts.to_float32(bf16_casts.to_bfloat16(x))))])
def test_cpu_lowers_to_bit_operations_cuda_to_converts(f):
  x = jnp.ones((8,))
  cpu, cuda = _lowered(f, x, 'cpu'), _lowered(f, x, 'cuda')
  assert 'stablehlo.bitcast_convert' in cpu and not _converts_to_bf16(cpu)
  assert 'stablehlo.bitcast_convert' not in cuda and _converts_to_bf16(cuda)


def test_mixed_train_step_casts_with_bits_and_same_numbers(monkeypatch):
  """The mixed_bfloat16 training step, lowered for CPU, casts through the bit
  operations, and 2 steps give astype's parameters bit for bit."""
  traced = traced_train_step('cifar10', dtype='mixed_bfloat16')
  cpu = stablehlo(traced, 'cpu')
  assert 'stablehlo.bitcast_convert' in cpu and not _converts_to_bf16(cpu)

  from helpers import load_config_file
  from isovolnet_jax import summary
  from isovolnet_jax.bench import benchmark

  def two_steps():
    config = load_config_file('cifar10')
    with config.unlocked():
      config.batch_size, config.dtype = 8, 'mixed_bfloat16'
    t = benchmark.jax_training(config, (32, 32, 3), 10, num_train=80)
    state = t['state']
    for _ in range(2):
      state, metrics = t['step'](state, t['images'], t['labels'], t['key'])
    return jax.tree.map(np.asarray, (state.params, state.batch_stats, metrics['loss']))

  ours = two_steps()
  monkeypatch.setattr(bf16_casts, 'cast', lambda x, dtype: x.astype(dtype))
  assert _converts_to_bf16(stablehlo(traced_train_step('cifar10', dtype='mixed_bfloat16'), 'cpu'))
  theirs = two_steps()
  assert np.isfinite(ours[-1])
  jax.tree.map(np.testing.assert_array_equal, ours, theirs)
