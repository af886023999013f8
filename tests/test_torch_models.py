"""The PyTorch twins compute what the Flax models compute, from the same weights."""

import math
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from isovolnet_jax import models
from isovolnet_jax.bench import torch_models
from isovolnet_jax.errors import InputError

from helpers import require_torch

try:
  import torch
except ImportError:  # one_thread() says so: a skip, a failure under CI=true.
  torch = None


@pytest.fixture(autouse=True, scope='module')
def one_thread():
  require_torch()
  # The tests run tiny nets; more threads only slow a shared machine down.
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(threads)


def _config(name, **kwargs) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({'name': name, **kwargs})


def _random_variables(model, x, seed=0):
  """Random params and BN statistics (init's are scale 1, mean 0, var 1)."""
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)  # No compile.
  rng = np.random.default_rng(seed)

  def fill(path, s):
    leaf = path[-1].key
    if leaf in ('scale', 'var'):
      a = rng.uniform(0.5, 1.5, s.shape)
    elif len(s.shape) > 1:  # Kernels, scaled by fan-in to keep logits O(1).
      a = rng.normal(0, 1 / math.sqrt(math.prod(s.shape[:-1])), s.shape)
    else:
      a = rng.normal(0, 0.3, s.shape)
    return a.astype(np.float32)
  return jax.tree_util.tree_map_with_path(fill, shapes)


def _images(shape, n=2, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, (n, *shape)).astype(np.float32)


def _nchw(x, channels_last=False):
  t = torch.from_numpy(x).permute(0, 3, 1, 2)
  return t.contiguous(memory_format=torch.channels_last if channels_last
                      else torch.contiguous_format)


def _flax_count(variables) -> int:
  return sum(math.prod(v.shape) for v in jax.tree.leaves(variables['params']))


CASES = [  # (model.name, options, image shape): small, every graph option.
    ('fast_cnn', {}, (32, 32, 3)),
    ('fast_cnn', {'widths': (8, 16, 16), 'pool_after': (0, 1, 2), 'norm': 'none',
                  'activation': 'leaky_relu'}, (31, 29, 3)),  # Odd sides floor.
    ('isovolnet', {'num_blocks': 2, 'stem_features': 4, 'convs_per_block': 2,
                   'pool': 'avg', 'activation': 'swish', 'dropout': 0.3},
     (32, 32, 3)),
    ('isovolnet', {'num_blocks': 3, 'conv': 'standard', 'channel_multiplier': 2,
                   'norm': 'none', 'activation': 'relu6'}, (32, 32, 3)),
    ('isovolnet', {'stem_features': 2}, (32, 48, 3)),  # num_blocks -1: 4 here.
    ('dilated_ds', {'width': 16, 'expanded': 32, 'groups': 8,
                    'dilations': (1, 1, 2, 4), 'activation': 'leaky_relu'},
     (32, 32, 3)),
    ('resnet20', {'depth': 8}, (30, 30, 3)),  # Stride-2 SAME on 30 and on 15.
    ('simple_cnn', {'widths': (8, 16, 32), 'hidden': 16}, (32, 32, 3)),
    ('dense_ds', {'growth_rate': 4, 'layers_per_block': 2, 'num_blocks': 3},
     (32, 32, 3)),
    ('dense_ds', {'growth_rate': 4, 'layers_per_block': 2, 'num_blocks': 2,
                  'conv': 'standard', 'norm': 'none', 'compression': 0.7},
     (32, 32, 3)),
    ('mobilenet_v2', {'width_multiplier': 0.25, 'cifar_stem': True}, (32, 32, 3)),
    ('mobilenet_v2', {'width_multiplier': 0.25}, (40, 40, 3)),  # 5 -> 3 -> 2.
]


@pytest.mark.parametrize('name,options,shape', CASES,
                         ids=[f'{c[0]}-{i}' for i, c in enumerate(CASES)])
def test_twin_gives_the_flax_logits(name, options, shape):
  config = _config(name, **options)
  model = models.create_model(config, num_classes=10)
  x = _images(shape)
  variables = _random_variables(model, x)
  expected = np.asarray(jax.jit(model.apply)(variables, x))

  twin = torch_models.build(config, 10, shape)
  assert torch_models.num_params(twin) == _flax_count(variables)
  torch_models.load_flax_variables(twin, variables)
  twin.eval()
  with torch.no_grad():
    logits = twin(_nchw(x)).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    twin.to(memory_format=torch.channels_last)
    logits = twin(_nchw(x, channels_last=True)).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


