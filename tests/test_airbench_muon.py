"""configs/cifar10_airbench94_muon.py and optimizer.name='muon': the recipe's
values, each leaf's group, one step against airbench94_muon.py's update
written out in numpy (torch's SGD and its Muon on the summed loss), against
optax.contrib.muon and optax.sgd, the linear schedule, and a tiny real run."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from isovolnet_jax import config_defaults
from isovolnet_jax import models
from isovolnet_jax import optim
from isovolnet_jax.airbench import optim as optim_airbench
from isovolnet_jax import train
from isovolnet_jax.errors import InputError

from helpers import load_config_file, metrics

HEAD_STD = (3 * 256) ** -0.5


def test_config_has_the_recipe():
  c = load_config_file('cifar10_airbench94_muon')
  o = c.optimizer
  assert (o.name, o.learning_rate, o.muon_momentum, o.nesterov) == ('muon', 0.24, 0.6, True)
  assert (o.muon_ns_steps, o.muon_normalize, o.momentum) == (3, True, 0.85)
  assert o.muon_bias_lr == 0.053 and o.muon_head_lr == pytest.approx(0.67 * HEAD_STD ** 2)
  assert o.weight_decay * c.batch_size == pytest.approx(0.004)  # airbench's 2e-6 * 2000.
  assert o.schedule == 'linear' and o.lookahead_every == 0
  assert o.freeze_whiten_kernel and o.whiten_bias_epochs == 3.0
  assert not (o.per_1024 or o.decay_all) and o.bn_bias_lr_scale == 1.0
  # The head: std HEAD_STD and logits x 1/(256 HEAD_STD) = airbench's std 1, / 256.
  assert c.model.output_scale * HEAD_STD == pytest.approx(1 / 256)
  assert c.model.name == 'airbench' and tuple(c.model.widths) == (64, 256, 256)
  assert (c.model.bn_momentum, c.model.bn_eps, c.model.bn_scale) == (0.6, 1e-12, False)
  assert c.batch_size == 2000 and c.data.val_size == 0
  assert train.Plan.of(c, 50_000, 1).total_steps == 200  # 8 epochs of 25 batches.
  assert c.label_smoothing == 0.2 and c.eval_tta == 'airbench6'
  assert c.augment.alternating_flip and c.augment.translate == 2 and not c.augment.flip
  assert c.augment.crop_padding == 0
  assert c.whiten_images == 5000 and c.whiten_eps == 1.25e-4
  assert set(config_defaults.get_base_config().keys()) == set(c.keys())


def test_the_config_is_airbench94s_but_for_the_optimizer():
  """cifar10_airbench94_muon.py loads cifar10_airbench94.py and sets only the
  optimizer (from the schema's: airbench94's SGD knobs off), the run's length
  and the head's scale: every other key is airbench94's."""
  def flat(config, prefix=''):
    out = {}
    for k, v in config.items():
      if hasattr(v, 'items'):
        out.update(flat(v, f'{prefix}{k}.'))
      else:
        out[f'{prefix}{k}'] = v
    return out
  muon, base = flat(load_config_file('cifar10_airbench94_muon')), flat(
      load_config_file('cifar10_airbench94'))
  differ = {k for k in base if muon[k] != base[k]}
  assert muon.keys() == base.keys()
  assert {k for k in differ if not k.startswith('optimizer.')} == {
      'model.output_scale', 'batch_size', 'num_epochs', 'num_train_steps', 'log_every_steps'}
  # Optimizer keys it does not set are the schema's.
  schema = flat(config_defaults.get_base_config().optimizer, 'optimizer.')
  set_here = {'name', 'learning_rate', 'muon_momentum', 'nesterov', 'muon_ns_steps',
              'muon_normalize', 'momentum', 'muon_bias_lr', 'muon_head_lr', 'weight_decay',
              'schedule', 'freeze_whiten_kernel', 'whiten_bias_epochs'}
  assert {k for k in schema if muon[k] != schema[k]} <= {f'optimizer.{k}' for k in set_here}


def test_linear_schedule_at_start_middle_end():
  opt = load_config_file('cifar10_airbench94_muon').optimizer
  sched = optim.create_learning_rate_schedule(opt, total_steps=200, steps_per_epoch=25)
  for step, rate in {0: 0.24, 50: 0.18, 100: 0.12, 199: 0.24 / 200, 200: 0.0, 250: 0.0}.items():
    assert float(sched(step)) == pytest.approx(rate, abs=1e-7), step


def _real_params():
  config = load_config_file('cifar10_airbench94_muon')
  model = models.create_model(config.model, 10)
  return config, jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))['params']


def _paths(tree):
  return {'/'.join(k.key for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(tree)}


def test_real_model_routes_conv_kernels_to_muon_and_the_rest_to_sgd():
  config, params = _real_params()
  labels = optim_airbench.muon_labels(params, freeze_whiten_kernel=True)
  by = {}
  for path, label in jax.tree_util.tree_leaves_with_path(labels):
    by.setdefault(label, set()).add('/'.join(k.key for k in path))
  convs = {f'block{b}/conv{c}/kernel' for b in (1, 2, 3) for c in (1, 2)}
  norms = {f'block{b}/norm{c}/bias' for b in (1, 2, 3) for c in (1, 2)}
  assert by == {'muon': convs, 'bias': norms, 'head': {'head/kernel'},
                'whiten_bias': {'whiten/bias'}, 'frozen': {'whiten/kernel'}}
  # The optimizer the config builds: Muon's momentum holds the conv kernels
  # only, the SGD groups' the others.
  schedule = optim.create_learning_rate_schedule(config.optimizer, 200, 25)
  tx = optim.create_optimizer(config.optimizer, schedule, batch_size=2000,
                              steps_per_epoch=25, total_steps=200)
  inner = jax.eval_shape(tx.init, params).inner_states
  assert _paths(inner['muon'].inner_state[0].trace) == convs
  assert _paths(inner['bias'].inner_state[1].trace) == norms
  assert _paths(inner['head'].inner_state[1].trace) == {'head/kernel'}
  # An unfrozen whitening kernel is a conv filter: Muon's.
  unfrozen = optim_airbench.muon_labels(params)
  assert unfrozen['whiten']['kernel'] == 'muon'


# ------------------------------------------------------- airbench94_muon in numpy

def _ns_reference(g, steps=3, eps=1e-7):
  """airbench94_muon's zeropower_via_newtonschulz5, in float64."""
  a, b, c = 3.4445, -4.7750, 2.0315
  x = g / (np.linalg.norm(g) + eps)
  tall = g.shape[0] > g.shape[1]
  x = x.T if tall else x
  for _ in range(steps):
    s = x @ x.T
    x = a * x + (b * s + c * s @ s) @ x
  return x.T if tall else x


