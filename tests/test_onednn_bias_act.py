"""Inference's conv + BatchNorm + activation as one oneDNN call
(`onednn.conv_bias_act`, `layers.conv_bn_act_inference`): values against
plain JAX for every conv case, activation and dtype; the handler ran; the
models' logits in inference equal the unfused modules'; gradients, vmap,
batch sharding; lowered for CUDA it is not there; bad calls are refused."""

import re
import subprocess
import sys
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from helpers import ROOT, load_config_file, require
from isovolnet_jax import models, onednn
from isovolnet_jax.models import layers

require(onednn.available(),
        f'the oneDNN extension is unavailable ({onednn.unavailable_reason()}); '
        f"pip install -e . builds it")

DN = ('NHWC', 'HWIO', 'NHWC')
ACTIVATIONS = sorted(onednn.BIAS_ACT_ACTIVATIONS, key=str)
JAX_ACTIVATIONS = {None: lambda y: y, **layers.ACTIVATIONS}
# (input NHWC, kernel HWIO, strides, dilation, padding, groups): the model's
# shapes and the asymmetric ones of test_onednn.py.
CASES = {
    '3x3': ((2, 8, 8, 4), (3, 3, 4, 6), (1, 1), (1, 1), 'SAME', 1),
    '1x1-3to12': ((2, 8, 8, 3), (1, 1, 3, 12), (1, 1), (1, 1), 'SAME', 1),
    'depthwise-3': ((2, 9, 7, 3), (3, 3, 1, 3), (1, 1), (1, 1), 'SAME', 3),
    'depthwise-x2-stride2': ((2, 9, 9, 6), (3, 3, 1, 12), (2, 2), (1, 1), 'SAME', 6),
    'grouped-3x2-stride-2x1-dilation-1x3': ((2, 9, 10, 8), (3, 2, 2, 12), (2, 1), (1, 3),
                                           'SAME', 4),
    'kernel-3x1-valid': ((2, 8, 7, 4), (3, 1, 4, 6), (1, 1), (1, 1), 'VALID', 1),
    'batch1-5x3-stride-3x1': ((1, 11, 6, 3), (5, 3, 3, 4), (3, 1), (1, 1),
                              ((2, 1), (1, 1)), 1),
}


def _reference(activation, strides, dilation, padding, groups):
  def reference(x, k, b):
    y = lax.conv_general_dilated(x, k, strides, padding, rhs_dilation=dilation,
                                 dimension_numbers=DN, feature_group_count=groups,
                                 preferred_element_type=jnp.float32)
    return JAX_ACTIVATIONS[activation](y + b).astype(x.dtype)
  return reference


def _inputs(case, dtype, seed=0):
  x_shape, k_shape = case[:2]
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=x_shape), dtype)
  k = jnp.asarray(rng.normal(size=k_shape), dtype)
  b = jnp.asarray(2 * rng.normal(size=k_shape[-1]), jnp.float32)  # Moves the kinks.
  return x, k, b


def _fused(activation, case):
  _, _, strides, dilation, padding, groups = case
  ref = _reference(activation, strides, dilation, padding, groups)
  return (lambda x, k, b: onednn.conv_bias_act(x, k, b, activation, strides, padding,
                                               dilation, groups, ref)), ref


@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
@pytest.mark.parametrize('name', sorted(CASES))
def test_values_match_plain_jax_and_the_handler_ran(name, dtype):
  """Every case with every activation (one compile each); float32 to 1e-5 of
  the largest output, bfloat16 to its rounding of the output (2^-8)."""
  x, k, b = _inputs(CASES[name], dtype)
  for activation in ACTIVATIONS:
    fused, ref = _fused(activation, CASES[name])
    before = onednn.bias_act_calls()
    got = jax.block_until_ready(jax.jit(fused)(x, k, b))
    assert onednn.bias_act_calls() == before + 1, (name, activation)
    assert onednn.TARGET_BIAS_ACT in jax.jit(fused).lower(x, k, b).as_text()
    want = ref(x, k, b)
    assert got.shape == want.shape and got.dtype == want.dtype
    got, want = np.float32(got), np.float32(want)
    scale = max(float(np.abs(want).max()), 1e-6)
    tol = 1e-5 if dtype == 'float32' else 2 ** -7
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale,
                               err_msg=f'{name} {activation}')