KNOWN_COUNTS = {  # Default options, 10 classes.
    # The references in the model files.
    'fast_cnn': 177_314, 'resnet20': 269_722, 'dilated_ds': 100_416,
    'simple_cnn': 405_898,
    # test_models_isovolnet's formula: 5 blocks from 3 channels + the classifier.
    'isovolnet': 2_566_747,
    # The file's 3,504,872 for 1000 classes, less 1280 x 990 + 990 classifier.
    'mobilenet_v2': 2_236_682,
    # Measured (no published reference): a change to the graph changes it.
    'dense_ds': 372_714}


@pytest.mark.parametrize('name', sorted(torch_models.BUILDERS))
def test_default_parameter_counts(name):
  config = _config(name)
  model = models.create_model(config, num_classes=10)
  variables = jax.eval_shape(model.init, jax.random.key(0), _images((32, 32, 3), 1))
  count = torch_models.num_params(torch_models.build(config, 10))
  assert count == _flax_count(variables)
  assert count == KNOWN_COUNTS[name]


def test_train_mode_matches_batch_statistics():
  """Train-mode BN: same logits, and momentum 0.9 in flax is 0.1 in torch."""
  config = _config('fast_cnn', widths=(8, 16), pool_after=(0,))
  model = models.create_model(config, num_classes=10)
  x = _images((16, 16, 3), n=4)
  variables = _random_variables(model, x)
  expected, updates = jax.jit(
      lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats']))(variables, x)
  twin = torch_models.build(config, 10, (16, 16, 3))
  torch_models.load_flax_variables(twin, variables)
  twin.train().to(memory_format=torch.channels_last)
  logits = twin(_nchw(x, channels_last=True))
  np.testing.assert_allclose(logits.detach().numpy(), expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(
      twin.conv1.BatchNorm_0.running_mean.numpy(),
      updates['batch_stats']['conv1']['BatchNorm_0']['mean'], rtol=1e-5, atol=1e-5)
  logits.sum().backward()  # In-place activations leave autograd intact.
  assert twin.conv0.Conv_0.weight.grad is not None


def test_unknown_model_and_options_are_input_errors():
  with pytest.raises(InputError, match='unknown model.name'):
    torch_models.build(_config('vgg16'), 10)
  with pytest.raises(InputError, match="no option 'depth'"):
    torch_models.build(_config('fast_cnn', depth=3), 10)
  with pytest.raises(InputError, match='model.activation'):
    torch_models.build(_config('fast_cnn', activation='gelu'), 10)
  with pytest.raises(InputError, match='model.norm'):
    torch_models.build(_config('resnet20', norm='layer'), 10)
  with pytest.raises(InputError, match='num_blocks'):
    torch_models.build(_config('isovolnet', num_blocks=6), 10)


def test_mismatched_variables_are_refused_whole():
  small = _config('fast_cnn', widths=(4, 8), pool_after=())
  model = models.create_model(small, num_classes=10)
  variables = _random_variables(model, _images((8, 8, 3), 1))
  twin = torch_models.build(_config('fast_cnn', widths=(4, 6), pool_after=()), 10)
  before = {k: v.clone() for k, v in twin.state_dict().items()}
  with pytest.raises(InputError, match=r'conv1/BatchNorm_0/mean has shape '
                     r'\(8,\), the torch model needs \(6,\)'):
    torch_models.load_flax_variables(twin, variables)
  for key, value in twin.state_dict().items():  # Nothing was copied.
    assert torch.equal(value, before[key]), key
  deeper = torch_models.build(_config('fast_cnn', widths=(4, 8, 8), pool_after=()), 10)
  with pytest.raises(InputError, match='missing from the flax variables'):
    torch_models.load_flax_variables(deeper, variables)


def test_missing_torch_names_the_fix(monkeypatch):
  torch_models._lib.cache_clear()
  monkeypatch.setitem(sys.modules, 'torch', None)  # `import torch` fails.
  try:
    with pytest.raises(InputError, match=r"pip install -e '\.\[bench\]'"):
      torch_models.build(_config('fast_cnn'), 10)
  finally:
    torch_models._lib.cache_clear()


def test_import_does_not_import_torch():
  code = ('import sys, isovolnet_jax.bench.torch_models; '
          'assert "torch" not in sys.modules, "torch imported"')
  subprocess.run([sys.executable, '-c', code], check=True)
