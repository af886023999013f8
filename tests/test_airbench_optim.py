"""airbench/optim.py and its knobs in optim.py, against airbench's published rules
written out in numpy (torch SGD on the summed loss, the lookahead loop)."""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from isovolnet_jax import config_defaults
from isovolnet_jax import optim
from isovolnet_jax.airbench import checks as airbench_checks
from isovolnet_jax.airbench import optim as optim_airbench
from isovolnet_jax.errors import InputError
from isovolnet_jax.airbench import model as airbench
from isovolnet_jax.models.fast_cnn import FastCNN


def test_per_1024_numbers():
  """airbench94: lr 11.5 and wd 0.0153 per 1024 examples, momentum 0.85, batch 1024:
  torch lr 11.5 / (1024 * (1 + 1/0.15)) on the summed loss = 1.5 on the mean loss."""
  rate, l2 = optim_airbench.per_1024(11.5, 0.0153, 0.85, 1024)
  assert rate == pytest.approx(1.5)
  assert l2 == pytest.approx(0.0153 / 11.5)
  rate512, l2_512 = optim_airbench.per_1024(11.5, 0.0153, 0.85, 512)
  assert rate512 == pytest.approx(0.75) and l2_512 == l2
  # The decay per step, rate * l2, is wd * B / (1024 * gain): set by wd alone.
  assert rate * l2 == pytest.approx(0.0153 / (1 + 1 / 0.15))


def test_triangular_schedule_at_known_steps():
  opt = config_defaults.get_base_config().optimizer
  opt.update(schedule='triangular', learning_rate=2.0, pct_start=0.23)
  sched = optim.create_learning_rate_schedule(opt, total_steps=100, steps_per_epoch=10)
  for step, factor in {0: 0.2, 10: 0.2 + 0.8 * 10 / 23, 23: 1.0,
                       50: 1 - 0.93 * 27 / 77, 100: 0.07, 120: 0.07}.items():
    assert float(sched(step)) == pytest.approx(2.0 * factor, rel=1e-5), step
  # airbench's own rounding: the peak at int(0.23 * total).
  tri = optim_airbench.triangular_schedule(1.0, 485)
  assert float(tri(111)) == pytest.approx(1.0) and float(tri(110)) < 1.0


def test_param_labels():
  model = airbench.AirBench(num_classes=10, bn_scale=True)
  params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))['params']
  labels = optim_airbench.param_labels(params)
  assert labels['whiten'] == {'kernel': 'whiten_kernel', 'bias': 'whiten_bias'}
  assert labels['block2']['norm1'] == {'bias': 'bn_bias', 'scale': 'bn_scale'}
  assert labels['block2']['conv1'] == {'kernel': 'other'}
  assert labels['head'] == {'kernel': 'other'}
  # The zoo's BatchNorm names (BatchNorm_N) are found too.
  fast = FastCNN(num_classes=10, widths=(8, 8), pool_after=(0,), conv_impl='lax')
  fl = optim_airbench.param_labels(
      fast.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))['params'])
  assert fl['conv1']['BatchNorm_0'] == {'bias': 'bn_bias', 'scale': 'bn_scale'}
  assert fl['conv1']['Conv_0'] == {'kernel': 'other'}


def _airbench_opt(**kw):
  opt = config_defaults.get_base_config().optimizer
  opt.update(name='sgd', learning_rate=11.5, weight_decay=0.0153, momentum=0.85,
             nesterov=True, schedule='triangular', pct_start=0.23, per_1024=True,
             decay_all=True, bn_bias_lr_scale=64.0, freeze_bn_scale=True,
             freeze_whiten_kernel=True, whiten_bias_epochs=1.0)
  opt.update(**kw)
  return opt


def _torch_reference(params, grads_mean, batch, total, steps_per_epoch):
  """airbench94.py's optimizer in numpy: torch SGD (Nesterov, L2 in the
  gradient) on the summed loss, two param groups, frozen leaves skipped, the
  whitening bias trained for the first epoch (whiten_bias_epochs=1 here)."""
  gain = 1 + 1 / (1 - 0.85)
  lr = 11.5 / (1024 * gain)
  wd = 0.0153 * batch / (1024 * gain)
  lr_b = lr * 64
  tri = lambda i: np.interp(i, [0, int(0.23 * total), total], [0.2, 1.0, 0.07])
  group = {'w': ('other', lr), 'b_whiten': ('whiten_bias', lr), 'bn_b': ('bn', lr_b)}
  p = {k: v.astype(np.float64) for k, v in params.items()}
  buf = {k: 0 * v for k, v in p.items()}
  history = []
  for i, g_mean in enumerate(grads_mean):
    epoch = i // steps_per_epoch
    for k in p:
      if k in ('w_whiten', 'bn_scale'):
        continue  # requires_grad=False.
      if k == 'b_whiten' and epoch >= 1:
        continue
      base_lr = group[k][1]
      g = batch * g_mean[k] + (wd / base_lr) * p[k]  # Summed loss; weight_decay=wd/lr.
      buf[k] = 0.85 * buf[k] + g
      p[k] = p[k] - base_lr * tri(i) * (g + 0.85 * buf[k])
    history.append({k: v.copy() for k, v in p.items()})
  return history


