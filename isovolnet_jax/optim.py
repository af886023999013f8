"""Optimizer and learning-rate schedule from `config.optimizer`."""

import ml_collections
import optax

from isovolnet_jax.airbench import checks as airbench_checks
from isovolnet_jax.airbench import optim as airbench_optim
from isovolnet_jax.errors import InputError


def create_learning_rate_schedule(opt: ml_collections.ConfigDict,
                                  total_steps: int, steps_per_epoch: int):
  lr = opt.learning_rate
  if opt.schedule == 'constant':
    return optax.constant_schedule(lr)
  if opt.schedule == 'cosine':
    return optax.cosine_decay_schedule(lr, total_steps)
  if opt.schedule == 'warmup_cosine':
    warmup = min(int(opt.warmup_epochs * steps_per_epoch), total_steps - 1)
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, total_steps)
  if opt.schedule == 'onecycle':
    return optax.cosine_onecycle_schedule(total_steps, lr, opt.pct_start)
  if opt.schedule == 'piecewise':
    return optax.piecewise_constant_schedule(
        lr, {int(b * total_steps): opt.decay_factor for b in opt.boundaries})
  if opt.schedule == 'triangular':  # airbench's: start_factor -> 1 at pct_start -> end_factor.
    return airbench_optim.triangular_schedule(
        lr, total_steps, start=opt.start_factor, peak_at=opt.pct_start,
        end=opt.end_factor)
  if opt.schedule == 'linear':  # airbench94_muon's: 1 -> 0 at the end.
    return optax.linear_schedule(lr, 0.0, total_steps)
  raise InputError(f'unknown optimizer.schedule={opt.schedule!r}; choose one of '
                   f"constant, cosine, warmup_cosine, onecycle, piecewise, triangular, linear")


def _needs(what: str, key: str):
  return InputError(f'optimizer.{key} needs {what}: the caller must pass it to '
                    f'optim.create_optimizer (train.py passes them)')


def create_optimizer(opt: ml_collections.ConfigDict, schedule, *, batch_size: int | None = None,
                     steps_per_epoch: int | None = None, total_steps: int | None = None):
  """The optimizer named by `optimizer.name`, with its weight decay.

  airbench's knobs (docs/airbench.md), all off by default: `per_1024`,
  `decay_all`, `bn_bias_lr_scale` (sgd only), `freeze_bn_scale` (sgd, muon),
  `freeze_whiten_kernel`, `whiten_bias_epochs` (any optimizer) and
  `lookahead_every`. `per_1024` needs `batch_size`, `whiten_bias_epochs`
  `steps_per_epoch`, lookahead both `steps_per_epoch` and `total_steps`; with
  those knobs off they are unused. `name='muon'` (airbench94_muon) needs
  `batch_size`. Which knobs go with which optimizer is checked when the
  config is loaded (`airbench.checks`), not here.
  """
  on = airbench_checks.groups_on(opt)
  per_1024 = opt.per_1024
  if opt.name == 'muon':
    tx = _muon(opt, schedule, batch_size, steps_per_epoch)
  elif opt.name == 'sgd' and (on or per_1024):
    tx = _airbench_sgd(opt, schedule, batch_size, steps_per_epoch)
  elif on:
    tx = _with_whitening_freezes(opt, schedule, steps_per_epoch)
  else:
    tx = _plain_optimizer(opt, schedule)
  if opt.lookahead_every > 0:
    if not steps_per_epoch or not total_steps:
      raise _needs('steps_per_epoch and total_steps', 'lookahead_every')
    tx = airbench_optim.lookahead(
        tx, total_steps=total_steps, steps_per_epoch=steps_per_epoch,
        every=opt.lookahead_every,
        start_step=airbench_optim.lookahead_start_step(opt, steps_per_epoch),
        base=opt.lookahead_base, power=opt.lookahead_pow,
        sync_every_epoch=opt.lookahead_sync_epochs)
  return tx


