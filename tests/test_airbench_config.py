"""configs/cifar10_airbench94.py: its knobs reach the model and optimizer, and
the chain trains (a few steps on real CIFAR-10 images, loss going down)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from helpers import load_config_file
from isovolnet_jax import config_defaults
from isovolnet_jax import models
from isovolnet_jax import optim
from isovolnet_jax.airbench import whitening
from isovolnet_jax.errors import InputError


def test_configs_load_with_their_knobs_on():
  base = config_defaults.get_base_config()
  c94 = load_config_file('cifar10_airbench94')
  assert c94.model.name == 'airbench' and tuple(c94.model.widths) == (64, 256, 256)
  assert c94.optimizer.per_1024 and c94.optimizer.bn_bias_lr_scale == 64
  assert c94.optimizer.lookahead_every == 5 and c94.eval_tta == 'airbench6'
  assert c94.whiten_images == 5000 and c94.whiten_eps == 1.25e-4
  assert c94.augment.alternating_flip and c94.augment.translate == 2
  assert c94.num_train_steps == int(np.ceil(9.9 * (50_000 // 1024)))
  c95 = load_config_file('cifar10_airbench95')
  assert tuple(c95.model.widths) == (128, 384, 384) and c95.optimizer.learning_rate == 10.0
  # Off by default: the schema's values leave every other config as it was.
  assert not base.optimizer.per_1024 and base.optimizer.lookahead_every == 0
  assert base.eval_tta == '' and base.whiten_images == 0 and base.augment.translate == 0
  assert set(base.keys()) == set(c94.keys())  # No key outside the schema.


def test_optimizer_without_the_loop_context_is_refused():
  config = load_config_file('cifar10_airbench94')
  with pytest.raises(InputError, match='batch_size'):
    optim.create_optimizer(config.optimizer, 0.1)


def _images(root, n):
  files = [root / c / f for c in sorted(os.listdir(root)) for f in sorted(os.listdir(root / c))]
  files = [files[i] for i in np.random.default_rng(0).permutation(len(files))[:n]]
  labels = np.array([sorted(os.listdir(root)).index(f.parent.name) for f in files])
  return np.stack([np.asarray(Image.open(f).convert('RGB')) for f in files]), labels


def test_airbench94_chain_trains_a_few_steps(small_cifar):
  """The config's model, whitening and optimizer (groups, per-1024 rate,
  triangular schedule, lookahead) on 64 real images, 12 steps of batch 64
  (4 per 'epoch': the whitening bias freezes after step 12, lookahead starts
  at step 13 - shortened so both run): the loss falls."""
  config = load_config_file('cifar10_airbench94')
  config.optimizer.update(whiten_bias_epochs=1.0, lookahead_start_epochs=1.0)
  images, labels = _images(small_cifar / 'train', 64)
  model = models.create_model(config.model, 10)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  params = whitening.with_whitening(variables['params'], images)
  batch_stats = variables['batch_stats']
  total, spe = 16, 4
  schedule = optim.create_learning_rate_schedule(config.optimizer, total, spe)
  tx = optim.create_optimizer(config.optimizer, schedule, batch_size=64,
                              steps_per_epoch=spe, total_steps=total)
  opt_state = tx.init(params)
  x = jnp.asarray(images, jnp.float32) / 127.5 - 1
  y = jax.nn.one_hot(labels, 10)

  @jax.jit
  def step(params, batch_stats, opt_state):
    def loss_fn(p):
      logits, upd = model.apply({'params': p, 'batch_stats': batch_stats}, x, train=True,
                                mutable=['batch_stats'])
      smooth = optax.smooth_labels(y, config.label_smoothing)
      return optax.softmax_cross_entropy(logits, smooth).mean(), upd['batch_stats']
    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state, loss

  losses = []
  kernel0, bias_at = params['whiten']['kernel'], {}
  for n in range(1, total + 1):
    params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state)
    losses.append(float(loss))
    bias_at[n] = np.asarray(params['whiten']['bias'])
  assert np.all(np.isfinite(losses))
  assert np.mean(losses[-3:]) < losses[0] - 0.4, losses  # ~2.3 -> ~1.7 seen.
  np.testing.assert_array_equal(params['whiten']['kernel'], kernel0)  # Frozen.
  assert not np.array_equal(bias_at[1], bias_at[4])        # Trains in 'epoch' 0...
  np.testing.assert_array_equal(bias_at[5], bias_at[16])    # ...frozen after.
