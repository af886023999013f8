"""The model zoo: every model runs from its config; reference parameter counts."""

import math
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from isovolnet_jax import config_defaults
from isovolnet_jax.errors import InputError
from isovolnet_jax.models import MODELS, create_model

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / 'configs'
ZOO = {  # model.name -> its CIFAR-10 config.
    'dense_ds': 'cifar10_dense_ds.py',
    'dilated_ds': 'cifar10_dilated_ds.py',
    'mobilenet_v2': 'cifar10_mobilenet_v2.py',
    'simple_cnn': 'cifar10_simple_cnn.py',
    'resnet20': 'cifar10_resnet20.py',
    'fast_cnn': 'cifar10_fast_cpu.py',
}


def load_config(name: str) -> ml_collections.ConfigDict:
  return config_defaults.load_config_file(CONFIGS / name)


def param_count(model, shape) -> int:
  variables = jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))
  return sum(math.prod(v.shape) for v in jax.tree.leaves(variables['params']))


def test_every_zoo_model_is_registered():
  assert set(ZOO) <= set(MODELS)


# Compiling is most of a forward test's time on a CPU; dense_ds runs with
# fewer layers per block (the same four blocks and transitions).
SMALLER = {'dense_ds': {'layers_per_block': 2}}


@pytest.mark.parametrize('name', sorted(ZOO))
def test_forward_train_and_eval(name):
  config = load_config(ZOO[name])
  assert config.model.name == name
  config.model.update(SMALLER.get(name, {}))
  model = create_model(config.model, num_classes=10)
  images = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3), minval=-1, maxval=1)

  @jax.jit  # One compilation for all three calls.
  def run(x):
    variables = model.init(jax.random.key(1), x, train=False)
    train_logits, updates = model.apply(
        variables, x, train=True, rngs={'dropout': jax.random.key(2)},
        mutable=['batch_stats'])
    eval_logits = model.apply({**variables, **updates}, x, train=False)
    return variables, updates, train_logits, eval_logits

  variables, updates, train_logits, eval_logits = run(images)
  for logits in (train_logits, eval_logits):
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32
    assert np.isfinite(np.asarray(logits)).all()
  # Training mode updates the BatchNorm statistics that eval mode reads.
  old, new = variables['batch_stats'], updates['batch_stats']
  assert jax.tree.structure(old) == jax.tree.structure(new)
  assert any(not np.allclose(a, b) for a, b in
             zip(jax.tree.leaves(old), jax.tree.leaves(new)))


@pytest.mark.parametrize('name,kwargs,shape,classes,expected', [
    # torchvision/Keras MobileNetV2, width 1.0, ImageNet.
    ('mobilenet_v2', {}, (1, 224, 224, 3), 1000, 3_504_872),
    # torchvision mobilenet_v2(width_mult=0.5): the rounding of make_divisible.
    ('mobilenet_v2', {'width_multiplier': 0.5}, (1, 224, 224, 3), 1000, 1_968_680),
    # He et al.'s "0.27M" for ResNet-20 (option A shortcuts: no parameters).
    ('resnet20', {}, (1, 32, 32, 3), 10, 269_722),
    # Seed 002's torchsummary total.
    ('dilated_ds', {}, (1, 32, 32, 3), 10, 100_416),
    # Seed 004's SimpleCNN, PyTorch conv biases included.
    ('simple_cnn', {}, (1, 32, 32, 3), 10, 405_898),
    # FastCNN, the CPU-speed reference net (the PyTorch script's count; conv without bias).
    ('fast_cnn', {}, (1, 32, 32, 3), 10, 177_314),
])
def test_reference_parameter_counts(name, kwargs, shape, classes, expected):
  assert param_count(MODELS[name](num_classes=classes, **kwargs), shape) == expected


def test_mobilenet_cifar_stem_keeps_resolution():
  # 32x32 ends at 4x4 with the CIFAR stem, 1x1 without; the weights are the same.
  shapes = {}
  for cifar_stem in (False, True):
    model = MODELS['mobilenet_v2'](num_classes=10, cifar_stem=cifar_stem)
    variables = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
    shapes[cifar_stem] = jax.tree.map(lambda v: v.shape, variables['params'])
    out = jax.eval_shape(
        lambda v: model.apply(v, jnp.zeros((1, 32, 32, 3)),
                              capture_intermediates=lambda m, _: m.name == 'head'),
        variables)
    head = out[1]['intermediates']['head']['__call__'][0]
    assert head.shape[1:3] == ((4, 4) if cifar_stem else (1, 1))
  assert shapes[False] == shapes[True]