def test_gradients_are_the_references_and_vmap_runs_per_element():
  case = CASES['grouped-3x2-stride-2x1-dilation-1x3']
  x, k, b = _inputs(case, jnp.float32)
  fused, ref = _fused('swish', case)
  loss = lambda f: (lambda x, k, b: jnp.sum(jnp.sin(f(x, k, b))))
  ours = jax.jit(jax.grad(loss(fused), argnums=(0, 1, 2)))(x, k, b)
  want = jax.grad(loss(ref), argnums=(0, 1, 2))(x, k, b)
  for a, w in zip(ours, want):
    np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-5 * float(jnp.abs(w).max()))
  xs = jnp.stack([x, 2 * x, -x])
  before = onednn.bias_act_calls()
  got = jax.vmap(fused, in_axes=(0, None, None))(xs, k, b)
  assert onednn.bias_act_calls() >= before + 3
  np.testing.assert_allclose(got, jax.vmap(ref, in_axes=(0, None, None))(xs, k, b),
                             rtol=1e-5, atol=1e-5 * float(jnp.abs(got).max()))


def test_what_onednn_cannot_take_runs_the_reference():
  """float16, an unknown activation, a bias of another dtype: plain JAX, no call."""
  case = CASES['3x3']
  for x_dtype, activation, b_dtype in (('float16', 'relu', 'float32'),
                                       ('float32', 'gelu', 'float32'),
                                       ('float32', 'relu', 'bfloat16')):
    x, k, b = _inputs(case, x_dtype)
    calls = []
    def reference(x, k, b):
      calls.append(1)
      return x[:, :, :, :1] * 0 + b[0]
    f = lambda x, k, b: onednn.conv_bias_act(x, k, b, activation, (1, 1), 'SAME', (1, 1),
                                             1, reference)
    assert onednn.TARGET_BIAS_ACT not in jax.jit(f).lower(x, k, b.astype(b_dtype)).as_text()
    assert calls


@pytest.mark.parametrize('bias_shape, bias_dtype, act, alpha, why', [
    ((5,), jnp.float32, 1, 0.0, 'the bias must be float32'),
    ((6,), jnp.bfloat16, 1, 0.0, 'the bias must be float32'),
    ((6, 1), jnp.float32, 1, 0.0, 'the bias must be float32'),
    ((6,), jnp.float32, 9, 0.0, 'unknown activation'),
    ((6,), jnp.float32, 2, float('nan'), 'activation parameters must be finite'),
])
def test_malformed_calls_are_refused_by_the_handler(bias_shape, bias_dtype, act, alpha, why):
  x, k = jnp.ones((2, 6, 6, 4), jnp.float32), jnp.ones((3, 3, 4, 6), jnp.float32)
  b = jnp.ones(bias_shape, bias_dtype)
  with pytest.raises(Exception, match=f'onednn_conv: {why}'):
    jax.block_until_ready(onednn._ffi(onednn._BIAS_ACT, (x, k, b), (2, 6, 6, 6),
                                      jnp.float32, ((1, 1), (1, 1), (1, 1, 1, 1), 1),
                                      (act, alpha, 0.0)))


def test_the_bias_act_kind_is_refused_by_the_plain_target():
  x, k = jnp.ones((2, 6, 6, 4), jnp.float32), jnp.ones((3, 3, 4, 6), jnp.float32)
  call = jax.ffi.ffi_call(onednn.TARGET, jax.ShapeDtypeStruct((2, 6, 6, 6), jnp.float32))
  with pytest.raises(Exception, match='onednn_conv: the bias \\+ activation kind'):
    jax.block_until_ready(call(
        x, k, kind=np.int64(onednn._BIAS_ACT), strides=np.ones(2, np.int64),
        dilation=np.ones(2, np.int64), padding=np.ones(4, np.int64), groups=np.int64(1),
        threads=np.int64(1)))


def _model(name, dtype):
  config = load_config_file(name)
  with config.unlocked():
    config.dtype = dtype
  model = models.from_config(config, 10)
  x = jnp.asarray(np.random.default_rng(0).uniform(-2, 2, (4, 32, 32, 3)), jnp.float32)
  variables = model.init(jax.random.key(0), x, train=False)
  # Running statistics and BatchNorm parameters away from their init (0, 1,
  # 1, 0), so that a fold that drops one of them changes the logits.
  def moved(path, a):
    if 'BatchNorm' not in jax.tree_util.keystr(path):
      return a
    key = jax.random.fold_in(jax.random.key(1), zlib.crc32(jax.tree_util.keystr(path).encode()))
    return a + 0.5 * jax.random.uniform(key, a.shape, a.dtype)
  return model, jax.tree_util.tree_map_with_path(moved, variables), x