def test_grouped_sgd_matches_airbench_torch_sgd():
  """Per-1024 rate and decay, 64x BN-bias rate with the same decay step, frozen
  whitening kernel and BN scale, whitening bias frozen after 1 epoch, on the
  triangular schedule: 6 steps equal the torch formulation's."""
  batch, total, spe = 256, 6, 3
  rng = np.random.default_rng(0)
  params = {'w': rng.normal(size=(3, 4)), 'b_whiten': rng.normal(size=4),
            'w_whiten': rng.normal(size=(2, 4)), 'bn_b': rng.normal(size=4),
            'bn_scale': np.ones(4)}
  grads = [{k: rng.normal(size=v.shape) * 1e-3 for k, v in params.items()}
           for _ in range(total)]
  tree = lambda d: {'whiten': {'kernel': d['w_whiten'], 'bias': d['b_whiten']},
                    'block': {'conv': {'kernel': d['w']},
                              'norm1': {'bias': d['bn_b'], 'scale': d['bn_scale']}}}
  opt = _airbench_opt()
  tx = optim.create_optimizer(opt, optim.create_learning_rate_schedule(opt, total, spe),
                              batch_size=batch, steps_per_epoch=spe, total_steps=total)
  p = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree(params))
  state = tx.init(p)
  for g, want in zip(grads, _torch_reference(params, grads, batch, total, spe)):
    g = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree(g))
    updates, state = tx.update(g, state, p)
    p = optax.apply_updates(p, updates)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6),
                 p, tree(want))
  assert not np.array_equal(p['whiten']['bias'], params['b_whiten'])  # It did train.


def test_knobs_off_is_the_plain_optimizer():
  opt = config_defaults.get_base_config().optimizer
  params = {'Conv_0': {'kernel': jnp.ones((2, 2))}, 'BatchNorm_0': {'bias': jnp.ones(2)}}
  grads = jax.tree.map(lambda x: 0.1 * x, params)
  a = optim.create_optimizer(opt, 0.1)
  b = optim._plain_optimizer(opt, 0.1)  # pylint: disable=protected-access
  ua, _ = a.update(grads, a.init(params), params)
  ub, _ = b.update(grads, b.init(params), params)
  jax.tree.map(np.testing.assert_array_equal, ua, ub)


def test_missing_context_and_other_optimizers_are_refused():
  with pytest.raises(InputError, match='per_1024 needs batch_size'):
    optim.create_optimizer(_airbench_opt(), 0.1, steps_per_epoch=3)
  with pytest.raises(InputError, match='whiten_bias_epochs needs steps_per_epoch'):
    optim.create_optimizer(_airbench_opt(), 0.1, batch_size=8)
  with pytest.raises(InputError, match='lookahead_every needs'):
    optim.create_optimizer(_airbench_opt(lookahead_every=5), 0.1, batch_size=8,
                           steps_per_epoch=3)
  with pytest.raises(InputError, match='sgd only'):  # Refused with the config.
    airbench_checks.check_optimizer(_airbench_opt(name='adam'))


def test_whitening_freezes_on_adamw():
  """IsoVolNet's AdamW with freeze_whiten_kernel and whiten_bias_epochs=1: the
  kernel never moves, the bias moves for one epoch (2 steps) only, and every
  other leaf steps exactly as the plain AdamW's."""
  opt = config_defaults.get_base_config().optimizer
  opt.update(name='adamw', learning_rate=0.01, weight_decay=0.05,
             freeze_whiten_kernel=True, whiten_bias_epochs=1.0)
  rng = np.random.default_rng(0)
  params = {'whiten': {'kernel': rng.normal(size=(2, 2, 3, 24)), 'bias': rng.normal(size=24)},
            'block1': {'Conv_0': {'kernel': rng.normal(size=(3, 4))},
                       'BatchNorm_0': {'bias': rng.normal(size=4), 'scale': np.ones(4)}}}
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
  tx = optim.create_optimizer(opt, 0.01, steps_per_epoch=2)
  plain = optim._plain_optimizer(opt, 0.01)  # pylint: disable=protected-access
  p, q = params, params
  state, plain_state = tx.init(p), plain.init(q)
  biases = []
  for _ in range(4):
    g = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), p)
    u, state = tx.update(g, state, p)
    p = optax.apply_updates(p, u)
    v, plain_state = plain.update(g, plain_state, q)
    q = optax.apply_updates(q, v)
    jax.tree.map(np.testing.assert_array_equal, p['block1'], q['block1'])
    biases.append(np.asarray(p['whiten']['bias']))
  np.testing.assert_array_equal(p['whiten']['kernel'], params['whiten']['kernel'])
  assert not np.array_equal(biases[0], params['whiten']['bias'])
  assert not np.array_equal(biases[1], biases[0])  # Step 2 is still in epoch 0.
  np.testing.assert_array_equal(biases[3], biases[1])  # Frozen from step 3.


