"""'airbench6' test-time augmentation (airbench/tta.py, run by inference.py) against
the 6 views by hand; eval_tta, the one TTA knob, and the upgrade of old eval_flip runs."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from isovolnet_jax import config_defaults
from isovolnet_jax import inference
from isovolnet_jax.errors import InputError


class Probe(nn.Module):
  """A linear map of the whole image: sees every pixel's position, so any
  wrong shift, flip or weight changes its output."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    return nn.Dense(5)(x.reshape(x.shape[0], -1))


def _setup(n=3, size=6):
  images = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
  model = Probe()
  variables = model.init(jax.random.key(0), jnp.zeros((1, size, size, 3)))
  return model, variables, images


def _by_hand(model, variables, images):
  """The 6 views written out with index arrays: x[i-1, j-1] and x[i+1, j+1]
  with reflection at the border (index -1 -> 1, index n -> n-2), each view and
  its mirror; weights 1/4 for the unshifted pair, 1/8 for each shifted view."""
  x = images.astype(np.float64) / 127.5 - 1.0
  n = x.shape[1]
  down = np.array([1] + list(range(n - 1)))   # i - 1, reflected at the top.
  up = np.array(list(range(1, n)) + [n - 2])  # i + 1, reflected at the bottom.
  f = lambda v: np.asarray(model.apply(variables, jnp.asarray(v, jnp.float32)), np.float64)
  mirror = lambda v: v[:, :, ::-1]
  shifted_a = x[:, down][:, :, down]
  shifted_b = x[:, up][:, :, up]
  return (0.25 * f(x) + 0.25 * f(mirror(x))
          + 0.125 * f(shifted_a) + 0.125 * f(mirror(shifted_a))
          + 0.125 * f(shifted_b) + 0.125 * f(mirror(shifted_b)))


@pytest.mark.parametrize('at_once', [False, True])  # CPU's one view at a time; GPU/TPU's one batch.
def test_airbench6_equals_the_six_views_by_hand(monkeypatch, at_once):
  monkeypatch.setattr(inference, '_views_at_once', lambda: at_once)
  model, variables, images = _setup()
  got = inference.eval_logits(model.apply, variables, images, tta='airbench6')
  np.testing.assert_allclose(got, _by_hand(model, variables, images), rtol=1e-5, atol=1e-5)
  # Not the flip alone, nor the plain logits.
  for other in ('flip', 'none'):
    assert np.abs(inference.eval_logits(model.apply, variables, images, tta=other)
                  - got).max() > 1e-3


def test_logits_reads_eval_tta():
  model, variables, images = _setup(n=5)
  config = ml_collections.ConfigDict({'eval_tta': 'flip', 'eval_batch_size': 2})
  flip = inference.logits(model, variables, images, config)
  np.testing.assert_allclose(
      flip, inference.eval_logits(model.apply, variables, images, tta='flip'), rtol=1e-5)
  config.eval_tta = 'airbench6'
  np.testing.assert_allclose(inference.logits(model, variables, images, config),
                             _by_hand(model, variables, images), rtol=1e-5, atol=1e-5)
  for none in ('', 'none'):
    config.eval_tta = none
    np.testing.assert_allclose(inference.logits(model, variables, images, config),
                               model.apply(variables, images.astype(np.float32) / 127.5 - 1.0),
                               rtol=1e-5, atol=1e-5)
  config.eval_tta = 'crops'
  with pytest.raises(InputError, match='airbench6'):
    inference.logits(model, variables, images, config)


@pytest.mark.parametrize('flip, tta, mode', [
    (False, '', 'none'), (True, '', 'flip'), (True, 'airbench6', 'airbench6'),
    (False, 'flip', 'flip')])
def test_an_old_config_json_with_eval_flip_is_upgraded(tmp_path, flip, tta, mode):
  """A run's config.json from before eval_flip was retired: load_config
  (add_missing) drops eval_flip, eval_flip=True with no eval_tta becoming
  eval_tta='flip'; the upgraded config passes the checks and re-serialises
  without eval_flip."""
  import json
  from isovolnet_jax import checkpointing
  old = json.loads(config_defaults.get_base_config().to_json())
  old['eval_flip'] = flip
  old['eval_tta'] = tta
  (tmp_path / 'config.json').write_text(json.dumps(old))
  config = checkpointing.load_config(tmp_path)
  assert 'eval_flip' not in config and inference.tta_mode(config) == mode
  config_defaults.check(config)
  # Older still: neither key (eval_tta added later), eval_flip alone.
  del old['eval_tta']
  (tmp_path / 'config.json').write_text(json.dumps(old))
  assert inference.tta_mode(checkpointing.load_config(tmp_path)) == ('flip' if flip else 'none')


def test_an_eval_flip_override_names_eval_tta():
  with pytest.raises(InputError, match=r"'eval_flip'.*--config\.eval_tta=flip") as e:
    config_defaults.apply_overrides(config_defaults.get_base_config(), {'eval_flip': True})
  assert '\n' not in str(e.value)
