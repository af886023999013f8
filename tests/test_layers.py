"""The shared depthwise/grouped convolution and 2x2 pooling (models/layers.py)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from isovolnet_jax import onednn
from isovolnet_jax.errors import InputError
from isovolnet_jax.models import layers
from isovolnet_jax.models import unrolled_conv

DN = ('NHWC', 'HWIO', 'NHWC')


def _random_case(rng):
  """A grouped conv drawn from the kinds the models use, and odder ones."""
  groups = int(rng.choice([1, 2, 3, 4]))
  per_in = int(rng.choice([1, 1, 2, 3]))   # Input channels per group (1: depthwise).
  per_out = int(rng.choice([1, 1, 2]))     # Outputs per group (2: multiplier).
  k = (int(rng.choice([1, 3, 5])), int(rng.choice([1, 2, 3])))
  strides = (int(rng.choice([1, 2])), int(rng.choice([1, 2, 3])))
  dilation = (int(rng.choice([1, 2, 4])), int(rng.choice([1, 3])))
  padding = rng.choice(['SAME', 'VALID', 'EXPLICIT'])
  if padding == 'EXPLICIT':
    padding = tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(2))
  # Large enough for a VALID window: (k-1)*d+1 <= size.
  h = (k[0] - 1) * dilation[0] + 1 + int(rng.integers(0, 6))
  w = (k[1] - 1) * dilation[1] + 1 + int(rng.integers(0, 6))
  batch = int(rng.choice([1, 2]))
  groups = max(groups, 2)  # Plain k x k convs go to lax by design.
  return dict(x=(batch, h, w, groups * per_in), k=(*k, per_in, groups * per_out),
              groups=groups, strides=strides, dilation=dilation, padding=padding)


def _conv(impl, case):
  def f(x, k):
    return impl(x, k, case['strides'], case['padding'], rhs_dilation=case['dilation'],
                dimension_numbers=DN, feature_group_count=case['groups'])
  return f


def _values_and_grads(impl, case, x, k, g):
  @jax.jit  # One compilation, not one per tap's eager op.
  def run(x, k, g):
    y, vjp = jax.vjp(_conv(impl, case), x, k)
    return (y, *vjp(g))
  return run(x, k, g)


CASES = [_random_case(np.random.default_rng(seed)) for seed in range(16)] + [
    # The models' own: IsoVolNet's 3- and 12-channel depthwise, MobileNetV2's
    # stride-2 depthwise, the dilated DS residual net's 32-group dilated conv (VALID and
    # SAME with dilation 22 on 26x26).
    dict(x=(2, 32, 32, 3), k=(3, 3, 1, 3), groups=3, strides=(1, 1), dilation=(1, 1), padding='SAME'),
    dict(x=(1, 16, 16, 12), k=(3, 3, 1, 12), groups=12, strides=(1, 1), dilation=(1, 1), padding='SAME'),
    dict(x=(2, 15, 16, 24), k=(3, 3, 1, 24), groups=24, strides=(2, 2), dilation=(1, 1), padding='SAME'),
    dict(x=(2, 30, 30, 64), k=(3, 3, 2, 128), groups=32, strides=(1, 1), dilation=(1, 1), padding='VALID'),
    dict(x=(1, 26, 26, 64), k=(3, 3, 2, 128), groups=32, strides=(1, 1), dilation=(22, 22), padding='SAME'),
    # Wide groups (8 -> 16 channels each): einsums instead of multiply-adds.
    dict(x=(2, 6, 7, 16), k=(3, 3, 8, 32), groups=2, strides=(1, 1), dilation=(2, 1), padding='SAME'),
    # Batches of several 4-image chunks: the depthwise kernel gradient's loop.
    dict(x=(8, 9, 9, 5), k=(3, 3, 1, 5), groups=5, strides=(1, 1), dilation=(1, 1), padding='SAME'),
    dict(x=(12, 7, 8, 4), k=(3, 3, 1, 8), groups=4, strides=(2, 1), dilation=(2, 1), padding='VALID'),
    # 1x1 convs (matmuls from 8 input channels up; lax below).
    dict(x=(2, 5, 6, 8), k=(1, 1, 8, 16), groups=1, strides=(1, 1), dilation=(1, 1), padding='SAME'),
    dict(x=(3, 5, 7, 12), k=(1, 1, 12, 4), groups=1, strides=(2, 2), dilation=(1, 1), padding='VALID'),
    dict(x=(2, 5, 6, 3), k=(1, 1, 3, 12), groups=1, strides=(1, 1), dilation=(1, 1), padding='SAME'),
]


@pytest.mark.parametrize('case', CASES, ids=lambda c: f"{c['x']}-{c['k']}-g{c['groups']}"
                         f"-s{c['strides']}-d{c['dilation']}-{c['padding']}")
def test_unrolled_conv_matches_lax_values_and_both_gradients(case):
  keys = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(keys[0], case['x'])
  k = jax.random.normal(keys[1], case['k'])
  y_shape = jax.eval_shape(_conv(lax.conv_general_dilated, case), x, k).shape
  g = jax.random.normal(keys[2], y_shape)
  ref = _values_and_grads(lax.conv_general_dilated, case, x, k, g)
  got = _values_and_grads(unrolled_conv.conv_general_dilated, case, x, k, g)
  for name, a, b in zip(('value', 'input grad', 'kernel grad'), got, ref):
    assert a.shape == b.shape, name
    # float32: the same products summed in another order. atol covers sums
    # whose terms cancel to ~0 (relative error is meaningless there).
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()),
                               err_msg=name)


def test_unrolled_conv_bfloat16_is_as_close_to_float32_as_lax():
  """bfloat16 has an 8-bit mantissa (relative rounding 2**-8 = 0.4%), so the
  two implementations cannot agree to float32 tolerances; both are compared
  with the float32 result instead, and the unrolled one (which sums taps in
  float32) must be no worse than 1.5x lax's own error, and under 1%."""
  case = dict(x=(2, 16, 16, 8), k=(3, 3, 2, 16), groups=4, strides=(1, 1),
              dilation=(2, 2), padding='SAME')
  keys = jax.random.split(jax.random.key(1), 3)
  x = jax.random.normal(keys[0], case['x'])
  k = jax.random.normal(keys[1], case['k'])
  g = jax.random.normal(keys[2], (2, 16, 16, 16))
  exact = _values_and_grads(lax.conv_general_dilated, case, x, k, g)
  bf = [a.astype(jnp.bfloat16) for a in (x, k, g)]
  lax_bf = _values_and_grads(lax.conv_general_dilated, case, *bf)
  ours_bf = _values_and_grads(unrolled_conv.conv_general_dilated, case, *bf)
  for e, l, o in zip(exact, lax_bf, ours_bf):
    assert o.dtype == jnp.bfloat16
    scale = float(jnp.abs(e).max())
    err_ours = float(jnp.abs(o.astype(jnp.float32) - e).max()) / scale
    err_lax = float(jnp.abs(l.astype(jnp.float32) - e).max()) / scale
    assert err_ours < 1e-2 and err_ours <= 1.5 * err_lax + 1e-3, (err_ours, err_lax)