def test_sgd_only_knobs_on_adamw_name_the_fix():
  opt = config_defaults.get_base_config().optimizer
  opt.update(name='adamw', freeze_bn_scale=True, freeze_whiten_kernel=True)
  with pytest.raises(InputError, match=r'freeze_bn_scale are implemented for sgd only; '
                     r'set --config.optimizer.name=sgd') as e:
    airbench_checks.check_optimizer(opt)
  assert '\n' not in str(e.value)


def _lookahead_reference(p0, grad, lr, m, total, spe, start_epochs, every, base, power):
  """airbench94.py's loop with its lookahead, on numpy arrays; the weights
  after every step (after the epoch-end copy-back on an epoch's last step)."""
  p, buf, slow, n, out = p0.copy(), 0 * p0, None, 0, []
  for epoch in range(math.ceil(total / spe)):
    for _ in range(spe):
      g = grad(p)
      buf = m * buf + g
      p = p - lr * (g + m * buf)
      n += 1
      if epoch >= start_epochs and n % every == 0:
        if slow is None:
          slow = p.copy()
        else:
          rho = base ** every * (n / total) ** power
          slow = rho * slow + (1 - rho) * p
          p = slow.copy()
      out.append(p.copy())
      if n >= total:
        break
    if slow is not None:
      p = slow.copy()      # "Copy back parameters a final time after each epoch".
      out[-1] = p.copy()
  return out


@pytest.mark.parametrize('total,spe,every', [(23, 4, 2), (20, 5, 3)])
def test_lookahead_matches_the_published_loop(total, spe, every):
  """Nesterov SGD on a quadratic 0.5 |A p - b|^2 with lookahead from epoch 1:
  the weights after each step equal the published rule's, written as its loop
  (base 0.7 and power 1 so that the averaging is visible in a short run)."""
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(6, 4)), rng.normal(size=6)
  grad = lambda p: a.T @ (a @ p - b)
  p0 = rng.normal(size=4)
  kw = dict(total=total, spe=spe, start_epochs=1, every=every, base=0.7, power=1.0)
  want = _lookahead_reference(p0, grad, 0.05, 0.85, **kw)
  tx = optim_airbench.lookahead(optax.sgd(0.05, momentum=0.85, nesterov=True),
                                total_steps=total, steps_per_epoch=spe, every=every,
                                start_step=spe, base=0.7, power=1.0)
  p = jnp.asarray(p0, jnp.float32)
  state = tx.init(p)
  plain = p0.copy()
  for n, w in enumerate(want, 1):
    updates, state = tx.update(jnp.asarray(grad(np.asarray(p, np.float64)), jnp.float32),
                               state, p)
    p = optax.apply_updates(p, updates)
    np.testing.assert_allclose(p, w, rtol=1e-4, atol=1e-5, err_msg=f'step {n}')
  # It changed the trajectory: plain SGD ends elsewhere.
  buf = 0 * plain
  for _ in range(total):
    g = grad(plain)
    buf = 0.85 * buf + g
    plain = plain - 0.05 * (g + 0.85 * buf)
  assert np.abs(plain - want[-1]).max() > 1e-3


