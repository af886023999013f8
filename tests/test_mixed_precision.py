"""config.dtype='mixed_bfloat16': a float32 model whose convolutions take
bfloat16 operands (layers.conv_function, `_with_operands_in`).

Checked on the training step's StableHLO (traced on abstract inputs, lowered
for CPU and for CUDA as tests/test_lowering.py does): every convolution, and
every oneDNN custom call, has bfloat16 operands and result, and no arithmetic
op (BatchNorm, activations, pooling, residual adds, the head, the loss, the
optimizer) computes in bfloat16; with dtype='bfloat16' throughout the same
check finds bf16 arithmetic, so it sees what it looks for. Then: the
parameters are the float32 model's, oneDNN's kernels run, a few training
steps give float32's losses to bfloat16's precision.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import load_config_file, metrics, require, smoke_config
from isovolnet_jax import config_defaults, models, onednn, train
from isovolnet_jax.errors import InputError
from isovolnet_jax.models import layers
from test_lowering import CONFIGS, ONEDNN, stablehlo, traced_train_step

MIXED = 'mixed_bfloat16'
# Ops that compute (as opposed to moving, converting or convolving data).
ARITHMETIC = ('add', 'subtract', 'multiply', 'divide', 'rsqrt', 'sqrt', 'maximum',
              'minimum', 'logistic', 'exponential', 'log', 'tanh', 'negate', 'power',
              'abs', 'compare', 'select', 'reduce', 'reduce_window', 'erf')
_OP = re.compile(r'= "?(stablehlo|chlo)\.([a-z_]+)"?')


def ops_by_dtype(text: str):
  """[(op name, line)] for each op line of the StableHLO text."""
  out = []
  for line in text.splitlines():
    m = _OP.search(line)
    if m:
      out.append((m.group(2), line))
  return out


def conv_lines(text: str):
  return [l for op, l in ops_by_dtype(text)
          if op == 'convolution' or (op == 'custom_call' and f'@{ONEDNN}' in l)]


def bf16_arithmetic(text: str):
  return [l.strip()[:160] for op, l in ops_by_dtype(text)
          if op in ARITHMETIC and 'bf16' in l]


def assert_mixed(text: str, where):
  convs = conv_lines(text)
  assert convs, where
  # Operands and result: every tensor type on the line is bf16 (no f32 conv left).
  for line in convs:
    types = re.findall(r'tensor<[^>]*>', line.split(' : ')[-1])
    assert types and all(t.endswith('xbf16>') for t in types), (where, line.strip()[:200])
  assert not bf16_arithmetic(text), (where, bf16_arithmetic(text)[:3])


@pytest.mark.parametrize('name', CONFIGS)
def test_train_step_convs_bf16_elementwise_f32(name):
  """Every CIFAR-10 config (every zoo model, whiten stems, airbench), 'auto'
  lowered for CPU (oneDNN) and for CUDA (XLA's convs)."""
  traced = traced_train_step(name, dtype=MIXED)
  assert_mixed(stablehlo(traced, 'cuda'), (name, 'cuda'))
  cpu = stablehlo(traced, 'cpu')
  assert_mixed(cpu, (name, 'cpu'))
  if onednn.available():
    assert f'@{ONEDNN}' in cpu


@pytest.mark.parametrize('impl', ['lax', 'unrolled', 'onednn'])
@pytest.mark.parametrize('name', ['cifar10', 'cifar10_fast_cpu'])
def test_every_conv_impl(name, impl):
  if impl == 'onednn':
    require(onednn.available(), f'oneDNN unavailable: {onednn.unavailable_reason()}')
  text = stablehlo(traced_train_step(name, impl, dtype=MIXED), 'cpu')
  assert_mixed(text, (name, impl))
  assert (f'@{ONEDNN}' in text) == (impl == 'onednn')


def test_the_check_sees_bf16_arithmetic_and_f32_convs():
  """dtype=bfloat16 throughout computes BatchNorm & co. in bf16, float32 has
  float32 convs: both fail `assert_mixed`."""
  for dtype in ('bfloat16', 'float32'):
    text = stablehlo(traced_train_step('cifar10', 'lax', dtype=dtype), 'cpu')
    with pytest.raises(AssertionError):
      assert_mixed(text, dtype)
  text = stablehlo(traced_train_step('cifar10', 'lax', dtype='bfloat16'), 'cpu')
  assert bf16_arithmetic(text)


def _model_and_variables(name: str, dtype: str, real: bool = False):
  config = load_config_file(name)
  with config.unlocked():
    config.dtype = dtype
  model = models.from_config(config, 10)
  x = jnp.zeros((2, 32, 32, 3))
  init = lambda: model.init(jax.random.key(0), x, train=False)
  return model, (jax.jit(init)() if real else jax.eval_shape(init))


@pytest.mark.parametrize('name', CONFIGS)
def test_params_and_stats_are_the_float32_models(name):
  model, mixed = _model_and_variables(name, MIXED)
  assert model.dtype == jnp.float32 and model.conv_dtype == jnp.bfloat16
  _, f32 = _model_and_variables(name, 'float32')
  shapes = lambda t: jax.tree.map(lambda a: (a.shape, a.dtype), t)
  assert shapes(mixed) == shapes(f32)


def test_params_values_are_the_float32_models():
  _, mixed = _model_and_variables('cifar10_fast_cpu', MIXED, real=True)
  _, f32 = _model_and_variables('cifar10_fast_cpu', 'float32', real=True)
  jax.tree.map(np.testing.assert_array_equal, mixed, f32)


def test_float32_and_bfloat16_models_have_no_conv_dtype():
  for dtype in ('float32', 'bfloat16'):
    model, _ = _model_and_variables('cifar10', dtype)
    assert model.conv_dtype is None and model.dtype == models.DTYPES[dtype]


def test_conv_function_casts_and_keeps_its_identity():
  conv = layers.conv_function('lax', jnp.bfloat16)
  assert conv is layers.conv_function('lax', 'bfloat16')  # Cached: one jit trace.
  assert conv.inner is jax.lax.conv_general_dilated
  assert layers.conv_function('lax', None) is jax.lax.conv_general_dilated
  x, k = jnp.ones((1, 4, 4, 3)), jnp.ones((3, 3, 3, 5))
  dn = ('NHWC', 'HWIO', 'NHWC')
  jaxpr = jax.make_jaxpr(lambda x, k: conv(x, k, (1, 1), 'SAME', dimension_numbers=dn))(x, k)
  eqn = next(e for e in jaxpr.eqns if e.primitive.name == 'conv_general_dilated')
  assert [v.aval.dtype for v in eqn.invars] == [jnp.bfloat16] * 2
  assert jaxpr.out_avals[0].dtype == jnp.float32
  if onednn.available():
    assert layers.runs_onednn_on_cpu(layers.conv_function('onednn', jnp.bfloat16))
    assert layers.runs_onednn_on_cpu(layers.conv_function('auto', jnp.bfloat16))


def test_onednn_bf16_kernels_run_forward_and_both_gradients():
  require(onednn.available(), f'oneDNN unavailable: {onednn.unavailable_reason()}')
  require('bfloat16' in onednn.supported_dtypes(),
          f'oneDNN bf16 unavailable on this CPU: {onednn.probe_results()}')
  model, variables = _model_and_variables('cifar10_fast_cpu', MIXED, real=True)
  x = jax.random.uniform(jax.random.key(1), (4, 32, 32, 3), minval=-1, maxval=1)

  @jax.jit
  def loss_and_grad(params):
    def loss(params):
      logits, _ = model.apply({**variables, 'params': params}, x, train=True,
                              mutable=['batch_stats'])
      return jnp.mean(logits ** 2)
    return jax.value_and_grad(loss)(params)

  # The compiled step's oneDNN calls are bf16 (and nothing else convolves).
  assert_mixed(loss_and_grad.lower(variables['params']).as_text(), 'fast_cnn')
  before = onednn.calls()
  value, grads = loss_and_grad(variables['params'])
  jax.block_until_ready(grads)
  ran = [b - a for a, b in zip(before, onednn.calls())]
  assert all(n > 0 for n in ran), ran  # Forward, input and kernel gradients.
  assert np.isfinite(value)
  assert all(np.isfinite(g).all() and g.dtype == np.float32 for g in jax.tree.leaves(grads))


def test_training_losses_are_finite_and_close_to_float32s(small_cifar, tmp_path):
  losses = {}
  for dtype in ('float32', MIXED):
    config = smoke_config(small_cifar, tmp_path / 'cache', num_train_steps=6,
                          log_every_steps=1, dtype=dtype)
    train.train_and_evaluate(config, tmp_path / dtype)
    losses[dtype] = [r['loss'] for r in metrics(tmp_path / dtype, 'train')]
  assert len(losses[MIXED]) == 6 and np.isfinite(losses[MIXED]).all()
  np.testing.assert_allclose(losses[MIXED], losses['float32'], rtol=3e-2)


@pytest.mark.parametrize('bad', ['mixed', 'float16', 'mixed_float16'])
def test_invalid_dtype_is_refused_with_the_choices(bad):
  config = config_defaults.get_base_config()
  with config.unlocked():
    config.dtype = bad
  with pytest.raises(InputError, match=f"unknown dtype='{bad}'; choose one of "
                                       f"float32, bfloat16, mixed_bfloat16"):
    models.from_config(config, 10)


WHITEN_STEM = sorted(n for n, c in models.MODELS.items() if 'whiten_stem' in c.__dataclass_fields__)


@pytest.mark.parametrize('model_name', WHITEN_STEM)
def test_whiten_stems_conv_is_bf16_too(model_name):
  """model.whiten_stem (set by sweeps, in no config file): its 2x2 conv, traced
  in a forward + backward pass of the model with every conv_impl's 'auto'."""
  config = next(load_config_file(n) for n in CONFIGS
                if load_config_file(n).model.name == model_name)
  with config.unlocked():
    config.dtype, config.model.whiten_stem = MIXED, True
  model = models.from_config(config, 10)
  x = jnp.zeros((2, 32, 32, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  assert 'whiten' in variables['params']

  def loss(params, variables):
    logits, _ = model.apply({**variables, 'params': params}, x, train=True,
                            mutable=['batch_stats'], rngs={'dropout': jax.random.key(0)})
    return jnp.mean(logits)

  lowered = jax.jit(jax.grad(loss)).trace(variables['params'], variables).lower(
      lowering_platforms=('cpu',))
  text = lowered.as_text()
  assert_mixed(text, model_name)
  # The stem's conv: 3 input channels, 24 outputs, 2x2, bf16 (oneDNN or XLA's).
  assert any('2x2x3x24xbf16' in l for l in conv_lines(text)), model_name


# ---- config.dtype='auto': mixed where the CPU has native bfloat16 (and the
# convs are oneDNN's), float32 elsewhere; chosen per platform when lowered.

AUTO_CONFIGS = ('cifar10', 'cifar10_fast_cpu', 'cifar10_isovolnet_seed', 'cifar10_resnet20')


def f32_convs(text: str, where):
  convs = conv_lines(text)
  assert convs, where
  assert not any('bf16' in line for line in convs), (where, [l for l in convs if 'bf16' in l][:2])
  # (Lowered for CUDA, the switch's unused residual slots may hold bf16 zeros.)
  assert not bf16_arithmetic(text), (where, bf16_arithmetic(text)[:3])


@pytest.fixture
def native(monkeypatch):
  """Set whether this CPU 'has' native bfloat16 (`layers.native_bfloat16`)."""
  def set_native(value: bool):
    monkeypatch.setattr(layers, 'native_bfloat16', lambda: value)
  return set_native


def test_the_measured_configs_default_to_auto_and_the_schema_to_float32():
  for name in AUTO_CONFIGS:
    assert load_config_file(name).dtype == 'auto', name
  assert config_defaults.get_base_config().dtype == 'float32'


@pytest.mark.parametrize('name', AUTO_CONFIGS)
def test_auto_is_mixed_on_a_native_bfloat16_cpu_and_float32_lowered_for_cuda(name, native):
  require(onednn.available(), f'oneDNN unavailable: {onednn.unavailable_reason()}')
  native(True)
  traced = traced_train_step(name, dtype='auto')
  cpu = stablehlo(traced, 'cpu')
  assert_mixed(cpu, (name, 'cpu'))
  assert f'@{ONEDNN}' in cpu
  f32_convs(stablehlo(traced, 'cuda'), (name, 'cuda'))


@pytest.mark.parametrize('impl', ['auto', 'lax', 'unrolled'])
def test_auto_is_float32_without_native_bfloat16_or_without_onednn(impl, native):
  """No native bfloat16 (any conv_impl), or convs that are not oneDNN's
  (XLA's or the unrolled ones, even on a native-bfloat16 CPU): float32."""
  native(False)
  f32_convs(stablehlo(traced_train_step('cifar10', impl, dtype='auto'), 'cpu'), impl)
  if impl != 'auto':
    native(True)
    f32_convs(stablehlo(traced_train_step('cifar10', impl, dtype='auto'), 'cpu'), impl)


def test_native_bfloat16_is_onednns_isa_and_probe():
  expected = (onednn.available() and 'bfloat16' in onednn.supported_dtypes()
              and onednn.isa() in ('avx512_core_bf16', 'avx512_core_fp16', 'avx512_core_amx',
                                   'avx512_core_amx_fp16'))
  assert layers.native_bfloat16() == expected


def test_resolve_dtype_and_description(native):
  config = load_config_file('cifar10')
  for dtype in ('float32', 'bfloat16', MIXED):
    with config.unlocked():
      config.dtype = dtype
    assert models.resolve_dtype(config) == models.resolve_dtype(config, 'cuda') == dtype
    assert models.dtype_description(config) == f'compute dtype {dtype}'
  with config.unlocked():
    config.dtype = 'auto'
  native(True)
  expected_here = MIXED if onednn.available() else 'float32'
  assert models.resolve_dtype(config) == expected_here
  assert models.resolve_dtype(config, 'cuda') == models.resolve_dtype(config, 'tpu') == 'float32'
  line = models.dtype_description(config)
  assert line.startswith(f"dtype='auto' runs {expected_here} on cpu (this backend")
  assert line.endswith('); float32 on gpu, float32 on tpu'), line
  with config.unlocked():
    config.model.conv_impl = 'lax'
  assert models.resolve_dtype(config) == 'float32'
  native(False)
  with config.unlocked():
    config.model.conv_impl = 'auto'
  assert models.resolve_dtype(config) == 'float32'
  assert 'no oneDNN bfloat16 kernels with native bfloat16 here' in models.dtype_description(config)


def test_auto_model_has_float32_params_and_auto_convs():
  model, variables = _model_and_variables('cifar10', 'auto')
  _, f32 = _model_and_variables('cifar10', 'float32')
  assert model.dtype == jnp.float32 and model.conv_dtype == 'auto'
  shapes = lambda t: jax.tree.map(lambda a: (a.shape, a.dtype), t)
  assert shapes(variables) == shapes(f32)


def test_auto_trains_as_what_it_resolves_to_bit_for_bit(small_cifar, tmp_path):
  """On this machine 'auto' trains exactly as the dtype it resolves to (the
  start-up line says which)."""
  config = smoke_config(small_cifar, tmp_path / 'cache', num_train_steps=3,
                        log_every_steps=1, dtype='auto')
  resolved = models.resolve_dtype(config)
  losses = {}
  for dtype in ('auto', resolved):
    with config.unlocked():
      config.dtype = dtype
    train.train_and_evaluate(config, tmp_path / dtype)
    losses[dtype] = [r['loss'] for r in metrics(tmp_path / dtype, 'train')]
  assert len(losses['auto']) == 3
  assert losses['auto'] == losses[resolved]