def _reference(params, grads_mean, *, batch, total, whiten_steps, lr=0.24, bias_lr=0.053,
               head_lr=0.67, wd=2e-6, m_sgd=0.85, m_muon=0.6):
  """airbench94_muon.py's loop: grads of the summed loss (batch x the mean),
  torch SGD with weight_decay=wd*batch/lr on the biases and the head, its Muon
  on the conv kernels (torch layout (out, in, kh, kw)), every rate x
  (1 - step/total), the whitening bias's x (1 - step/whiten_steps) and frozen
  after whiten_steps. Returns the params after each step."""
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  buf = {k: np.zeros_like(v) for k, v in p.items()}  # Torch layout for Muon's.
  buf.update({k: v.transpose(3, 2, 0, 1) for k, v in buf.items() if v.ndim == 4})
  sgd_lr = {'whiten/bias': bias_lr, 'norm/bias': bias_lr, 'head/kernel': head_lr}
  out = []
  for step, grads in enumerate(grads_mean):
    for k in p:
      g = batch * np.asarray(grads[k], np.float64)
      if k in sgd_lr:
        if k == 'whiten/bias':
          if step >= whiten_steps:
            continue
          rate = sgd_lr[k] * (1 - step / whiten_steps)
        else:
          rate = sgd_lr[k] * (1 - step / total)
        d = g + wd * batch / sgd_lr[k] * p[k]
        buf[k] = m_sgd * buf[k] + d
        p[k] = p[k] - rate * (d + m_sgd * buf[k])
      elif k.endswith('kernel') and k != 'whiten/kernel':
        gt, pt = g.transpose(3, 2, 0, 1), p[k].transpose(3, 2, 0, 1)
        buf[k] = m_muon * buf[k] + gt
        geff = gt + m_muon * buf[k]
        pt = pt * (len(pt) ** 0.5 / np.linalg.norm(pt))
        update = _ns_reference(geff.reshape(len(geff), -1)).reshape(geff.shape)
        p[k] = (pt - lr * (1 - step / total) * update).transpose(2, 3, 1, 0)
    out.append({k: v.copy() for k, v in p.items()})
  return out


TINY = {'whiten/kernel': (2, 2, 3, 6), 'whiten/bias': (6,), 'conv/kernel': (3, 3, 6, 4),
        'wide/kernel': (3, 3, 2, 24), 'norm/bias': (4,), 'head/kernel': (4, 3)}


def _nest(flat):
  tree = {}
  for k, v in flat.items():
    module, leaf = k.split('/')
    tree.setdefault(module, {})[leaf] = v
  return tree


def _flat(tree):
  return {f'{m}/{l}': v for m, leaves in tree.items() for l, v in leaves.items()}


