"""airbench/model.py: airbench94's net, its sizes and its Dirac init."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from isovolnet_jax import models
from isovolnet_jax.airbench import model as airbench


def _init(model, size=32, batch=2):
  return model.init(jax.random.key(0), jnp.zeros((batch, size, size, 3)), train=False)


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def test_registered_and_output_shape():
  model = models.create_model(ml_collections.ConfigDict({'name': 'airbench'}), 10)
  assert isinstance(model, airbench.AirBench)
  x = jax.random.uniform(jax.random.key(1), (3, 32, 32, 3), minval=-1, maxval=1)
  variables = _init(model)
  logits = model.apply(variables, x, train=False)
  assert logits.shape == (3, 10) and logits.dtype == jnp.float32
  logits, _ = model.apply(variables, x, train=True, mutable=['batch_stats'])
  assert logits.shape == (3, 10) and bool(jnp.all(jnp.isfinite(logits)))


def test_param_count_of_the_published_net():
  """airbench94, by hand (HWIO kernels; BN has a bias only, its scale is fixed at 1):

    whiten  2*2*3*24 + 24 (bias)             =       312
    block1  3*3*24*64  + 64 + 3*3*64*64  + 64  =    50,816
    block2  3*3*64*256 + 256 + 3*3*256*256 + 256 = 737,792
    block3  3*3*256*256 + 256 + 3*3*256*256 + 256 = 1,180,160
    head    256*10 (no bias)                  =     2,560
                                              = 1,971,640
  With learnable BN scales (bn_scale=True) 2*(64+256+256) = 1,152 more.
  """
  variables = _init(airbench.AirBench(num_classes=10))
  assert _count(variables['params']) == 1_971_640
  assert _count(variables['batch_stats']) == 2 * 2 * (64 + 256 + 256)
  assert _count(_init(airbench.AirBench(num_classes=10, bn_scale=True))['params']) == \
      1_971_640 + 1_152
  # airbench95's widths: 128/384/384.
  wide = _init(airbench.AirBench(num_classes=10, widths=(128, 384, 384)))['params']
  assert wide['block1']['conv1']['kernel'].shape == (3, 3, 24, 128)
  assert wide['block3']['conv2']['kernel'].shape == (3, 3, 384, 384)
  assert wide['head']['kernel'].shape == (384, 10)


def test_spatial_sizes_and_flops():
  """Spatial 32 -> 31 -> 15 -> 7 -> 3 -> 1, and multiply-adds per image from
  the convs' actual output sizes and kernels: whiten 31^2*12*24, block1
  31^2*216*64 + 15^2*576*64, block2 15^2*576*256 + 7^2*2304*256, block3
  7^2*2304*256 + 3^2*2304*256, head 256*10 = 118.1M MACs = 0.236 GFLOP,
  the published 'about 0.24'."""
  model = airbench.AirBench(num_classes=10)
  variables = _init(model, batch=1)
  _, state = model.apply(variables, jnp.zeros((1, 32, 32, 3)), train=False,
                         capture_intermediates=True, mutable=['intermediates'])
  inter = state['intermediates']
  out = lambda *path: _get(inter, path)['__call__'][0].shape
  assert out('whiten') == (1, 31, 31, 24)
  assert out('block1') == (1, 15, 15, 64)
  assert out('block2') == (1, 7, 7, 256)
  assert out('block3') == (1, 3, 3, 256)
  assert out('head') == (1, 10)  # After the 3x3 (global) max pool: 1x1.
  params = variables['params']
  convs = [('whiten',)] + [(f'block{i}', c) for i in (1, 2, 3) for c in ('conv1', 'conv2')]
  macs = sum(np.prod(out(*c)[1:3]) * _get(params, c)['kernel'].size for c in convs)
  macs += params['head']['kernel'].size
  assert macs == (31**2 * 12 * 24 + 31**2 * 216 * 64 + 15**2 * 576 * 64
                  + 15**2 * 576 * 256 + 7**2 * 2304 * 256 + 7**2 * 2304 * 256
                  + 3**2 * 2304 * 256 + 2560)
  assert 2 * macs / 1e9 == pytest.approx(0.236, abs=0.001)


def _get(tree, path):
  for p in path:
    tree = tree[p]
  return tree


@pytest.mark.parametrize('cin,cout', [(24, 64), (64, 64), (256, 256)])
def test_dirac_init_is_identity_on_first_channels(cin, cout):
  """With Dirac init the first min(cin, cout) output channels of a SAME 3x3 conv
  equal its input channels; the rest keep the random (torch default) init."""
  kernel = airbench.dirac_init()(jax.random.key(0), (3, 3, cin, cout))
  x = jax.random.normal(jax.random.key(1), (2, 9, 9, cin))
  y = jax.lax.conv_general_dilated(x, kernel, (1, 1), 'SAME',
                                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  n = min(cin, cout)
  np.testing.assert_allclose(y[..., :n], x[..., :n], atol=1e-6)
  rest = np.asarray(kernel[..., n:])
  if rest.size:
    bound = 1 / np.sqrt(9 * cin)  # torch's kaiming_uniform(a=sqrt(5)) bound.
    assert np.abs(rest).max() <= bound and rest.std() > bound / 4


def test_dirac_option_reaches_the_net():
  on = _init(airbench.AirBench(num_classes=10, dirac_init=True))['params']
  off = _init(airbench.AirBench(num_classes=10, dirac_init=False))['params']
  k_on, k_off = on['block2']['conv1']['kernel'], off['block2']['conv1']['kernel']
  assert float(k_on[1, 1, 5, 5]) == 1.0 and float(jnp.abs(k_on[0, 0, :, :64]).max()) == 0
  assert float(jnp.abs(k_off[1, 1, :, :64] - jnp.eye(64)).min()) > 0


def test_widths_from_json_hash():
  """A run's config.json holds lists; inference jits with the module static."""
  model = models.create_model(ml_collections.ConfigDict(
      {'name': 'airbench', 'widths': [16, 32, 32]}), 10)
  assert model.widths == (16, 32, 32)
  hash(model)