def _inference_traced(name):
  """The config's model (dtype 'auto') in inference, traced: lower it per platform."""
  model, variables, x = _model(name, 'auto')
  return jax.jit(lambda v, x: model.apply(v, x, train=False)).trace(variables, x)


# The zoo's models built of ConvNormAct, each activation the zoo uses (the
# two defaults in the default run; ResNet-20's and MobileNetV2's in `-m long`).
MODEL_CONFIGS = ['cifar10', 'cifar10_fast_cpu',
                 pytest.param('cifar10_resnet20', marks=pytest.mark.long),
                 pytest.param('cifar10_mobilenet_v2', marks=pytest.mark.long)]


@pytest.mark.parametrize('name', MODEL_CONFIGS)
def test_models_in_inference_equal_the_unfused_modules(name):
  """float32 to 1e-4 of the largest logit; the config's own dtype (mixed
  bfloat16 on a CPU with native bfloat16) to 2%."""
  for dtype, tol in (('float32', 1e-4), (load_config_file(name).dtype, 2e-2)):
    model, variables, x = _model(name, dtype)
    # A new function for each: jit caches traces by the function.
    apply = lambda: jax.jit(lambda v, x: model.apply(v, x, train=False))
    before = onednn.bias_act_calls()
    fused = jax.block_until_ready(apply()(variables, x))
    assert onednn.bias_act_calls() > before, (name, dtype)
    with layers.fused_inference(False):
      unfused = apply()
      plain = unfused(variables, x)
      assert onednn.TARGET_BIAS_ACT not in unfused.lower(variables, x).as_text()
    scale = float(jnp.abs(plain).max())
    np.testing.assert_allclose(fused, plain, rtol=tol, atol=tol * scale,
                               err_msg=f'{name} {dtype}')


def test_isovolnet_inference_is_all_fused_on_cpu_and_unfused_for_cuda():
  """Every ConvNormAct of the default IsoVolNet is one call in inference on
  CPU; the same trace lowered for CUDA has no CPU custom call and flax's
  BatchNorm (rsqrt of the running variance) after each convolution."""
  traced = _inference_traced('cifar10')
  cpu = traced.lower(lowering_platforms=('cpu',)).as_text()
  cuda = traced.lower(lowering_platforms=('cuda',)).as_text()
  assert cpu.count(f'@{onednn.TARGET_BIAS_ACT}') == 8  # 4 blocks x (depthwise, pointwise).
  assert f'@{onednn.TARGET}(' not in cpu.replace(onednn.TARGET_BIAS_ACT, '')
  assert onednn.TARGET_BIAS_ACT not in cuda and onednn.TARGET not in cuda
  # Unfused: every convolution takes its kernel parameter as it is (the fold
  # would hand it kernel x scale / std).
  kernels = re.findall(r'stablehlo\.convolution\(%[\w#]+, (%[\w#]+)\)', cuda)
  assert len(kernels) == 8 and all(k.startswith('%arg') for k in kernels), kernels


def test_fast_cnn_inference_is_all_fused_on_cpu_stem_included():
  """FastCNN's 7 convs, its 3-channel stem (fast_cnn.Stem) too, are one call
  each in inference on CPU (the first the stem's 32x32x24 output), with no
  unfused oneDNN conv left."""
  traced = _inference_traced('cifar10_fast_cpu')
  cpu = traced.lower(lowering_platforms=('cpu',)).as_text()
  assert cpu.count(f'@{onednn.TARGET_BIAS_ACT}') == 7
  assert f'@{onednn.TARGET}(' not in cpu.replace(onednn.TARGET_BIAS_ACT, '')
  assert re.search(r'-> tensor<4x32x32x24x\w+>$', next(
      l.strip() for l in cpu.splitlines() if f'@{onednn.TARGET_BIAS_ACT}' in l))