def _tiny(steps, seed=0):
  rng = np.random.default_rng(seed)
  params = {k: rng.normal(0, 0.5, s).astype(np.float32) for k, s in TINY.items()}
  grads = [{k: rng.normal(0, 0.1, s).astype(np.float32) for k, s in TINY.items()}
           for _ in range(steps)]
  return params, grads


def _run(tx, params, grads):
  state = tx.init(_nest(params))
  p, out = _nest(params), []
  update = jax.jit(tx.update)
  for g in grads:
    u, state = update(_nest(g), state, p)
    p = optax.apply_updates(p, u)
    out.append({k: np.asarray(v) for k, v in _flat(p).items()})
  return out


def test_steps_match_airbench94_muon_written_in_numpy():
  """5 steps of batch 8 (total 5, the whitening bias trained 2): every group
  as airbench94_muon's loop, to float32 precision."""
  params, grads = _tiny(5)
  opt = load_config_file('cifar10_airbench94_muon').optimizer
  opt.muon_head_lr = 0.67  # The tiny tree's head is airbench's own parameterisation.
  opt.whiten_bias_epochs = 2.0
  sched = optim.create_learning_rate_schedule(opt, total_steps=5, steps_per_epoch=1)
  tx = optim.create_optimizer(opt, sched, batch_size=8, steps_per_epoch=1, total_steps=5)
  ours = _run(tx, params, grads)
  ref = _reference(params, grads, batch=8, total=5, whiten_steps=2)
  for n, (a, b) in enumerate(zip(ours, ref)):
    for k in TINY:
      np.testing.assert_allclose(a[k], b[k], rtol=2e-5, atol=2e-5, err_msg=f'{k} step {n + 1}')
  np.testing.assert_array_equal(ours[0]['whiten/kernel'], params['whiten/kernel'])  # Frozen.
  np.testing.assert_array_equal(ours[1]['whiten/bias'], ours[4]['whiten/bias'])    # Frozen.
  assert not np.array_equal(ours[0]['whiten/bias'], ours[1]['whiten/bias'])


def test_muon_group_is_optax_contrib_muon_orthogonalisation():
  """Without the renormalisation, the Muon group's first step is
  optax.contrib.muon's (both momenta are then a multiple of the gradient;
  width scale 1 for a kernel with fan-in >= fan-out). From the second step
  they differ: optax's bias-corrected EMA mixes gradient and buffer otherwise
  than torch's momentum, which airbench94_muon uses."""
  rng = np.random.default_rng(1)
  p = {'conv': {'kernel': jnp.asarray(rng.normal(size=(3, 3, 6, 4)), jnp.float32)}}
  g1, g2 = [jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), p)
            for _ in range(2)]
  ours = optim_airbench.muon(0.24, momentum=0.6, ns_steps=3, normalize=False)
  theirs = optax.contrib.muon(0.24, ns_steps=3, beta=0.6, eps=optim_airbench.MUON_NS_EPS,
                              nesterov=True, muon_weight_dimension_numbers=(
                                  optim_airbench.kernel_dimension_numbers))
  s_ours, s_theirs = ours.init(p), theirs.init(p)
  u_ours, s_ours = ours.update(g1, s_ours, p)
  u_theirs, s_theirs = theirs.update(g1, s_theirs, p)
  first = u_ours['conv']['kernel']
  np.testing.assert_allclose(first, u_theirs['conv']['kernel'], rtol=1e-5, atol=1e-6)
  u_ours, _ = ours.update(g2, s_ours, p)
  u_theirs, _ = theirs.update(g2, s_theirs, p)
  assert not np.allclose(u_ours['conv']['kernel'], u_theirs['conv']['kernel'], atol=1e-3)
  # The renormalisation: the new kernel is the old one at norm sqrt(out) = 2
  # plus the same step.
  k = p['conv']['kernel']
  renorm = optim_airbench.muon(0.24, momentum=0.6, ns_steps=3)
  u, _ = renorm.update(g1, renorm.init(p), p)
  np.testing.assert_allclose(k + u['conv']['kernel'], k * 2 / jnp.linalg.norm(k) + first,
                             rtol=1e-5, atol=1e-6)


def test_sgd_groups_are_optax_sgd_at_the_per_example_rates():
  """A constant rate: the biases' and the head's updates are optax.sgd's
  (Nesterov, momentum 0.85) at rate x batch, with L2 weight_decay / rate."""
  params, grads = _tiny(3, seed=2)
  batch, wd = 8, 2e-6
  tx = optim_airbench.muon_sgd(0.24, batch_size=batch, bias_lr=0.053, head_lr=0.67,
                               weight_decay=wd, momentum=0.85)
  ours = _run(tx, params, grads)
  for key, lr in (('norm/bias', 0.053), ('head/kernel', 0.67), ('whiten/bias', 0.053)):
    ref = optax.chain(optax.add_decayed_weights(wd / lr),
                      optax.sgd(lr * batch, momentum=0.85, nesterov=True))
    expected = _run(ref, {key: params[key]}, [{key: g[key]} for g in grads])
    for a, b in zip(ours, expected):
      np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=key)


