"""The oneDNN convolutions' threads (isovolnet_jax/onednn): the calling
thread's OpenMP state, the thread count in the primitive cache's key, the
policies (ISOVOLNET_ONEDNN_THREADS) and their budget, physical cores, and the
cache's LRU eviction."""

import contextlib
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from helpers import require
from isovolnet_jax import cpu_devices, onednn

require(onednn.available(),
        f'the oneDNN extension is unavailable ({onednn.unavailable_reason()}); '
        f"pip install -e . builds it")

DN = ('NHWC', 'HWIO', 'NHWC')


def _lib():
  return onednn._load()[0]


def _conv(conv):
  return lambda x, k: conv(x, k, (1, 1), 'SAME', dimension_numbers=DN)


def _inputs(x_shape, k_shape, seed=0):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.normal(size=x_shape), jnp.float32),
          jnp.asarray(rng.normal(size=k_shape), jnp.float32))


@contextlib.contextmanager
def _budget(total):
  lib = _lib()
  old = lib.isovolnet_onednn_thread_budget()
  lib.isovolnet_onednn_set_thread_budget(total)
  try:
    yield
  finally:
    lib.isovolnet_onednn_set_thread_budget(old)


@contextlib.contextmanager
def _cache_capacity(capacity):
  lib = _lib()
  old = lib.isovolnet_onednn_set_cache_capacity(capacity)
  try:
    yield old
  finally:
    lib.isovolnet_onednn_set_cache_capacity(old)


# --- 1. The calling thread's OpenMP state. ----------------------------------

@pytest.mark.parametrize('threads', [1, 2, 3, 0], ids=['fixed-1', 'fixed-2', 'fixed-3',
                                                       'budget'])
def test_a_call_leaves_the_calling_threads_openmp_state_as_it_was(threads):
  """The probe runs the FFI call's path (policy, budget, ScopedOmpThreads,
  the three kinds) on this thread, whose max threads must come back."""
  lib = _lib()
  before = lib.isovolnet_onednn_omp_max_threads()
  try:
    lib.isovolnet_onednn_omp_set_num_threads(5)
    for dtype in onednn._PROBED.values():
      assert lib.isovolnet_onednn_probe(dtype, threads) == b''
      assert lib.isovolnet_onednn_omp_max_threads() == 5
  finally:
    lib.isovolnet_onednn_omp_set_num_threads(before)


# --- 2. The thread count in the cache key; the policy read per call. --------

def test_two_thread_counts_build_two_primitives_and_the_policy_is_read_per_call(
    monkeypatch):
  x, k = _inputs((3, 7, 9, 5), (3, 3, 5, 7))  # A shape no other test uses.
  ref = _conv(lax.conv_general_dilated)(x, k)
  monkeypatch.setenv(onednn.THREADS_ENV, 'fixed')

  def traced_with(threads):
    monkeypatch.setattr(onednn, 'threads_per_call', lambda: threads)
    # Traced now (the count is an attribute of the call), run later.
    return jax.jit(_conv(onednn.conv_general_dilated)).lower(x, k).compile()

  with _budget(2):
    one, two = traced_with(1), traced_with(2)
    built = onednn.primitives_built()
    np.testing.assert_allclose(one(x, k), ref, rtol=1e-5, atol=1e-4)
    assert onednn.primitives_built() == built + 1
    np.testing.assert_allclose(two(x, k), ref, rtol=1e-5, atol=1e-4)
    assert onednn.primitives_built() == built + 2  # Another thread count.
    one(x, k).block_until_ready()
    two(x, k).block_until_ready()
    assert onednn.primitives_built() == built + 2  # Both cached.
    # The same compiled `one`, now under the budget: a lone call takes the
    # whole pool (2), whose primitive exists; the env is read at call time.
    monkeypatch.setenv(onednn.THREADS_ENV, 'budget')
    np.testing.assert_allclose(one(x, k), ref, rtol=1e-5, atol=1e-4)
    assert onednn.primitives_built() == built + 2
    assert onednn.thread_budget() == {'total': 2, 'free': 2}
    # An unknown policy: refused at call time by conv.cc, at trace time here.
    monkeypatch.setenv(onednn.THREADS_ENV, 'bogus')
    with pytest.raises(Exception, match='ISOVOLNET_ONEDNN_THREADS'):
      one(x, k).block_until_ready()
    with pytest.raises(ValueError, match='ISOVOLNET_ONEDNN_THREADS'):
      traced_with(1)(x, k)
    assert onednn.thread_budget()['free'] == 2


