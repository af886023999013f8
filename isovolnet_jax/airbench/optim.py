"""airbench94's optimizer tricks as optax pieces (Keller Jordan, arXiv 2404.00498).

- `per_1024`: its learning rate and weight decay are given per 1024 examples
  and decoupled from the momentum; this turns them into optax's rate for the
  batch-mean loss and the L2 coefficient added to the gradient.
- `triangular_schedule`: linear 0.2 -> 1 over the first 23% of steps, then -> 0.07.
- `grouped_sgd`: Nesterov SGD with parameter groups (`optax.multi_transform`):
  BatchNorm biases at S x the rate (their decay step unchanged), BatchNorm
  scales frozen, the whitening layer's kernel frozen, its bias frozen after N
  steps.
- `lookahead`: every k steps from a start step, a slow copy moves toward the
  weights (decay base^k * (step/total)^pow, so averaging grows stronger
  towards the end) and the weights are reset to it; at each epoch's end and at
  the last step the weights take the slow copy.

- `muon_sgd` (airbench94_muon.py): Muon on the conv kernels (torch-style
  Nesterov momentum, then optax.contrib's Newton-Schulz orthogonalisation,
  each kernel renormalised before its step), Nesterov SGD on the biases and
  the head at their own rates, the whitening bias's rate falling linearly to 0
  over the epochs it trains.

`optim.create_optimizer` builds these from `config.optimizer`.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

WHITEN_LAYER = 'whiten'


def momentum_gain(momentum: float, nesterov: bool = True) -> float:
  """How much larger SGD's steps are than the gradient when the gradient is
  constant: the trace sums to g/(1-m); Nesterov's step adds g once more."""
  return 1 / (1 - momentum) + (1 if nesterov else 0)


def per_1024(learning_rate: float, weight_decay: float, momentum: float,
             batch_size: int, nesterov: bool = True) -> tuple[float, float]:
  """airbench's (lr, wd), per 1024 examples and momentum-decoupled -> (the rate
  for the batch-mean loss, the L2 coefficient added to the gradient).

  airbench sums the loss over the batch and runs torch SGD at lr/(1024 * gain)
  with L2 coefficient wd*B/lr; on the mean loss that is the rate
  lr * B / (1024 * gain) and the coefficient wd / lr, so each step decays the
  weights by wd * B / (1024 * gain) (x the schedule), whatever lr is.
  """
  rate = learning_rate * batch_size / (1024 * momentum_gain(momentum, nesterov))
  return rate, weight_decay / learning_rate


def triangular_schedule(peak_value: float, total_steps: int, start: float = 0.2,
                        peak_at: float = 0.23, end: float = 0.07):
  """peak_value x (linear from `start` at step 0 to 1 at step
  int(peak_at * total_steps), then linear to `end` at total_steps; `end`
  after). optax's step count is the number of updates before this one, as
  airbench's LambdaLR index."""
  peak_step = int(peak_at * total_steps)
  xp = jnp.array([0, peak_step, total_steps], jnp.float32)
  fp = jnp.array([start, 1.0, end], jnp.float32)
  return lambda count: peak_value * jnp.interp(jnp.asarray(count, jnp.float32), xp, fp)


# ---------------------------------------------------------------- groups

def _is_norm(module_name: str) -> bool:
  # The zoo's BatchNorms are named BatchNorm_N, norm, normN: airbench's own rule.
  return 'norm' in module_name.lower()


def param_labels(params, whiten_layer: str = WHITEN_LAYER):
  """Each leaf's group: 'whiten_kernel' / 'whiten_bias' (the top-level
  `whiten_layer`), 'bn_bias' / 'bn_scale' (a module whose name holds 'norm'),
  else 'other'."""
  def label(path, _):
    names = [getattr(k, 'key', str(k)) for k in path]
    leaf, module = names[-1], (names[-2] if len(names) > 1 else '')
    if names[0] == whiten_layer:
      return 'whiten_kernel' if leaf == 'kernel' else 'whiten_bias'
    if _is_norm(module):
      return {'bias': 'bn_bias', 'scale': 'bn_scale'}.get(leaf, 'other')
    return 'other'
  return jax.tree_util.tree_map_with_path(label, params)


def scaled(learning_rate, factor: float):
  """A rate or schedule times `factor`."""
  if callable(learning_rate):
    return lambda count: learning_rate(count) * factor
  return learning_rate * factor


