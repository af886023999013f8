"""model.whiten_stem: airbench's whitening stem (2x2 conv 3 -> 24 + GELU,
named 'whiten') in front of IsoVolNet, FastCNN and DilatedDS; whitened at
set-up by whiten_images and frozen by optimizer.freeze_whiten_kernel."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from isovolnet_jax import checkpointing
from isovolnet_jax import config_defaults
from isovolnet_jax import data
from isovolnet_jax import models
from isovolnet_jax import onednn
from isovolnet_jax.airbench import optim as optim_airbench
from isovolnet_jax import train
from isovolnet_jax.airbench import whitening
from isovolnet_jax.errors import InputError
from isovolnet_jax.models import isovolnet
from isovolnet_jax.airbench import model as airbench_model
from isovolnet_jax.models import layers

from helpers import smoke_config

# Tiny versions of the three models: seconds to build and run.
TINY = {
    'isovolnet': dict(num_blocks=2),
    'fast_cnn': dict(widths=(8, 8), pool_after=(0,)),
    'dilated_ds': dict(width=8, expanded=16, groups=4, dilations=(1, 1, 2)),
}
# Default options, 10 classes: the counts of tests/test_torch_models.py.
KNOWN_COUNTS = {'isovolnet': 2_566_747, 'fast_cnn': 177_314, 'dilated_ds': 100_416}


def _model(name, **kwargs):
  return models.MODELS[name](num_classes=10, **TINY[name], **kwargs)


def _images(side, n=2):
  return jax.random.uniform(jax.random.key(1), (n, side, side, 3), minval=-1, maxval=1)


def _count(model, side=32):
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, side, side, 3)))
  return sum(x.size for x in jax.tree.leaves(shapes['params']))


@pytest.mark.parametrize('name', sorted(TINY))
def test_stem_is_a_24_wide_whiten_layer_that_keeps_height_and_width(name):
  model = _model(name, whiten_stem=True)
  sides = (32, 40) if name == 'isovolnet' else (32,)
  for side in sides:
    x = _images(side)
    variables = model.init(jax.random.key(0), x)
    params = variables['params']
    assert params['whiten']['kernel'].shape == (2, 2, 3, 24)
    assert params['whiten']['bias'].shape == (24,)
    logits, state = model.apply(variables, x, capture_intermediates=True,
                                mutable=['intermediates'])
    assert logits.shape == (2, 10) and bool(jnp.isfinite(logits).all())
    # Padded ((0, 1), (0, 1)): the model's own plan sees side x side.
    (stem_out,) = state['intermediates']['whiten']['__call__']
    assert stem_out.shape == (2, side, side, 24)


def test_stem_is_gelu_of_the_conv_padded_below_and_right():
  class Stem(nn.Module):
    @nn.compact
    def __call__(self, x):
      return airbench_model.whiten_stem(x, conv_impl='lax')

  x = _images(6)
  variables = Stem().init(jax.random.key(0), x)
  p = variables['params']['whiten']
  p = {**p, 'bias': jax.random.normal(jax.random.key(2), (24,))}
  conv = jax.lax.conv_general_dilated(
      x, p['kernel'], (1, 1), ((0, 1), (0, 1)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC')) + p['bias']
  np.testing.assert_allclose(Stem().apply({'params': {'whiten': p}}, x),
                             jax.nn.gelu(conv, approximate=False), rtol=1e-5, atol=1e-6)


def test_isovolnet_volume_is_constant_from_the_stem_output_on():
  model = isovolnet.IsoVolNet(10, num_blocks=3, whiten_stem=True)
  x = _images(32, 1)
  variables = model.init(jax.random.key(0), x)
  _, state = model.apply(variables, x, capture_intermediates=lambda m, _: m.name in (
      'whiten', 'block1_conv1', 'block2_conv1', 'block3_conv1'), mutable=['intermediates'])
  vols = {k: math.prod(v['__call__'][0].shape[1:]) for k, v in state['intermediates'].items()}
  # Each block's conv widens x4 before its pool halves H and W.
  assert vols == {'whiten': 32 * 32 * 24, 'block1_conv1': 4 * 32 * 32 * 24,
                  'block2_conv1': 4 * 32 * 32 * 24, 'block3_conv1': 4 * 32 * 32 * 24}
  # A stem conv after the whitening stem sets the volume, as without it; the
  # model's chex checks hold on 40x40.
  isovolnet.IsoVolNet(10, num_blocks=3, stem_features=8, whiten_stem=True).init(
      jax.random.key(0), _images(40, 1))


@pytest.mark.parametrize('name', sorted(TINY))
def test_off_by_default_leaves_the_parameter_count(name):
  plain = models.MODELS[name](num_classes=10)
  assert _count(plain) == KNOWN_COUNTS[name]
  assert _count(models.MODELS[name](num_classes=10, whiten_stem=False)) == KNOWN_COUNTS[name]
  # What the config gives (config_defaults' model.whiten_stem=False).
  config = config_defaults.get_base_config().model
  config.name = name
  assert _count(models.create_model(config, 10)) == KNOWN_COUNTS[name]
  tiny = _count(_model(name))
  assert _count(_model(name, whiten_stem=False)) == tiny
  assert _count(_model(name, whiten_stem=True)) > tiny + 2 * 2 * 3 * 24 + 24


def test_fast_cnn_stem_adds_the_whiten_layer_and_conv0s_wider_input():
  # 2*2*3*24 + 24 (whiten) + 3*3*(24 - 3)*24 (conv0 takes 24 channels, not 3).
  on = _count(models.FastCNN(num_classes=10, whiten_stem=True))
  assert on - KNOWN_COUNTS['fast_cnn'] == 312 + 4536


def test_every_other_model_takes_the_default_and_refuses_the_stem():
  for name in sorted(set(models.MODELS) - set(TINY)):
    config = config_defaults.get_base_config().model
    config.name = name
    models.create_model(config, 10)  # whiten_stem=False: accepted, ignored.
    config.whiten_stem = True
    with pytest.raises(InputError, match="no option 'whiten_stem'"):
      models.create_model(config, 10)


@pytest.mark.parametrize('name', sorted(TINY))
def test_param_labels_find_the_stem(name):
  params = _model(name, whiten_stem=True).init(jax.random.key(0), _images(32))['params']
  labels = optim_airbench.param_labels(params)
  assert labels['whiten'] == {'kernel': 'whiten_kernel', 'bias': 'whiten_bias'}
  others = [l for k, v in labels.items() if k != 'whiten' for l in jax.tree.leaves(v)]
  assert not any(l.startswith('whiten') for l in others)


@pytest.mark.parametrize('name', sorted(TINY))
def test_stem_runs_the_models_conv_impl_and_dtype(name, monkeypatch):
  real = layers.conv_function
  calls = []

  def spy(impl, operand_dtype=None):
    conv = real(impl, operand_dtype)
    def recorded(lhs, rhs, *args, **kwargs):
      calls.append((impl, tuple(rhs.shape), lhs.dtype))
      return conv(lhs, rhs, *args, **kwargs)
    return recorded

  monkeypatch.setattr(layers, 'conv_function', spy)
  x = _images(32)
  impls = ['lax', 'unrolled'] + (['onednn'] if onednn.available() else [])
  outs = []
  for impl in impls:
    model = _model(name, whiten_stem=True, conv_impl=impl, dtype=jnp.bfloat16)
    variables = model.init(jax.random.key(0), x)
    outs.append(model.apply(variables, x))
    assert (impl, (2, 2, 3, 24), jnp.dtype(jnp.bfloat16)) in calls
  for out in outs[1:]:
    np.testing.assert_allclose(out, outs[0], atol=0.1)


@pytest.mark.parametrize('optimizer', ['sgd', 'adamw'])  # adamw: IsoVolNet's default.
def test_training_whitens_the_isovolnet_stem_and_keeps_it_frozen(small_cifar, tmp_path,
                                                                  optimizer):
  config = smoke_config(small_cifar, tmp_path / 'cache', **{
      'model.whiten_stem': True, 'whiten_images': 100, 'optimizer.name': optimizer,
      'optimizer.freeze_whiten_kernel': True, 'num_train_steps': 3})
  train.train_and_evaluate(config, tmp_path / 'w')
  run = checkpointing.load_run(tmp_path / 'w')
  assert run.step == 3 and run.model.whiten_stem
  dataset = data.dataset(config)
  n_train = len(dataset.train_images)
  rows = np.sort(data.order.epoch_permutation(config.seed, 0, n_train)[:100])
  expected = whitening.whitening_kernel(dataset.train_images[rows], eps=config.whiten_eps)
  np.testing.assert_allclose(run.variables['params']['whiten']['kernel'], expected,
                             rtol=1e-6)


def test_whiten_images_without_the_stem_names_the_knob(small_cifar, tmp_path):
  config = smoke_config(small_cifar, tmp_path / 'cache', whiten_images=10)
  with pytest.raises(InputError, match='model.whiten_stem=true') as e:
    train.train_and_evaluate(config, tmp_path / 'w')
  assert '\n' not in str(e.value)