def test_lookahead_from_config_and_final_copy():
  """Through create_optimizer: before the start epoch it is the inner optimizer;
  at the last step the weights are the slow copy."""
  opt = config_defaults.get_base_config().optimizer
  opt.update(schedule='constant', learning_rate=0.1, momentum=0.0, weight_decay=0.0,
             lookahead_every=2, lookahead_start_epochs=1.0, lookahead_base=0.5,
             lookahead_pow=0.0, lookahead_sync_epochs=False)
  tx = optim.create_optimizer(opt, 0.1, steps_per_epoch=2, total_steps=7)
  p = jnp.zeros(())
  state = tx.init(p)
  seen = []
  for _ in range(7):  # Gradient -1: plain SGD adds 0.1 a step.
    u, state = tx.update(jnp.asarray(-1.0), state, p)
    p = p + u
    seen.append(float(p))
  # Steps 1-3: plain. Step 4: the slow copy starts at 0.4. Step 6: rho =
  # 0.5**2 * (6/7)**0 = 0.25, slow = 0.25 * 0.4 + 0.75 * 0.6 = 0.55, and the
  # weights take it. Step 7 (the last): 0.65, then the slow copy, 0.55.
  np.testing.assert_allclose(seen, [0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.55], atol=1e-6)


def test_airbench_optimizer_state_resumes_exactly(tmp_path):
  """6 steps in one go == 3 steps, the optimizer state saved and restored by
  Orbax into a fresh state's structure, 3 more: the groups' counters, the
  whitening-bias freeze and lookahead's slow copy all round-trip."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  opt = _airbench_opt(lookahead_every=2, lookahead_start_epochs=1.0)
  total, spe = 6, 2
  tx = optim.create_optimizer(opt, optim.create_learning_rate_schedule(opt, total, spe),
                              batch_size=256, steps_per_epoch=spe, total_steps=total)
  rng = np.random.default_rng(2)
  params = {'whiten': {'kernel': rng.normal(size=(2, 2, 3, 4)), 'bias': rng.normal(size=4)},
            'conv': {'kernel': rng.normal(size=(3, 4))},
            'norm1': {'bias': rng.normal(size=4)}}
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
  grads = [jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape) * 1e-2, jnp.float32),
                        params) for _ in range(total)]

  def run(p, state, gs):
    for g in gs:
      updates, state = tx.update(g, state, p)
      p = optax.apply_updates(p, updates)
    return p, state

  straight, _ = run(params, tx.init(params), grads)
  p, state = run(params, tx.init(params), grads[:3])
  ckpt = ocp.StandardCheckpointer()
  ckpt.save(tmp_path / 'ckpt', {'params': p, 'opt_state': state})
  ckpt.wait_until_finished()
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                        {'params': params, 'opt_state': tx.init(params)})
  restored = ckpt.restore(tmp_path / 'ckpt', target)
  resumed, _ = run(restored['params'], restored['opt_state'], grads[3:])
  jax.tree.map(np.testing.assert_array_equal, resumed, straight)


def test_state_leaf_order_survives_a_restore_from_metadata(tmp_path):
  """evaluate and predict restore a checkpoint into the tree Orbax's metadata
  describes, where NamedTuples are dicts with sorted keys; the checkpoint's
  digest is over the leaves in order, so that order must not change."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  opt = _airbench_opt(lookahead_every=2)
  tx = optim.create_optimizer(opt, 0.1, batch_size=64, steps_per_epoch=2, total_steps=6)
  params = {'whiten': {'kernel': jnp.ones((2, 2, 3, 4)), 'bias': jnp.arange(4.0)},
            'norm1': {'bias': jnp.full(4, 2.0)}, 'conv': {'kernel': jnp.full((3, 4), 3.0)}}
  state = tx.init(params)
  updates, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
  ckpt = ocp.StandardCheckpointer()
  ckpt.save(tmp_path / 'c', {'opt_state': state})
  ckpt.wait_until_finished()
  meta = ckpt.metadata(tmp_path / 'c').item_metadata
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype),
                        getattr(meta, 'tree', meta), is_leaf=lambda m: hasattr(m, 'shape'))
  restored = ckpt.restore(tmp_path / 'c', target)
  want, got = jax.tree.leaves(state), jax.tree.leaves(restored['opt_state'])
  assert len(want) == len(got)
  for a, b in zip(want, got):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_lookahead_past_the_last_step_is_named():
  """Lookahead from epoch 30 of 100 (IsoVolNet's default of 2026-12-03);
  shortened by --config.num_epochs=10 the run would never use it, and training
  says so."""
  opt = config_defaults.load_config_file(
      Path(__file__).resolve().parents[1] / 'configs' / 'cifar10.py').optimizer
  opt.update(lookahead_every=5, lookahead_start_epochs=30.0)
  per_epoch = 45_000 // 256
  assert optim_airbench.lookahead_warning(opt, per_epoch, 100 * per_epoch) is None
  warning = optim_airbench.lookahead_warning(opt, per_epoch, 10 * per_epoch)
  assert f'step {30 * per_epoch}' in warning and 'lookahead_start_epochs' in warning
  opt.lookahead_every = 0
  assert optim_airbench.lookahead_warning(opt, per_epoch, 10 * per_epoch) is None