def test_every_config_builds_its_model():
  for path in sorted(CONFIGS.glob('*.py')):
    config = load_config(path.name)
    classes = 1000 if config.data.name == 'imagenet2012' else 10
    model = create_model(config.model, num_classes=classes)
    size = config.data.image_size or 32
    assert param_count(model, (1, size, size, 3)) > 0, path.name


def test_isovolnet_variant_configs_differ_in_their_knobs_only():
  base = load_config('cifar10_isovolnet_seed.py').to_dict()
  assert base['model']['num_blocks'] == -1  # The seed's 5 blocks on 32x32.
  default = load_config('cifar10.py').to_dict()
  standard = load_config('cifar10_isovolnet_standard.py').to_dict()
  doubling = load_config('cifar10_isovolnet_doubling.py').to_dict()
  assert default['model'] == {**base['model'], 'num_blocks': 4, 'pool': 'avg',
                              'activation': 'swish'}
  assert standard['model'] == {**base['model'], 'conv': 'standard'}
  assert doubling['model'] == {**base['model'], 'channel_multiplier': 2}
  # The default's peak rate is seed 003's learning-rate sweep's best
  # (results/learning_rate/README.md); the 6-view TTA is airbench's, the one of
  # its tricks that passed docs/defaults.md's rule (label smoothing stays 0.1,
  # no lookahead).
  assert default['optimizer'] == {**base['optimizer'], 'learning_rate': 3.2e-2}
  assert default['optimizer']['lookahead_every'] == 0 and default['label_smoothing'] == 0.1
  rest = lambda c: {k: v for k, v in c.items() if k not in ('model', 'optimizer')}
  # dtype='auto': docs/defaults.md's precision rule (mixed where the CPU has
  # native bfloat16).
  assert rest(default) == {**rest(base), 'eval_tta': 'airbench6', 'dtype': 'auto'}
  assert rest(standard) == rest(doubling) == rest(base)
  assert standard['optimizer'] == doubling['optimizer'] == base['optimizer']


def test_bfloat16_compute_returns_float32_logits():
  model = MODELS['simple_cnn'](num_classes=10, dtype=jnp.bfloat16)
  x = jnp.zeros((1, 32, 32, 3))
  logits = jax.jit(lambda x: model.apply(model.init(jax.random.key(0), x), x))(x)
  assert logits.dtype == jnp.float32


@pytest.mark.parametrize('name,kwargs,match', [
    ('mobilenet_v2', {'width_multiplier': 0.0}, 'width_multiplier'),
    ('resnet20', {'depth': 21}, 'depth'),
    ('dense_ds', {'conv': 'dilated'}, 'conv'),
    ('dense_ds', {'compression': 1.5}, 'compression'),
    ('dilated_ds', {'groups': 5}, 'groups'),
    ('dilated_ds', {'valid_blocks': 10}, 'valid_blocks'),
])
def test_bad_options_raise_input_error(name, kwargs, match):
  with pytest.raises(InputError, match=match):
    MODELS[name](num_classes=10, **kwargs)


def test_unknown_option_names_the_model_options():
  config = load_config('cifar10_resnet20.py')
  config.model.unlock()
  config.model.width = 2
  with pytest.raises(InputError, match="no option 'width'"):
    create_model(config.model, num_classes=10)


def test_fast_cnn_stem_pads_channels_without_changing_the_function():
  from isovolnet_jax.models.fast_cnn import PaddedConv
  import flax.linen as nn
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  stem = PaddedConv(5)
  variables = stem.init(jax.random.key(1), x)
  assert variables['params']['kernel'].shape == (3, 3, 3, 5)  # No extra parameters.
  plain = nn.Conv(5, (3, 3), padding='SAME', use_bias=False)
  loss = lambda f, k: (f({'params': {'kernel': k}}, x) ** 2).sum()
  k = variables['params']['kernel']
  np.testing.assert_allclose(stem.apply(variables, x), plain.apply(variables, x),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jax.grad(lambda k: loss(stem.apply, k))(k),
                             jax.grad(lambda k: loss(plain.apply, k))(k), rtol=1e-4, atol=1e-4)