def test_unrolled_conv_hands_what_it_cannot_do_to_lax(monkeypatch):
  calls = []
  real = lax.conv_general_dilated
  monkeypatch.setattr(unrolled_conv.lax, 'conv_general_dilated',
                      lambda *a, **kw: calls.append(kw) or real(*a, **kw))
  x = jnp.ones((1, 6, 6, 4))
  unrolled_conv.conv_general_dilated(x, jnp.ones((3, 3, 4, 4)), (1, 1), 'SAME',
                                     dimension_numbers=DN)  # Plain 3x3 conv.
  unrolled_conv.conv_general_dilated(jnp.ones((1, 4, 6, 6)), jnp.ones((4, 1, 3, 3)),
                                     (1, 1), 'SAME', feature_group_count=4)  # NCHW.
  unrolled_conv.conv_general_dilated(x, jnp.ones((1, 1, 4, 8)), (1, 1), 'SAME',
                                     dimension_numbers=DN)  # 1x1, 4 channels.
  assert len(calls) == 3
  unrolled_conv.conv_general_dilated(x, jnp.ones((3, 3, 1, 4)), (1, 1), 'SAME',
                                     dimension_numbers=DN, feature_group_count=4)
  unrolled_conv.conv_general_dilated(jnp.ones((1, 6, 6, 8)), jnp.ones((1, 1, 8, 4)),
                                     (1, 1), 'SAME', dimension_numbers=DN)
  assert len(calls) == 3  # Depthwise and 8-channel 1x1 convs did not go to lax.


def test_conv_impl_choice_and_its_error():
  assert layers.conv_function('lax') is lax.conv_general_dilated
  assert layers.conv_function('unrolled') is unrolled_conv.conv_general_dilated
  with pytest.raises(InputError, match=r"model.conv_impl='fast'.*'auto', 'lax', 'unrolled', 'onednn'"):
    layers.conv_function('fast')


@pytest.mark.parametrize('backend, onednn_loaded, expected', [
    ('cpu', True, 'onednn'),
    ('cpu', False, 'unrolled'),
    # IsoVolNet on one H200: 'unrolled' 4.4x slower than lax (docs/performance.md);
    # grouped convs of several inputs a group unrolled (results/seed002_gpu).
    ('gpu', True, 'lax+unrolled'),
    ('gpu', False, 'lax+unrolled'),
    ('tpu', True, 'lax')])
