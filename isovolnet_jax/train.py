"""Training and evaluation: `train_and_evaluate(config, workdir)`.

Data parallel with explicit shardings: a mesh over every device of every host
(`config.mesh_shape` / `mesh_axes`, by default 1-D: `data`), the batch split
along its `data` axis and the train state replicated. `jax.jit` inserts the
gradient all-reduce itself. Several hosts: each process feeds the rows of the
global batch that its own devices hold (`DataShard`). Training resumes from
the newest checkpoint in the workdir by itself.
"""

import functools
import json
import logging
import math
import signal
import time
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from clu import metric_writers
from flax.training import train_state
from jax.experimental import multihost_utils
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from isovolnet_jax import checkpointing
from isovolnet_jax import inference
from isovolnet_jax import input_pipeline
from isovolnet_jax import models
from isovolnet_jax import plots
from isovolnet_jax.errors import InputError

class TrainState(train_state.TrainState):
  batch_stats: Any


# ---------------------------------------------------------------- optimizer

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


# ---------------------------------------------------------------- steps

def cross_entropy(logits, labels, num_classes: int, label_smoothing: float):
  targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def split_micro_batches(x, k: int, mesh=None):
  """[B, ...] -> [k, B/k, ...]: micro-batch i is rows i, i+k, i+2k, ...

  Strided, not contiguous: with the batch sharded along `data` in contiguous
  blocks, every device holds B/(k*devices) rows of every micro-batch, so each
  micro-batch is spread over all devices and the split moves no data.
  """
  x = jnp.swapaxes(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 0, 1)
  if mesh is not None:
    x = jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(None, 'data')))
  return x


def train_step(state: TrainState, images, labels, base_key, *, config, num_classes,
               mesh=None):
  """One optimizer step on a global batch of uint8 images (sharded along `data`).

  With `config.grad_accum_steps=k > 1` the batch is split into k micro-batches
  (`split_micro_batches`) run one after the other by `lax.scan`; their
  gradients are averaged into one update, so the activations held at a time
  are those of batch_size / k images. The augmentation is drawn for the whole
  batch before the split, so it does not depend on k; micro-batch i's dropout
  key is fold_in(dropout key, i).

  BatchNorm under accumulation: each micro-batch is normalized with its own
  mean and variance (as a smaller batch on fewer devices would be), and the
  running statistics are updated once per micro-batch, in order (micro-batch
  i starts from i-1's). So k micro-batches give exactly the update of one big
  batch only for models without batch statistics (model.norm='none');
  with BatchNorm they match k smaller batches, and the running averages
  move k momentum steps per optimizer step. `mesh` (optional) pins the
  micro-batches' sharding along `data`.
  """
  key = jax.random.fold_in(base_key, state.step)
  aug_key, dropout_key = jax.random.split(key)
  if config.data.get('pipeline', 'memory') == 'memory':  # 'stream' augments on the host.
    images = input_pipeline.augment(aug_key, images, config.augment.crop_padding,
                                    config.augment.flip)
  # float32 here; each model casts its input to its compute dtype (bf16 or f32).
  images = input_pipeline.normalize(images)

  def loss_fn(params, batch_stats, images, labels, dropout_key):
    logits, updates = state.apply_fn(
        {'params': params, 'batch_stats': batch_stats}, images, train=True,
        rngs={'dropout': dropout_key}, mutable=['batch_stats'])
    loss = cross_entropy(logits, labels, num_classes, config.label_smoothing).mean()
    return loss, (logits, updates['batch_stats'])

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  k = config.get('grad_accum_steps', 1)
  if k == 1:
    (loss, (logits, batch_stats)), grads = grad_fn(
        state.params, state.batch_stats, images, labels, dropout_key)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  else:
    def micro_step(carry, xs):
      grad_sum, batch_stats = carry
      x, y, i = xs
      (loss, (logits, batch_stats)), grads = grad_fn(
          state.params, batch_stats, x, y, jax.random.fold_in(dropout_key, i))
      grad_sum = jax.tree.map(jnp.add, grad_sum, grads)
      return (grad_sum, batch_stats), (loss, jnp.sum(jnp.argmax(logits, -1) == y))

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    (grad_sum, batch_stats), (losses, correct) = jax.lax.scan(
        micro_step, (zeros, state.batch_stats),
        (split_micro_batches(images, k, mesh), split_micro_batches(labels, k, mesh),
         jnp.arange(k)))
    # Equal-sized micro-batches: the mean of their mean losses is the batch's.
    grads = jax.tree.map(lambda g: g / k, grad_sum)
    loss = jnp.mean(losses)
    accuracy = jnp.sum(correct) / labels.shape[0]
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  return state, {'loss': loss, 'accuracy': accuracy}