def kernels_only(params):
  """The weight-decay mask: conv/dense kernels, not biases or BatchNorm scales.
  Every optimizer's decay (optim.py's, `grouped_sgd`'s) masks with this."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def _sgd(learning_rate, momentum, nesterov, l2, decay_all):
  """L2 added to the gradient (inside the momentum, as torch SGD's
  weight_decay), then (Nesterov) momentum, then the rate."""
  mask = None if decay_all else kernels_only
  return optax.chain(
      optax.add_decayed_weights(l2, mask) if l2 else optax.identity(),
      optax.trace(decay=momentum, nesterov=nesterov) if momentum else optax.identity(),
      optax.scale_by_learning_rate(learning_rate))


class FreezeAfterState(NamedTuple):  # Fields alphabetical, as LookaheadState's.
  count: jax.Array
  inner: Any


def freeze_after(inner: optax.GradientTransformation, steps: int) -> optax.GradientTransformation:
  """`inner`'s updates for the first `steps` steps, zeros after (airbench's
  whitening bias: trained for 3 epochs, then `requires_grad = False`)."""
  def init(params):
    return FreezeAfterState(jnp.zeros([], jnp.int32), inner.init(params))

  def update(updates, state, params=None):
    new, inner_state = inner.update(updates, state.inner, params)
    live = state.count < steps
    new = jax.tree.map(lambda u: jnp.where(live, u, jnp.zeros_like(u)), new)
    return new, FreezeAfterState(state.count + 1, inner_state)
  return optax.GradientTransformation(init, update)


def grouped_sgd(learning_rate, *, momentum: float = 0.85, nesterov: bool = True,
                weight_decay: float = 0.0, decay_all: bool = False,
                bn_bias_lr_scale: float = 1.0, freeze_bn_scale: bool = False,
                freeze_whiten_kernel: bool = False, whiten_bias_steps: int | None = None,
                whiten_layer: str = WHITEN_LAYER) -> optax.GradientTransformation:
  """(Nesterov) SGD with airbench's parameter groups.

  `weight_decay` is the L2 coefficient; `decay_all` applies it to every
  trained leaf (airbench) instead of kernels only (this codebase's default).
  BatchNorm biases train at `bn_bias_lr_scale` x the rate with the L2
  coefficient divided by it: a faster-moving bias, the same decay per step
  (airbench: 64). Frozen leaves get zero updates (no decay either).
  """
  def group(lr_factor=1.0):
    return _sgd(scaled(learning_rate, lr_factor), momentum, nesterov,
                weight_decay / lr_factor, decay_all)
  transforms = {
      'other': group(),
      'bn_bias': group(bn_bias_lr_scale),
      'bn_scale': optax.set_to_zero() if freeze_bn_scale else group(),
      **whitening_freezes(group, freeze_whiten_kernel, whiten_bias_steps),
  }
  return optax.multi_transform(transforms, lambda p: param_labels(p, whiten_layer))


def whitening_freezes(group, freeze_whiten_kernel: bool,
                      whiten_bias_steps: int | None) -> dict[str, optax.GradientTransformation]:
  """The whitening layer's two groups (`param_labels`' 'whiten_kernel' and
  'whiten_bias'), each otherwise `group()`: its kernel untrained if
  `freeze_whiten_kernel`, its bias trained for `whiten_bias_steps` steps, then
  frozen (None: never)."""
  bias = group()
  return {
      'whiten_kernel': optax.set_to_zero() if freeze_whiten_kernel else group(),
      'whiten_bias': bias if whiten_bias_steps is None else freeze_after(bias, whiten_bias_steps),
  }


def with_whitening_freezes(group, freeze_whiten_kernel: bool, whiten_bias_steps: int | None,
                           whiten_layer: str = WHITEN_LAYER) -> optax.GradientTransformation:
  """`group()` on every leaf but the whitening layer's, which get
  `whitening_freezes`: any optimizer with the whitening stem's freezes (optim.py's
  AdamW for IsoVolNet). The other leaves step exactly as `group()` alone, in
  one group, 'other'."""
  transforms = {'other': group(),
                **whitening_freezes(group, freeze_whiten_kernel, whiten_bias_steps)}

  def labels(params):
    return jax.tree.map(lambda g: g if g.startswith('whiten') else 'other',
                        param_labels(params, whiten_layer))
  return optax.multi_transform(transforms, labels)


# ---------------------------------------------------------------- muon

# airbench94_muon's Newton-Schulz epsilon (its zeropower_via_newtonschulz5).
MUON_NS_EPS = 1e-7


def muon_labels(params, freeze_bn_scale: bool = False, freeze_whiten_kernel: bool = False,
                whiten_layer: str = WHITEN_LAYER):
  """Each leaf's group in `muon_sgd`: 'muon' (kernels of rank >= 3: conv
  filters; airbench94_muon: `len(p.shape) == 4`), 'head' (rank-2 kernels: dense
  layers, airbench's head), 'bias' (BatchNorm biases and scales, other biases),
  'whiten_bias', or 'frozen' (the whitening kernel, BatchNorm scales, if frozen).
  """
  def label(group, p):
    if group == 'whiten_kernel':
      return 'frozen' if freeze_whiten_kernel else 'muon'
    if group == 'whiten_bias':
      return group
    if group == 'bn_scale':
      return 'frozen' if freeze_bn_scale else 'bias'
    if group == 'bn_bias' or p.ndim < 2:
      return 'bias'
    return 'head' if p.ndim == 2 else 'muon'
  return jax.tree.map(label, param_labels(params, whiten_layer), params)


def kernel_dimension_numbers(params):
  """Muon's matrix of a flax kernel (..., in, out): every axis but the last is
  the reduction axis (fan-in), the last the output axis; torch's
  `g.reshape(len(g), -1)` is the same matrix transposed, with its columns in
  another order (Newton-Schulz commutes with both)."""
  return jax.tree.map(
      lambda p: optax.contrib.MuonDimensionNumbers(tuple(range(p.ndim - 1)), p.ndim - 1),
      params)


def normalize_kernels() -> optax.GradientTransformation:
  """airbench94_muon's `p.data.mul_(len(p.data)**0.5 / p.data.norm())` before
  each Muon step: each kernel rescaled to Frobenius norm sqrt(out channels)
  (torch's first axis, flax's last). Placed after the rate, it adds
  p * (sqrt(out) / |p| - 1) to the step: the new weights are the rescaled ones
  plus the step. optax has no such transform."""
  def update(updates, state, params=None):
    if params is None:
      raise ValueError('normalize_kernels needs the params in update()')
    def step(u, p):
      return u + p * (jnp.sqrt(p.shape[-1]) / jnp.linalg.norm(p) - 1)
    return jax.tree.map(step, updates, params), state
  return optax.GradientTransformation(optax.init_empty_state, update)


def muon(learning_rate, *, momentum: float = 0.6, nesterov: bool = True, ns_steps: int = 3,
         normalize: bool = True) -> optax.GradientTransformation:
  """airbench94_muon's Muon: torch-style momentum (buf = m buf + g; Nesterov:
  g + m buf; optax.trace), orthogonalised by optax.contrib.scale_by_muon's
  Newton-Schulz (its coefficients, Frobenius pre-scaling, `ns_steps`
  iterations; its own momentum off: beta=0), times the rate, kernels
  renormalised (`normalize`). No weight decay, no shape scaling.

  Not optax.contrib.muon itself: its momentum is an EMA with bias correction
  (another Nesterov mix of gradient and buffer in the first steps), and it
  multiplies by sqrt(max(1, fan_out / fan_in)) (1 for airbench's 3x3 convs,
  not for a 1x1 conv that widens) - airbench94_muon does neither.
  """
  return optax.chain(
      optax.trace(decay=momentum, nesterov=nesterov),
      optax.contrib.scale_by_muon(ns_steps=ns_steps, beta=0.0, eps=MUON_NS_EPS,
                                  nesterov=False,
                                  weight_dimension_numbers=kernel_dimension_numbers),
      optax.scale_by_learning_rate(learning_rate),
      normalize_kernels() if normalize else optax.identity())


def muon_sgd(learning_rate, *, batch_size: int, bias_lr: float, head_lr: float,
             peak_rate: float | None = None,
             weight_decay: float = 0.0, momentum: float = 0.85, nesterov: bool = True,
             muon_momentum: float = 0.6, muon_ns_steps: int = 3, muon_normalize: bool = True,
             freeze_bn_scale: bool = False, freeze_whiten_kernel: bool = False,
             whiten_bias_steps: int | None = None,
             whiten_layer: str = WHITEN_LAYER) -> optax.GradientTransformation:
  """airbench94_muon's two optimizers as one (`muon_labels`' groups).

  `learning_rate` (a rate or schedule) is Muon's. The SGD groups follow its
  shape, learning_rate / `peak_rate` (the config's learning_rate; by default
  `learning_rate` itself, if a number). `bias_lr` and `head_lr` are per
  example of a summed loss (torch's rates there), so on the batch-mean loss
  their rate is lr * batch_size and the L2 coefficient inside the momentum
  `weight_decay / lr` (torch's `weight_decay=wd/lr` with
  wd = weight_decay * batch_size): each step decays by
  weight_decay * batch_size x the schedule. The whitening bias trains at
  `bias_lr` falling linearly from 1x to 0 over `whiten_bias_steps`, then
  stops (airbench94_muon's `1 - step / whiten_bias_train_steps`).
  """
  if peak_rate is None:
    if callable(learning_rate):
      raise ValueError('muon_sgd with a schedule needs its peak_rate')
    peak_rate = learning_rate

  def sgd(lr, schedule=None):
    rate = lr * batch_size
    rate = schedule(rate) if schedule else scaled(learning_rate, rate / peak_rate)
    return _sgd(rate, momentum, nesterov, weight_decay / lr if weight_decay else 0.0,
                decay_all=True)
  if whiten_bias_steps is None:
    whiten_bias = sgd(bias_lr)
  else:
    falling = lambda rate: optax.linear_schedule(rate, 0.0, max(whiten_bias_steps, 1))
    whiten_bias = freeze_after(sgd(bias_lr, falling), whiten_bias_steps)
  transforms = {
      'muon': muon(learning_rate, momentum=muon_momentum, nesterov=nesterov,
                   ns_steps=muon_ns_steps, normalize=muon_normalize),
      'bias': sgd(bias_lr),
      'head': sgd(head_lr),
      'whiten_bias': whiten_bias,
      'frozen': optax.set_to_zero(),
  }
  return optax.multi_transform(transforms, lambda p: muon_labels(
      p, freeze_bn_scale, freeze_whiten_kernel, whiten_layer))


# ---------------------------------------------------------------- lookahead

# Fields in alphabetical order: a restore from checkpoint metadata (evaluate,
# predict) sees NamedTuples as dicts with sorted keys, and the checkpoint's
# digest is over the leaves in tree order.
class LookaheadState(NamedTuple):
  count: jax.Array    # Updates done before this one.
  inner: Any
  slow: Any
  started: jax.Array  # Whether `slow` holds the slow copy yet.


def lookahead_start_step(opt: Any, steps_per_epoch: int) -> int:
  return round(opt.lookahead_start_epochs * steps_per_epoch)


def lookahead_warning(opt: Any, steps_per_epoch: int,
                      total_steps: int) -> str | None:
  """What to tell a run whose lookahead would start after its last step (a
  config's start, in epochs, kept when --config.num_epochs shortens the run)."""
  start = lookahead_start_step(opt, steps_per_epoch)
  if opt.lookahead_every > 0 and start >= total_steps:
    return (f'lookahead starts at step {start} (optimizer.lookahead_start_epochs='
            f'{opt.lookahead_start_epochs}), after the last of {total_steps}: it will not '
            f'run; set --config.optimizer.lookahead_start_epochs to about 30% of the epochs')
  return None


def lookahead(inner: optax.GradientTransformation, *, total_steps: int, steps_per_epoch: int,
              every: int = 5, start_step: int = 0, base: float = 0.95, power: float = 3.0,
              sync_every_epoch: bool = True) -> optax.GradientTransformation:
  """airbench's lookahead around `inner`, on the parameters only.

  After update n (1-based) with n - 1 >= start_step and n % every == 0: the
  first time, the slow copy is the weights; afterwards, with
  rho = base**every * (n / total_steps)**power,
  slow <- rho * slow + (1 - rho) * weights and weights <- slow. Once the slow
  copy exists, the weights also take it at each epoch's end
  (`sync_every_epoch`, n % steps_per_epoch == 0, as airbench94.py) and at
  n == total_steps. Its updates are new weights minus `params`, so it needs
  the params (`TrainState.apply_gradients` passes them). airbench also
  averages BatchNorm's running statistics; this does not (they live outside
  the optimizer).
  """
  def init(params):
    return LookaheadState(count=jnp.zeros([], jnp.int32), inner=inner.init(params),
                          slow=jax.tree.map(jnp.zeros_like, params),
                          started=jnp.zeros([], bool))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError('lookahead needs the params in update()')
    updates, inner_state = inner.update(updates, state.inner, params)
    fast = optax.apply_updates(params, updates)
    n = state.count + 1
    sync = (n - 1 >= start_step) & (n % every == 0)
    first = sync & ~state.started
    rho = base ** every * (n.astype(jnp.float32) / total_steps) ** power
    # s + (1 - rho) * (w - s), as torch's lerp_: exact where s == w, so a
    # frozen leaf stays bit for bit.
    slow = jax.tree.map(
        lambda s, w: jnp.where(first, w, jnp.where(sync, s + (1 - rho) * (w - s), s)),
        state.slow, fast)
    started = state.started | sync
    take = sync | (n == total_steps)
    if sync_every_epoch:
      take = take | (n % steps_per_epoch == 0)
    take = started & take
    updates = jax.tree.map(lambda s, u, p: jnp.where(take, s - p, u), slow, updates, params)
    return updates, LookaheadState(count=n, inner=inner_state, slow=slow, started=started)
  return optax.GradientTransformation(init, update)
