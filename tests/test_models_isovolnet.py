"""IsoVolNet: shapes, the constant-volume invariant, and the input-size errors."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from isovolnet_jax import models
from isovolnet_jax.errors import InputError
from isovolnet_jax.models import isovolnet


def _init(model, shape):
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape)))


@pytest.mark.parametrize('shape,stem,expected_blocks', [
    ((32, 32, 3), 0, 5), ((64, 64, 3), 0, 5), ((40, 56, 3), 0, 3),
    ((32, 48, 3), 8, 4), ((96, 32, 3), 4, 5)])
def test_block_shapes_keep_the_volume(shape, stem, expected_blocks):
  blocks = isovolnet.plan(shape, stem_features=stem, num_blocks=-1)
  assert len(blocks) == expected_blocks
  volume = shape[0] * shape[1] * (stem or 3)
  for b in blocks:
    assert math.prod(b.in_shape) == math.prod(b.out_shape) == volume
    assert b.out_shape == (b.in_shape[0] // 2, b.in_shape[1] // 2, 4 * b.in_shape[2])


@pytest.mark.parametrize('shape', [(32, 32, 3), (40, 56, 3), (64, 64, 3)])
def test_forward_runs_on_any_size(shape):
  model = isovolnet.IsoVolNet(num_classes=7, stem_features=4, convs_per_block=2)
  x = jax.random.uniform(jax.random.key(1), (2, *shape), minval=-1, maxval=1)
  variables = model.init(jax.random.key(0), x)
  logits, _ = model.apply(variables, x, train=True, mutable=['batch_stats'])
  assert logits.shape == (2, 7) and logits.dtype == jnp.float32
  assert np.all(np.isfinite(logits))
  # Intermediate feature maps, captured as they flow: the volume never changes.
  _, state = model.apply(variables, x, capture_intermediates=lambda m, _: m.name
                         and 'conv' in m.name, mutable=['intermediates'])
  vols = {k: math.prod(v['__call__'][0].shape[1:])
          for k, v in state['intermediates'].items()}
  # The last conv of each block widens x4 before pooling halves H and W.
  n = len(isovolnet.plan(shape, 4, -1))
  for i in range(1, n + 1):
    assert vols[f'block{i}_conv2'] == 4 * vols[f'block{i}_conv1']
  assert vols['block1_conv1'] == shape[0] * shape[1] * 4


def test_invariant_is_checked_with_chex(monkeypatch):
  """A plan that doubles the channels (every shape consistent, the volume
  halving each block) under channel_multiplier=4 trips the volume check
  itself: no other shape check fails on it."""
  real = isovolnet.plan
  monkeypatch.setattr(isovolnet, 'plan', lambda shape, stem, n, mult=4:
                      real(shape, stem, n, channel_multiplier=2))
  with pytest.raises(AssertionError, match='3072'):  # The input's 32*32*3.
    _init(isovolnet.IsoVolNet(10), (1, 32, 32, 3))
  # The same plan asked for as the doubling baseline is fine.
  _init(isovolnet.IsoVolNet(10, channel_multiplier=2), (1, 32, 32, 3))


def test_block_input_shape_is_checked_with_chex(monkeypatch):
  """A first block that does not end where the second begins trips the next
  block's input check."""
  real = isovolnet.plan

  def wrong_plan(*args, **kwargs):
    blocks = real(*args, **kwargs)
    b = blocks[0]
    bad = (b.out_shape[0], b.out_shape[1], b.out_shape[2] // 2)
    return [isovolnet.Block(b.in_shape, bad)] + blocks[1:]

  monkeypatch.setattr(isovolnet, 'plan', wrong_plan)
  with pytest.raises(AssertionError):
    _init(isovolnet.IsoVolNet(10), (1, 32, 32, 3))


def test_parameter_count_matches_the_formula():
  """No stem, 5 blocks, 1 DS conv: dw 9C + BN 2C, pw 4C^2 + BN 8C; dense."""
  variables = _init(isovolnet.IsoVolNet(10), (1, 32, 32, 3))
  n = sum(x.size for x in jax.tree.leaves(variables['params']))
  expected = sum(9 * c + 2 * c + 4 * c * c + 8 * c for c in (3, 12, 48, 192, 768))
  assert n == expected + 3072 * 10 + 10 == 2_566_747


@pytest.mark.parametrize('shape,needle', [
    ((31, 32, 3), '31x32'), ((32, 20, 3), '32x20'), ((32, 32, 1), '32x32x1'),
    ((32, 32, 4), '32x32x4')])
def test_bad_input_is_one_line_value_error(shape, needle):
  with pytest.raises(ValueError) as info:
    _init(isovolnet.IsoVolNet(10), (1, *shape))
  msg = str(info.value)
  assert needle in msg and '\n' not in msg


def test_too_many_blocks_names_the_maximum():
  with pytest.raises(InputError, match='at most 3 blocks'):
    _init(isovolnet.IsoVolNet(10, num_blocks=4), (1, 40, 56, 3))
  with pytest.raises(InputError, match='at most 5 blocks'):
    isovolnet.plan((32, 32, 3), 0, 6)


def test_standard_twin_and_doubling_baseline():
  sep = _init(isovolnet.IsoVolNet(10, stem_features=8, num_blocks=3), (1, 32, 32, 3))
  std = _init(isovolnet.IsoVolNet(10, stem_features=8, num_blocks=3, conv='standard'),
              (1, 32, 32, 3))
  dbl = isovolnet.plan((32, 32, 3), 8, 3, channel_multiplier=2)
  count = lambda v: sum(x.size for x in jax.tree.leaves(v['params']))
  assert count(std) > 3 * count(sep)
  assert [b.out_shape[2] for b in dbl] == [16, 32, 64]


def test_create_model_rejects_unknown_options():
  cfg = ml_collections.ConfigDict({'name': 'isovolnet', 'stem_feature': 3})
  with pytest.raises(InputError, match="no option 'stem_feature'"):
    models.create_model(cfg, 10)
  with pytest.raises(InputError, match='unknown model.name'):
    models.create_model(ml_collections.ConfigDict({'name': 'nope'}), 10)