def test_thread_policy_and_description(monkeypatch):
  monkeypatch.delenv(onednn.THREADS_ENV, raising=False)
  monkeypatch.setattr(onednn, 'threads_per_call', lambda: 3)
  assert onednn.thread_policy() == 'fixed'  # The default: measured the faster.
  assert onednn.threads_description() == '3 thread(s) per call (fixed)'
  monkeypatch.setenv(onednn.THREADS_ENV, 'budget')
  assert onednn.thread_policy() == 'budget'
  assert onednn.threads_description() == (
      f'up to {cpu_devices.physical_cores()} thread(s) per call (budget)')
  # The pool is the physical cores, set at load.
  assert onednn.thread_budget()['total'] == cpu_devices.physical_cores()


# --- 3. Physical cores: tests/test_cli.py (they need no extension). -------


# --- 4. The budget. ---------------------------------------------------------

def test_the_budget_gives_what_is_free_at_least_one_and_takes_it_back():
  lib = _lib()
  take, give = lib.isovolnet_onednn_take_threads, lib.isovolnet_onednn_give_threads
  free = lambda: onednn.thread_budget()['free']
  with _budget(4):
    assert free() == 4
    assert take(4) == 4 and free() == 0          # A lone call: the whole pool.
    assert take(4) == 1 and free() == -1         # None free: its own thread.
    give(1)
    give(4)
    assert take(1) == 1 and take(4) == 2         # 3 free: the power of two below.
    assert free() == 1
    assert take(4) == 1 and free() == 0
    give(1)
    give(2)
    give(1)
    assert free() == 4
    assert take(0) == 1                          # At least one, whatever asked.
    give(1)
  assert onednn.thread_budget() == {'total': cpu_devices.physical_cores(),
                                    'free': cpu_devices.physical_cores()}


@pytest.mark.parametrize('policy', ['budget', 'fixed'])
def test_concurrent_calls_compute_right_and_return_the_budget(monkeypatch, policy):
  """Two Python threads run a forward and both gradients (which XLA may run
  side by side) at once, many times; each result matches lax, and the pool
  is whole afterwards."""
  monkeypatch.setenv(onednn.THREADS_ENV, policy)
  x, k = _inputs((4, 12, 12, 8), (3, 3, 8, 16), seed=1)
  g = jnp.asarray(np.random.default_rng(2).normal(size=(4, 12, 12, 16)), jnp.float32)

  def value_and_grads(conv):
    def f(x, k, g):
      y, vjp = jax.vjp(_conv(conv), x, k)
      return (y, *vjp(g))
    return f

  ours = jax.jit(value_and_grads(onednn.conv_general_dilated))
  ref = [np.asarray(a) for a in jax.jit(value_and_grads(lax.conv_general_dilated))(x, k, g)]
  errors = []

  def worker(seed):
    try:
      for i in range(15):
        scale = 1.0 + 0.1 * ((seed + i) % 3)
        y, dx, dk = ours(x * scale, k, g)
        # y and dk are linear in x; dx does not depend on it.
        for got, want in zip((y, dx, dk), (ref[0] * scale, ref[1], ref[2] * scale)):
          np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3 * scale)
    except Exception as e:  # pylint: disable=broad-except
      errors.append(e)

  with _budget(2):
    threads = [threading.Thread(target=worker, args=(s,)) for s in range(2)]
    for t in threads:
      t.start()
    for t in threads:
      t.join()
    assert not errors, errors[0]
    assert onednn.thread_budget() == {'total': 2, 'free': 2}


# --- 5. The cache's LRU eviction. -------------------------------------------

def test_the_cache_evicts_the_least_recently_used_and_evicted_shapes_still_compute(
    monkeypatch):
  monkeypatch.setenv(onednn.THREADS_ENV, 'fixed')
  f = jax.jit(_conv(onednn.conv_general_dilated))
  ref = jax.jit(_conv(lax.conv_general_dilated))
  shapes = [(n, 6, 5, 3) for n in range(11, 17)]  # 6 new shapes, 1 forward each.
  k = _inputs((1, 1, 1, 1), (3, 3, 3, 4))[1]
  with _cache_capacity(4) as before:
    assert before == 256 and onednn.cache_info()['cache_capacity'] == 4
    assert onednn.cache_info()['cache_size'] <= 4   # Evicted down at once.
    for shape in shapes:
      x = _inputs(shape, (1,))[0]
      np.testing.assert_allclose(f(x, k), ref(x, k), rtol=1e-5, atol=1e-4)
      assert onednn.cache_info()['cache_size'] <= 4
    assert onednn.cache_info()['cache_size'] == 4
    built = onednn.primitives_built()
    x = _inputs(shapes[-1], (1,))[0]
    f(x, k).block_until_ready()                     # Recently used: cached.
    assert onednn.primitives_built() == built
    x = _inputs(shapes[0], (1,))[0]                 # Evicted: built again,
    np.testing.assert_allclose(f(x, k), ref(x, k), rtol=1e-5, atol=1e-4)  # right.
    assert onednn.primitives_built() == built + 1
    assert onednn.cache_info()['cache_size'] == 4
  assert onednn.cache_info()['cache_capacity'] == 256