def test_a_narrow_depthwise_convs_swish_runs_after_the_call():
  """IsoVolNet's first depthwise conv (3 channels) calls oneDNN without a
  post-op and its swish follows in XLA; every wider conv carries its swish as
  the post-op (layers._SWISH_IN_XLA_MAX_CHANNELS). The values: the model test
  above."""
  traced = _inference_traced('cifar10')
  cpu = traced.lower(lowering_platforms=('cpu',)).as_text()
  calls = [(int(re.search(r'act = (\d+)', l).group(1)), int(re.search(
      r'-> tensor<\w+x(\d+)x\w+>$', l.strip()).group(1)))
           for l in cpu.splitlines() if f'@{onednn.TARGET_BIAS_ACT}' in l]
  swish = onednn.BIAS_ACT_ACTIVATIONS['swish'][0]
  assert calls == [(0, 3)] + [(swish, c) for c in (12, 12, 48, 48, 192, 192, 768)], calls
  assert 'stablehlo.logistic' in cpu or 'stablehlo.exponential' in cpu


def test_conv_bias_act_lowered_for_cuda_is_the_reference():
  case = CASES['3x3']
  x, k, b = _inputs(case, jnp.float32)
  fused, _ = _fused('relu', case)
  traced = jax.jit(fused).trace(x, k, b)
  assert onednn.TARGET_BIAS_ACT in traced.lower(lowering_platforms=('cpu',)).as_text()
  cuda = traced.lower(lowering_platforms=('cuda',)).as_text()
  assert onednn.TARGET_BIAS_ACT not in cuda and 'stablehlo.convolution' in cuda


def test_training_mode_is_unchanged():
  """Training (batch statistics) never takes the inference path."""
  model, variables, x = _model('cifar10', 'float32')
  before = onednn.bias_act_calls()
  jax.block_until_ready(model.apply(variables, x, train=True, mutable=['batch_stats']))
  assert onednn.bias_act_calls() == before


_SHARDED = r'''
import jax
jax.config.update('jax_num_cpu_devices', 2)
import jax.numpy as jnp, numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
from isovolnet_jax import onednn
from isovolnet_jax.models import layers
from test_onednn_bias_act import _model
mesh = jax.make_mesh((2,), ('data',), axis_types=(AxisType.Auto,))
model, variables, x = _model('cifar10', 'float32')
x = jax.device_put(jnp.concatenate([x, -x]), NamedSharding(mesh, P('data')))
apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
fused = apply(variables, x)
hlo = apply.lower(variables, x).compile().as_text()
calls = [l for l in hlo.splitlines() if onednn.TARGET_BIAS_ACT in l and 'custom-call(' in l]
assert len(calls) == 8 and all('[4,' in l.split('=')[1] for l in calls), calls
assert 'all-gather' not in hlo
with layers.fused_inference(False):
  plain = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)
np.testing.assert_allclose(fused, plain, rtol=1e-4, atol=1e-4 * float(jnp.abs(plain).max()))
print('ok')
'''


@pytest.mark.long
def test_batch_sharded_inference_runs_per_device():
  """Over 2 devices each call takes its device's 4 of 8 images, no gather."""
  out = subprocess.run([sys.executable, '-c', _SHARDED], cwd=ROOT / 'tests',
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip().endswith('ok')


def test_the_switch_traces_the_separate_modules_inside_its_block_only():
  model, variables, x = _model('cifar10', 'float32')
  def captured():
    _, state = model.apply(variables, x, train=False, capture_intermediates=True,
                           mutable=['intermediates'])
    return {jax.tree_util.keystr(p) for p, _ in
            jax.tree_util.tree_flatten_with_path(state['intermediates'])[0]}
  with layers.fused_inference(False):
    assert any('Conv_0' in p for p in captured())
  paths = captured()
  assert not any('Conv_0' in p for p in paths)
  assert any("['block1_conv1']['pointwise']['__call__']" in p for p in paths), paths


def test_the_benchmark_times_both_and_counts_the_fused_calls():
  from isovolnet_jax import config_defaults
  from isovolnet_jax.bench import fused_inference
  config = config_defaults.get_base_config()
  config.model.update({'name': 'fast_cnn', 'widths': (8, 8, 16), 'pool_after': (0, 1)})
  config.batch_size = 4
  r = fused_inference.run(config, rounds=2, steps=1, warmup=1)
  # Its stem (fast_cnn.Stem) and its two ConvNormAct: one call each.
  assert r['fused_calls_per_batch'] == 3 and r['unfused_calls_per_batch'] == 0
  assert all(len(v) == 2 and min(v) > 0 for v in r['rounds'].values())
  assert r['fused_over_unfused'] == r['median_img_s']['fused'] / r['median_img_s']['unfused']
  assert r['max_abs_logit_diff'] <= 1e-4 * r['max_abs_logit'] and r['argmax_agree'] == 1