def _airbench_sgd(opt, schedule, batch_size, steps_per_epoch):
  """Nesterov SGD with airbench's parameter groups (airbench_optim.grouped_sgd)."""
  weight_decay = opt.weight_decay
  if opt.per_1024:
    if not batch_size:
      raise _needs('batch_size', 'per_1024')
    # learning_rate and weight_decay are per 1024 examples: the schedule's
    # values are scaled to the rate for this batch, the decay becomes L2.
    rate, weight_decay = airbench_optim.per_1024(opt.learning_rate, opt.weight_decay,
                                                 opt.momentum, batch_size, opt.nesterov)
    schedule = airbench_optim.scaled(schedule, rate / opt.learning_rate)
  return airbench_optim.grouped_sgd(
      schedule, momentum=opt.momentum, nesterov=opt.nesterov, weight_decay=weight_decay,
      decay_all=opt.decay_all, bn_bias_lr_scale=opt.bn_bias_lr_scale,
      freeze_bn_scale=opt.freeze_bn_scale,
      freeze_whiten_kernel=opt.freeze_whiten_kernel,
      whiten_bias_steps=_whiten_bias_steps(opt, steps_per_epoch))


def _muon(opt, schedule, batch_size, steps_per_epoch):
  """airbench94_muon: Muon on the conv kernels, Nesterov SGD on the biases and
  the head at per-example rates (airbench_optim.muon_sgd)."""
  if not batch_size:
    raise InputError("optimizer.name='muon' needs batch_size (its SGD rates are per "
                     'example): the caller must pass it to optim.create_optimizer '
                     '(train.py passes it)')
  return airbench_optim.muon_sgd(
      schedule, peak_rate=opt.learning_rate, batch_size=batch_size,
      bias_lr=opt.muon_bias_lr, head_lr=opt.muon_head_lr, weight_decay=opt.weight_decay,
      momentum=opt.momentum, nesterov=opt.nesterov, muon_momentum=opt.muon_momentum,
      muon_ns_steps=opt.muon_ns_steps, muon_normalize=opt.muon_normalize,
      freeze_bn_scale=opt.freeze_bn_scale,
      freeze_whiten_kernel=opt.freeze_whiten_kernel,
      whiten_bias_steps=_whiten_bias_steps(opt, steps_per_epoch))


def _whiten_bias_steps(opt, steps_per_epoch) -> int | None:
  if opt.whiten_bias_epochs < 0:
    return None
  if not steps_per_epoch:
    raise _needs('steps_per_epoch', 'whiten_bias_epochs')
  return round(opt.whiten_bias_epochs * steps_per_epoch)


def _with_whitening_freezes(opt, schedule, steps_per_epoch):
  """`_plain_optimizer` (AdamW for IsoVolNet) with the whitening stem's
  freezes (airbench_optim.with_whitening_freezes, as grouped_sgd's)."""
  return airbench_optim.with_whitening_freezes(
      lambda: _plain_optimizer(opt, schedule), opt.freeze_whiten_kernel,
      _whiten_bias_steps(opt, steps_per_epoch))


def _plain_optimizer(opt, schedule):
  if opt.name == 'adamw':
    return optax.adamw(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps,
                       weight_decay=opt.weight_decay, mask=airbench_optim.kernels_only)
  if opt.name == 'sgd':
    base = optax.sgd(schedule, momentum=opt.momentum or None, nesterov=opt.nesterov)
  elif opt.name == 'adam':
    base = optax.adam(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps)
  elif opt.name == 'rmsprop':
    base = optax.rmsprop(schedule, decay=opt.decay, eps=opt.eps,
                         momentum=opt.momentum or None)
  else:
    raise InputError(f'unknown optimizer.name={opt.name!r}; choose one of '
                     f'sgd, adam, adamw, rmsprop, muon')
  # L2 added to the gradient, as PyTorch's `weight_decay` does for these.
  return optax.chain(optax.add_decayed_weights(opt.weight_decay,
                                                 airbench_optim.kernels_only),
                     base)