# Evaluation's logits (eval_flip included) are those of evaluate and predict:
# one function, in inference.py, which predict imports without TensorFlow.
eval_logits = inference.eval_logits


def eval_step(state: TrainState, images, labels, mask, *, num_classes, flip=False):
  """Sums (not means) so that padded batches add up exactly."""
  logits = eval_logits(state.apply_fn,
                       {'params': state.params, 'batch_stats': state.batch_stats},
                       images, flip)
  loss = cross_entropy(logits, labels, num_classes, 0.0)
  correct = jnp.argmax(logits, -1) == labels
  return {'loss': jnp.sum(loss * mask), 'correct': jnp.sum(correct * mask),
          'count': jnp.sum(mask)}


# ---------------------------------------------------------------- setup

def mesh_sizes(mesh_shape, mesh_axes, device_count: int) -> tuple[int, ...]:
  """`config.mesh_shape` with its -1 resolved, checked against the devices."""
  shape, axes = tuple(mesh_shape), tuple(mesh_axes)
  where = f'config.mesh_shape={shape} with config.mesh_axes={axes}'
  if len(shape) != len(axes):
    raise InputError(f'{where}: give one size per axis name')
  if 'data' not in axes or len(set(axes)) != len(axes):
    raise InputError(f"{where}: the axis names must be distinct and include 'data' "
                     f"(the batch is sharded along it)")
  if any(not isinstance(s, int) or (s < 1 and s != -1) for s in shape) or \
      shape.count(-1) > 1:
    raise InputError(f'{where}: sizes must be positive integers, with at most one '
                     f'-1 (= the rest of the devices)')
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape and device_count % known == 0:
    shape = tuple(device_count // known if s == -1 else s for s in shape)
  if math.prod(shape) != device_count:
    raise InputError(f'{where} does not cover the {device_count} devices '
                     f'({jax.process_count()} processes); make the product of '
                     f'mesh_shape {device_count} or use -1 for one axis')
  return shape


def make_mesh(batch_size: int, mesh_shape=(-1,), mesh_axes=('data',),
              grad_accum_steps: int = 1) -> jax.sharding.Mesh:
  """The device mesh; the batch must split evenly along `data` (and into
  `grad_accum_steps` micro-batches, each split along `data` too)."""
  n = jax.device_count()
  shape = mesh_sizes(mesh_shape, mesh_axes, n)
  data = shape[tuple(mesh_axes).index('data')]
  if not isinstance(grad_accum_steps, int) or grad_accum_steps < 1:
    raise InputError(f'grad_accum_steps={grad_accum_steps} must be an integer >= 1')
  need = grad_accum_steps * data
  if batch_size % need:
    devices = f'the {data} devices' + (
        '' if data == n else " of the mesh's data axis")
    by = (devices if grad_accum_steps == 1 else
          f'grad_accum_steps={grad_accum_steps} micro-batches x {devices}')
    raise InputError(f'batch_size={batch_size} is not divisible by {by}; set '
                     f'--config.batch_size to a multiple of {need}')
  # Auto axes: the model code carries no sharding annotations and GSPMD
  # propagates the batch sharding through it. (Explicit axes, the default of
  # jax.make_mesh, would ask every reshape and reduction to name its sharding.)
  return jax.make_mesh(shape, tuple(mesh_axes),
                       axis_types=(AxisType.Auto,) * len(shape))


class DataShard:
  """Which rows of each global batch this process feeds to its devices.

  The batch is split into `mesh.shape['data']` equal blocks, block j going to
  the devices at position j of the `data` axis (and replicated along the
  other axes). This process feeds the blocks its own devices hold: usually
  one contiguous range, slice `index` of `count` (what `input_pipeline`'s
  process_index / process_count select); if a mesh puts them elsewhere
  (`local_rows`), the process takes the whole batch and picks its blocks.
  Either way the global array is the same batch, whatever the hosts.
  """

  def __init__(self, mesh: jax.sharding.Mesh):
    self.mesh, self.size = mesh, mesh.shape['data']
    axis = mesh.axis_names.index('data')
    me = jax.process_index()
    self.blocks = sorted({pos[axis] for pos, d in np.ndenumerate(mesh.devices)
                          if d.process_index == me})
    m = len(self.blocks)
    self.contiguous = (self.blocks == list(range(self.blocks[0], self.blocks[0] + m))
                       and self.blocks[0] % m == 0 and self.size % m == 0)
    self.index, self.count = ((self.blocks[0] // m, self.size // m) if self.contiguous
                              else (0, 1))

  def local_rows(self, *arrays):
    """Whole-batch arrays -> this process's rows (a no-op when contiguous)."""
    if self.contiguous:
      return arrays
    def pick(a):
      b = len(a) // self.size
      return np.concatenate([a[j * b:(j + 1) * b] for j in self.blocks])
    return tuple(pick(a) for a in arrays)

  def to_global(self, *local_arrays):
    """This process's rows -> global arrays sharded along `data`."""
    sharding = NamedSharding(self.mesh, P('data'))
    rows = len(local_arrays[0]) * self.size // len(self.blocks)
    return [jax.make_array_from_process_local_data(sharding, a, (rows, *a.shape[1:]))
            for a in local_arrays]


def create_train_state(config, model, image_shape, tx, key, replicated):
  @functools.partial(jax.jit, out_shardings=replicated)
  def init(key):
    variables = model.init({'params': key}, jnp.zeros((1, *image_shape)), train=False)
    return TrainState.create(apply_fn=model.apply, params=variables['params'],
                             batch_stats=variables.get('batch_stats', {}), tx=tx)
  return init(key)


def to_global(mesh, *local_arrays):
  """Each process's slice of the batch -> one array sharded along `data`."""
  return DataShard(mesh).to_global(*local_arrays)


# ---------------------------------------------------------------- logging

class MetricLog:
  """TensorBoard events (clu) + WORKDIR/metrics.jsonl, written by process 0."""

  def __init__(self, workdir: Path):
    self.is_main = jax.process_index() == 0
    self.writer = metric_writers.create_default_writer(
        str(workdir), just_logging=not self.is_main)
    self.path = workdir / 'metrics.jsonl'

  def write(self, step: int, split: str, metrics: dict):
    metrics = {k: float(v) for k, v in metrics.items()}
    self.writer.write_scalars(step, {f'{split}/{k}': v for k, v in metrics.items()})
    if self.is_main:
      with self.path.open('a') as f:
        f.write(json.dumps({'step': step, 'split': split, **metrics}) + '\n')

  def close(self):
    self.writer.flush()
    self.writer.close()


def evaluate(state, eval_fn, mesh, data, split, batch_size) -> dict:
  totals = {'loss': 0.0, 'correct': 0.0, 'count': 0.0}
  shard = DataShard(mesh)
  for x, y, m in data.eval_batches(split, batch_size, shard.index, shard.count):
    out = jax.device_get(eval_fn(state, *shard.to_global(*shard.local_rows(x, y, m))))
    for k in totals:
      totals[k] += float(out[k])
  return {'loss': totals['loss'] / totals['count'],
          'accuracy': totals['correct'] / totals['count']}


@jax.jit
def params_finite(params) -> jax.Array:
  return jnp.all(jnp.array([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]))


def _agreed_signal(signals: "_Signals", step: int, every: int) -> int | None:
  """The stop signal, if any; with several hosts, process 0's, at log steps."""
  if jax.process_count() == 1:
    return signals.received
  if step % every:
    return None
  got = multihost_utils.broadcast_one_to_all(np.asarray(signals.received or 0))
  return int(got) or None


def _out_of_time(t_start: float, limit_minutes: float) -> bool:
  """Whether the time budget is spent; every host takes process 0's answer."""
  if limit_minutes <= 0:
    return False
  spent = time.time() - t_start > 60 * limit_minutes
  if jax.process_count() > 1:
    spent = bool(multihost_utils.broadcast_one_to_all(np.asarray(spent)))
  return spent


def _eta(seconds: float) -> str:
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f'{h}:{m:02d}:{s:02d}'


# ---------------------------------------------------------------- main loop

class Preempted(Exception):
  """SIGTERM/SIGINT arrived: a checkpoint was saved; rerun to resume."""

  def __init__(self, step: int, signum: int):
    super().__init__(f'stopped by signal {signum} at step {step}; the checkpoint '
                     f'is saved, rerun the same command to resume')
    self.step, self.signum = step, signum


class _Signals:
  """Records SIGTERM/SIGINT (preemption, Ctrl-C) for the loop to act on."""

  def __init__(self):
    self.received = None

  def __enter__(self):
    self.previous = {s: signal.signal(s, self._handle)
                     for s in (signal.SIGTERM, signal.SIGINT)}
    return self

  def _handle(self, signum, frame):
    del frame
    self.received = signum

  def __exit__(self, *exc):
    for s, handler in self.previous.items():
      signal.signal(s, handler)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (resuming from workdir if it has checkpoints); returns final metrics.

  Raises Preempted after saving a checkpoint if SIGTERM or SIGINT arrives.
  """
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    with checkpointing.WorkdirLock(workdir), _Signals() as signals:
      return _train_and_evaluate(config, workdir, signals)
  with _Signals() as signals:
    return _train_and_evaluate(config, workdir, signals)


def _train_and_evaluate(config, workdir: Path, signals: _Signals) -> dict:
  if config.dtype not in models.DTYPES:
    raise InputError(f"unknown dtype={config.dtype!r}; choose 'float32' or 'bfloat16'")
  accum = config.get('grad_accum_steps', 1)
  mesh = make_mesh(config.batch_size, config.get('mesh_shape', (-1,)),
                   config.get('mesh_axes', ('data',)), accum)
  shard = DataShard(mesh)
  data = input_pipeline.dataset(config)
  model = models.create_model(config.model, data.num_classes, models.DTYPES[config.dtype])

  num = {split: data.num_examples(split) for split in ('train', 'val', 'test')}
  steps_per_epoch = input_pipeline.steps_per_epoch(num['train'], config.batch_size)
  if steps_per_epoch == 0:
    raise InputError(f'batch_size={config.batch_size} is larger than the '
                     f'{num["train"]} training images; lower it')
  total_steps = (config.num_train_steps if config.num_train_steps > 0
                 else int(config.num_epochs * steps_per_epoch))
  eval_every = max(1, round(config.eval_every_epochs * steps_per_epoch))
  n_data = mesh.shape['data']
  eval_batch = math.ceil(config.eval_batch_size / n_data) * n_data

  schedule = create_learning_rate_schedule(config.optimizer, total_steps, steps_per_epoch)
  tx = create_optimizer(config.optimizer, schedule)
  replicated = NamedSharding(mesh, P())
  base_key = jax.random.key(config.seed)
  init_key, step_key = jax.random.split(base_key)
  state = create_train_state(config, model, data.image_shape, tx, init_key, replicated)
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  logging.info('%s: %d parameters, input %s, %d classes, %d devices, %d steps '
               '(%d per epoch).', config.model.name, num_params, data.image_shape,
               data.num_classes, jax.device_count(), total_steps, steps_per_epoch)
  logging.info('Mesh %s over %d process(es); this one feeds batch slice %d of %d; '
               '%d micro-batch(es) per step; compute dtype %s.', dict(mesh.shape),
               jax.process_count(), shard.index, shard.count, accum, config.dtype)

  if jax.process_index() == 0:
    (workdir / 'config.json').write_text(config.to_json_best_effort(indent=2))
    (workdir / 'dataset.json').write_text(json.dumps({
        'class_names': data.class_names, 'image_shape': data.image_shape,
        'num_train': num['train'], 'num_val': num['val'],
        'num_test': num['test']}, indent=2))

  manager = checkpointing.manager(workdir, config.keep_checkpoints)
  state, resumed = checkpointing.restore_newest_readable(manager, state)
  if resumed is not None:
    logging.info('Resumed from the checkpoint at step %d.', resumed)
  start_step = int(state.step)

  p_train = jax.jit(functools.partial(train_step, config=config,
                                      num_classes=data.num_classes, mesh=mesh),
                    out_shardings=(replicated, replicated), donate_argnums=0)
  p_eval = jax.jit(functools.partial(eval_step, num_classes=data.num_classes,
                                     flip=config.get('eval_flip', False)))

  # Several CPU devices of one process share one thread pool. With steps
  # queued ahead (async dispatch), a device's next step can hold a pool thread
  # while the other device's current step waits for one, and the gradient
  # all-reduce never meets: seen here as an abort ("Termination timeout for
  # all reduce") after 1,500 steps of configs/cifar10_fast_cpu.py; cf.
  # jax-ml/jax#25861. Waiting for each step cost nothing measurable there
  # (FastCNN, batch 128: 767-774 img/s waiting, 769-778 not).
  one_step_at_a_time = (jax.default_backend() == 'cpu' and
                        len(jax.local_devices()) > 1)
  log = MetricLog(workdir)
  # The position is a function of the step in both pipelines: resuming at
  # start_step reads what an uninterrupted run would have read.
  batches = ((step, *shard.to_global(*shard.local_rows(images, labels)))
             for step, images, labels in data.train_batches(
                 seed=config.seed, batch_size=config.batch_size, start_step=start_step,
                 process_index=shard.index, process_count=shard.count))
  if config.data.get('pipeline', 'memory') == 'stream':
    from isovolnet_jax import input_stream  # pylint: disable=import-outside-toplevel
    batches = input_stream.prefetch(batches, config.data.prefetch)
  pending, t0, t_start, last_saved = [], time.time(), time.time(), manager.latest_step()
  val = None

  def check_finite(step):
    losses = [float(m['loss']) for m in jax.device_get(pending)]
    if not all(map(math.isfinite, losses)):
      where = (f'step {last_saved} in {workdir / "checkpoints"}'
               if last_saved is not None else 'none')
      raise InputError(f'training diverged: loss is {losses[-1]} at step {step}; '
                       f'last good checkpoint: {where}; lower '
                       f'--config.optimizer.learning_rate')

  for step, images, labels in batches:
    if step >= total_steps:
      break
    state, metrics = p_train(state, images, labels, step_key)
    if one_step_at_a_time:
      jax.block_until_ready(metrics)
    pending.append(metrics)
    done = step + 1
    if done % config.log_every_steps == 0 or done == total_steps:
      check_finite(done)
      train = {k: float(np.mean([m[k] for m in jax.device_get(pending)]))
               for k in ('loss', 'accuracy')}
      elapsed = time.time() - t0
      ips = len(pending) * config.batch_size / elapsed
      log.write(done, 'train', {**train, 'learning_rate': schedule(done - 1),
                                'images_per_sec': ips})
      logging.info('step %d/%d  loss %.4f  accuracy %.4f  %.0f img/s  ETA %s',
                   done, total_steps, train['loss'], train['accuracy'], ips,
                   _eta((total_steps - done) * config.batch_size / ips))
      pending, t0 = [], time.time()
    out_of_time = (done % config.log_every_steps == 0 and
                   _out_of_time(t_start, config.max_train_time_minutes))
    if out_of_time:  # Equal-compute runs: stop here as if this were the end.
      logging.info('max_train_time_minutes=%s reached at step %d; stopping.',
                   config.max_train_time_minutes, done)
    stop_signal = _agreed_signal(signals, done, config.log_every_steps)
    last = done == total_steps or out_of_time or stop_signal is not None
    val, t_pause = None, time.time()
    if (done % eval_every == 0 or last) and num['val']:
      val = evaluate(state, p_eval, mesh, data, 'val', eval_batch)
      log.write(done, 'val', val)
      if jax.process_index() == 0:
        plots.learning_curves(workdir, steps_per_epoch)
    if done % config.checkpoint_every_steps == 0 or last:
      if pending:
        check_finite(done)
      if not params_finite(state.params):
        raise InputError(f'training diverged: parameters are not finite at step {done}; '
                         f'last good checkpoint: step {last_saved}; lower '
                         f'--config.optimizer.learning_rate')
      checkpointing.save(manager, done, state, val and val['accuracy'])
      last_saved = done
    t0 += time.time() - t_pause  # img/s counts training time only.
    if stop_signal is not None:
      manager.wait_until_finished()
      manager.close()
      log.close()
      raise Preempted(done, stop_signal)
    if out_of_time:
      break

  final = {}
  if val is not None:
    final['val'] = val
  for split in ('val', 'test'):
    if num[split] and split not in final:
      final[split] = evaluate(state, p_eval, mesh, data, split, eval_batch)
      log.write(int(state.step), split, final[split])
  if jax.process_index() == 0:
    plots.learning_curves(workdir, steps_per_epoch)
  for split, m in final.items():
    logging.info('%s at step %d: loss %.4f accuracy %.4f', split, int(state.step),
                 m['loss'], m['accuracy'])
  manager.wait_until_finished()
  manager.close()
  log.close()
  logging.info('Done in %.0f s.', time.time() - t_start)
  return final