def test_auto_conv_impl_per_backend(monkeypatch, backend, onednn_loaded, expected):
  monkeypatch.setattr(jax, 'default_backend', lambda: backend)
  monkeypatch.setattr(onednn, 'available', lambda: onednn_loaded)
  assert layers.resolve_conv_impl('auto') == expected
  # The same answers asked by platform name, whatever the default backend.
  monkeypatch.setattr(jax, 'default_backend', lambda: 'tpu')
  platform = {'gpu': 'cuda'}.get(backend, backend)
  assert layers.resolve_conv_impl('auto', platform) == expected


@pytest.mark.parametrize('impl, backend, onednn_loaded, expected', [
    ('auto', 'cpu', True, "runs 'onednn': oneDNN on {isa}, 3 thread(s) per call (fixed), "
                          "on cpu (this backend); 'lax+unrolled' on gpu; 'lax' on tpu"),
    ('auto', 'cpu', False, "runs 'unrolled' (oneDNN unavailable: off) on cpu "
                           "(this backend); 'lax+unrolled' on gpu; 'lax' on tpu"),
    ('auto', 'gpu', True, "runs 'lax+unrolled' on gpu (this backend); 'onednn' on cpu; "
                          "'lax' on tpu"),
    ('auto', 'gpu', False, "runs 'lax+unrolled' on gpu (this backend); 'unrolled' on "
                           "cpu; 'lax' on tpu"),
    ('onednn', 'gpu', True, "runs 'lax' on gpu (this backend); 'onednn' on cpu; "
                            "'lax' on tpu"),
    ('unrolled', 'gpu', True, "runs 'unrolled' on every backend"),
    ('lax', 'cpu', True, "runs 'lax' on every backend")])
def test_conv_impl_description_per_backend(monkeypatch, impl, backend, onednn_loaded,
                                           expected):
  """The start-up line says what runs on this backend and on the others."""
  monkeypatch.setattr(jax, 'default_backend', lambda: backend)
  monkeypatch.setattr(onednn, 'available', lambda: onednn_loaded)
  monkeypatch.setattr(onednn, 'unavailable_reason', lambda: 'off')
  monkeypatch.setattr(onednn, 'isa', lambda: 'avx2')
  monkeypatch.setattr(onednn, 'threads_per_call', lambda: 3)
  monkeypatch.setenv(onednn.THREADS_ENV, 'fixed')
  line = layers.conv_impl_description(impl)
  assert line == f'model.conv_impl={impl!r} ' + expected.format(isa='avx2')