def test_muon_state_resumes_exactly(tmp_path):
  """5 steps in one go == 2 steps, the state saved and restored by Orbax into a
  fresh state's structure, 3 more (the whitening bias frozen after step 2)."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  params, grads = _tiny(5, seed=3)
  opt = load_config_file('cifar10_airbench94_muon').optimizer
  opt.whiten_bias_epochs = 2.0
  tx = optim.create_optimizer(opt, optim.create_learning_rate_schedule(opt, 5, 1),
                              batch_size=8, steps_per_epoch=1, total_steps=5)
  straight = _run(tx, params, grads)[-1]
  update = jax.jit(tx.update)
  p, state = _nest(params), tx.init(_nest(params))
  for g in grads[:2]:
    u, state = update(_nest(g), state, p)
    p = optax.apply_updates(p, u)
  ckpt = ocp.StandardCheckpointer()
  ckpt.save(tmp_path / 'ckpt', {'params': p, 'opt_state': state})
  ckpt.wait_until_finished()
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                        {'params': p, 'opt_state': tx.init(p)})
  restored = ckpt.restore(tmp_path / 'ckpt', target)
  p, state = restored['params'], restored['opt_state']
  for g in grads[2:]:
    u, state = update(_nest(g), state, p)
    p = optax.apply_updates(p, u)
  for k, v in _flat(p).items():
    np.testing.assert_array_equal(v, straight[k], err_msg=k)


@pytest.mark.parametrize('overrides, match', [
    ({'optimizer.per_1024': True}, 'per_1024 are implemented for sgd only'),
    ({'optimizer.bn_bias_lr_scale': 64.0}, 'bn_bias_lr_scale are implemented for sgd only'),
    ({'optimizer.decay_all': True}, 'decay_all are implemented for sgd only'),
    ({'optimizer.name': 'sgd'}, "muon_momentum is for optimizer.name='muon'"),
    ({'optimizer.name': 'adamw', 'optimizer.muon_momentum': 0.95,
      'optimizer.muon_bias_lr': 0.053}, 'set --config.optimizer.name=muon'),
    ({'optimizer.schedule': 'linearly'}, 'triangular, linear'),
])
def test_incompatible_settings_are_one_line_errors(overrides, match):
  config = config_defaults.apply_overrides(load_config_file('cifar10_airbench94_muon'),
                                           {'optimizer.muon_momentum': 0.5, **overrides})
  with pytest.raises(InputError, match=match) as e:
    config_defaults.check(config)  # The knobs' combinations, as the config is loaded.
    sched = optim.create_learning_rate_schedule(config.optimizer, 200, 25)
    optim.create_optimizer(config.optimizer, sched, batch_size=2000, steps_per_epoch=25,
                           total_steps=200)
  assert '\n' not in str(e.value)


def test_muon_without_the_batch_size_is_refused():
  opt = load_config_file('cifar10_airbench94_muon').optimizer
  with pytest.raises(InputError, match="name='muon' needs batch_size"):
    optim.create_optimizer(opt, 0.24, steps_per_epoch=25, total_steps=200)


def test_tiny_run_trains(small_cifar, tmp_path):
  """The config through train.train_and_evaluate on 600 images, narrow, 12
  steps of 100 (6 an epoch, the whitening bias trained 1): the loss is finite
  and falls, the whitening kernel stays, the test split is evaluated."""
  config = config_defaults.apply_overrides(load_config_file('cifar10_airbench94_muon'), {
      'data.source': 'folder', 'data.path': str(small_cifar),
      'data.cache_dir': str(tmp_path / 'cache'), 'model.widths': (16, 32, 32),
      'batch_size': 100, 'num_train_steps': 12, 'log_every_steps': 1,
      'eval_batch_size': 100, 'whiten_images': 200, 'optimizer.whiten_bias_epochs': 1.0})
  final = train.train_and_evaluate(config, tmp_path / 'w')
  losses = [r['loss'] for r in metrics(tmp_path / 'w', 'train')]
  assert len(losses) == 12 and np.all(np.isfinite(losses))
  # ~2.29 -> ~2.20 seen (label smoothing 0.2 keeps it high).
  assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.04, losses
  assert np.isfinite(final['test']['loss'])
  assert [r['step'] for r in metrics(tmp_path / 'w', 'test')] == [6, 12]
