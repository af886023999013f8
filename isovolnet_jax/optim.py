"""Optimizer and learning-rate schedule from `config.optimizer`."""

import jax
import ml_collections
import optax

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
  raise InputError(f'unknown optimizer.schedule={opt.schedule!r}; choose one of '
                   f"constant, cosine, warmup_cosine, onecycle, piecewise")


def _kernels_only(params):
  """Weight decay on conv/dense kernels, not on biases or BatchNorm scales."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def create_optimizer(opt: ml_collections.ConfigDict, schedule):
  """The optimizer named by `optimizer.name`, with its weight decay."""
  if opt.name == 'adamw':
    return optax.adamw(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps,
                       weight_decay=opt.weight_decay, mask=_kernels_only)
  if opt.name == 'sgd':
    base = optax.sgd(schedule, momentum=opt.momentum or None, nesterov=opt.nesterov)
  elif opt.name == 'adam':
    base = optax.adam(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps)
  elif opt.name == 'rmsprop':
    base = optax.rmsprop(schedule, decay=opt.decay, eps=opt.eps,
                         momentum=opt.momentum or None)
  else:
    raise InputError(f'unknown optimizer.name={opt.name!r}; choose one of '
                     f'sgd, adam, adamw, rmsprop')
  # L2 added to the gradient, as PyTorch's `weight_decay` does for these.
  return optax.chain(optax.add_decayed_weights(opt.weight_decay, _kernels_only),
                     base)