def test_conv_keeps_nn_conv_parameters():
  """Same names, shapes and initial values as nn.Conv: checkpoints carry over."""
  x = jnp.ones((1, 8, 8, 6))
  ours = layers.Conv(12, (3, 3), feature_group_count=3, conv_impl='unrolled')
  ref = nn.Conv(12, (3, 3), feature_group_count=3)
  v_ours = ours.init(jax.random.key(3), x)
  v_ref = ref.init(jax.random.key(3), x)
  jax.tree.map(np.testing.assert_array_equal, v_ours, v_ref)
  np.testing.assert_allclose(ours.apply(v_ours, x), ref.apply(v_ref, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('shape', [(2, 8, 8, 3), (1, 7, 9, 2), (3, 5, 4, 1)])
@pytest.mark.parametrize('ours, ref', [(layers.max_pool_2x2, nn.max_pool),
                                       (layers.avg_pool_2x2, nn.avg_pool)],
                         ids=['max', 'avg'])
@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_pooling_matches_flax_values_and_gradients(shape, ours, ref, dtype):
  # No ties: continuous values (bfloat16's 8 bits could tie in a window).
  x = jax.random.permutation(jax.random.key(0), np.prod(shape)).reshape(shape)
  x = (x / x.size - 0.5).astype(dtype)
  pool_ref = lambda x: ref(x, (2, 2), strides=(2, 2))
  y = ours(x)
  assert y.dtype == dtype
  # Against flax on float32 values: the pool rounds once, to x's dtype.
  tol = 1e-6 if dtype == jnp.float32 else 2.0**-8
  y_ref = pool_ref(x.astype(jnp.float32))
  np.testing.assert_allclose(y.astype(np.float32), y_ref, rtol=tol)
  w = jax.random.normal(jax.random.key(1), pool_ref(x).shape).astype(dtype)
  loss = lambda f: lambda x: (f(x).astype(jnp.float32) * w).sum()
  g, g_ref = jax.grad(loss(ours))(x), jax.grad(loss(pool_ref))(x)
  assert g.dtype == dtype
  np.testing.assert_allclose(g.astype(np.float32), g_ref.astype(np.float32), rtol=1e-6)


def test_channel_sum_equals_a_plain_sum():
  x = jax.random.normal(jax.random.key(0), (4, 5, 6, 3))
  np.testing.assert_allclose(unrolled_conv.channel_sum(x), x.sum((0, 1, 2)), rtol=1e-5)



def _moved(variables):
  """BatchNorm's variables away from their init (1, 0, 0, 1), per channel."""
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(jax.random.key(7), len(leaves))
  return jax.tree.unflatten(tree, [a + jax.random.uniform(k, a.shape) for a, k in zip(leaves, keys)])


@pytest.mark.parametrize('shape', [(4, 8, 6, 3), (3, 5, 7, 12), (1, 4, 4, 1)])
@pytest.mark.parametrize('activation', ['swish', 'relu', None])
@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_batch_norm_act_matches_flax_values_statistics_and_gradients(shape, activation, dtype):
  """BatchNormAct (CPU: the (N, H, W*C) view) and its (N, H, W, C) form
  elsewhere against nn.BatchNorm + the activation: same variables, output,
  running statistics and both gradients."""
  x = (jax.random.normal(jax.random.key(0), shape) * 2 + 1).astype(dtype)
  ours = layers.BatchNormAct(activation, dtype)
  ref = layers.norm_layer('batch', True, dtype)()
  act = layers.activation_fn(activation) if activation else (lambda y: y)
  variables = ours.init(jax.random.key(1), x)
  jax.tree.map(np.testing.assert_array_equal, variables, ref.init(jax.random.key(1), x))
  variables = _moved(variables)
  stats = variables['batch_stats']

  def run_ref(params, x):
    y, new = ref.apply({'params': params, 'batch_stats': stats}, x, mutable=['batch_stats'])
    return act(y), new['batch_stats']

  def run_form(wide):
    def run(params, x):
      y, mean, var = layers._batch_norm_act(x, params['scale'], params['bias'], act=act,
                                            dtype=dtype, wide=wide)
      m = layers.BATCH_NORM_MOMENTUM
      return y, {'mean': m * stats['mean'] + (1 - m) * mean,
                 'var': m * stats['var'] + (1 - m) * var}
    return run

  def run_module(params, x):
    y, new = ours.apply({'params': params, 'batch_stats': stats}, x, mutable=['batch_stats'])
    return y, new['batch_stats']

  w = jax.random.normal(jax.random.key(3), shape)
  loss = lambda run: lambda p, x: (run(p, x)[0].astype(jnp.float32) * w).sum()
  y_ref, stats_ref = run_ref(variables['params'], x)
  g_ref = jax.grad(loss(run_ref), argnums=(0, 1))(variables['params'], x)
  # bfloat16: a rounding or two of its 8 bits apart (the output, the gradient
  # that reaches x through it).
  tol = dict(rtol=1e-5, atol=1e-5) if dtype == jnp.float32 else dict(rtol=2**-7, atol=2**-7)
  gtol = 1e-4 if dtype == jnp.float32 else 2**-6
  for run in (run_module, run_form(True), run_form(False)):
    y, new_stats = run(variables['params'], x)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.astype(np.float32), y_ref.astype(np.float32), **tol)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
                 new_stats, stats_ref)
    g = jax.grad(loss(run), argnums=(0, 1))(variables['params'], x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(
        a.astype(np.float32), b.astype(np.float32), rtol=gtol,
        atol=gtol * np.abs(b.astype(np.float32)).max()),
        g, g_ref)


def test_narrow_conv_norm_act_trains_on_the_wide_view():
  """In training, ConvNormAct with 15 channels or fewer runs BatchNormAct,
  whose CPU lowering works on (N, H, W*C) and whose CUDA lowering does not;
  16 channels take flax's BatchNorm. Variables are named as flax's either way,
  so checkpoints carry over."""
  x = jnp.ones((2, 32, 32, 3))
  for features, wide in ((3, True), (12, True), (16, False)):
    layer = layers.ConvNormAct(features, groups=1, activation='swish', conv_impl='lax')
    variables = layer.init(jax.random.key(0), x, train=False)
    assert {k: sorted(v) for k, v in variables['params'].items()} == {
        'Conv_0': ['kernel'], 'BatchNorm_0': ['bias', 'scale']}
    assert sorted(variables['batch_stats']['BatchNorm_0']) == ['mean', 'var']
    traced = jax.jit(jax.grad(lambda v: layer.apply(
        v, x, train=True, mutable=['batch_stats'])[0].sum())).trace(variables)
    # The view's reductions (the backward pass's zero residuals of the branch
    # not taken have its shape on CUDA too, and are dropped when compiled).
    view = f'(tensor<2x32x{32 * features}xf32>, tensor<f32>)'
    reduces = lambda p: sum('stablehlo.reduce' in line and view in line for line in
                            traced.lower(lowering_platforms=(p,)).as_text().splitlines())
    assert (reduces('cpu') >= 4) == wide and reduces('cuda') == 0, features
