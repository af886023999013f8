"""Training and evaluation: the steps, and the loop `train_and_evaluate(config, workdir)`.

Data parallel (`sharding.py`): the batch is split along the mesh's `data`
axis and the train state replicated; `jax.jit` inserts the gradient
all-reduce itself. `make_train_step` builds the one jitted train step that
training, the benchmark and the efficiency report run. Training resumes from
the newest checkpoint in the workdir by itself.
"""

import contextlib
import functools
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import NamedSharding, PartitionSpec as P

from isovolnet_jax import checkpointing
from isovolnet_jax import inference
from isovolnet_jax import input_pipeline
from isovolnet_jax import logs
from isovolnet_jax import models
from isovolnet_jax import optim
from isovolnet_jax import plots
from isovolnet_jax import preemption
from isovolnet_jax import sharding
from isovolnet_jax.errors import InputError, Preempted


class TrainState(train_state.TrainState):
  batch_stats: Any


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

  def unsmoothed(logits, labels):
    """The loss without label smoothing, as the validation loss is measured."""
    if not config.label_smoothing:
      return jnp.zeros(())
    return cross_entropy(logits, labels, num_classes, 0.0).mean()

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  k = config.get('grad_accum_steps', 1)
  if k == 1:
    (loss, (logits, batch_stats)), grads = grad_fn(
        state.params, state.batch_stats, images, labels, dropout_key)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
    plain_loss = unsmoothed(logits, labels)
  else:
    def micro_step(carry, xs):
      grad_sum, batch_stats = carry
      x, y, i = xs
      (loss, (logits, batch_stats)), grads = grad_fn(
          state.params, batch_stats, x, y, jax.random.fold_in(dropout_key, i))
      grad_sum = jax.tree.map(jnp.add, grad_sum, grads)
      return (grad_sum, batch_stats), (loss, jnp.sum(jnp.argmax(logits, -1) == y),
                                       unsmoothed(logits, y))

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    (grad_sum, batch_stats), (losses, correct, plain_losses) = jax.lax.scan(
        micro_step, (zeros, state.batch_stats),
        (split_micro_batches(images, k, mesh), split_micro_batches(labels, k, mesh),
         jnp.arange(k)))
    # Equal-sized micro-batches: the mean of their mean losses is the batch's.
    grads = jax.tree.map(lambda g: g / k, grad_sum)
    loss = jnp.mean(losses)
    accuracy = jnp.sum(correct) / labels.shape[0]
    plain_loss = jnp.mean(plain_losses)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  metrics = {'loss': loss, 'accuracy': accuracy}
  if config.label_smoothing:  # Without it the two losses are one.
    metrics['loss_unsmoothed'] = plain_loss
  return state, metrics


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


def create_train_state(config, model, image_shape, tx, key, replicated):
  @functools.partial(jax.jit, out_shardings=replicated)
  def init(key):
    variables = model.init({'params': key}, jnp.zeros((1, *image_shape)), train=False)
    return TrainState.create(apply_fn=model.apply, params=variables['params'],
                             batch_stats=variables.get('batch_stats', {}), tx=tx)
  return init(key)


def make_train_step(config: ml_collections.ConfigDict, num_classes: int,
                    mesh: jax.sharding.Mesh):
  """`train_step` jitted as training runs it: `step(state, images, labels, key)`
  with images and labels sharded along `data` (`sharding.DataShard`), the
  new state and metrics replicated, and the input state donated (its buffers
  are reused: keep only the returned state)."""
  replicated = NamedSharding(mesh, P())
  return jax.jit(functools.partial(train_step, config=config, num_classes=num_classes,
                                   mesh=mesh),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def evaluate(state, eval_fn, mesh, data, split, batch_size) -> dict:
  totals = {'loss': 0.0, 'correct': 0.0, 'count': 0.0}
  shard = sharding.DataShard(mesh)
  for x, y, m in data.eval_batches(split, batch_size, shard.index, shard.count):
    out = jax.device_get(eval_fn(state, *shard.to_global(*shard.local_rows(x, y, m))))
    for k in totals:
      totals[k] += float(out[k])
  return {'loss': totals['loss'] / totals['count'],
          'accuracy': totals['correct'] / totals['count']}


@jax.jit
def params_finite(params) -> jax.Array:
  return jnp.all(jnp.array([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]))



# ---------------------------------------------------------------- the loop


class StepTimer:
  """Steady-state images/s and ETA: training time only.

  A process's first step compiles the train step, so the clock starts once
  it has run; evaluation and checkpointing run inside `paused()`. Between
  two log lines the rate is over the steps timed since the previous one (if
  there were none, e.g. log_every_steps=1, over the wall time, compilation
  included).
  """

  def __init__(self, batch_size: int):
    self.batch_size = batch_size
    self.steps, self.seconds, self.running_since = 0, 0.0, None
    self.wall_since, self.wall_steps, self.started = time.monotonic(), 0, False

  def step_done(self, metrics):
    self.wall_steps += 1
    if not self.started:
      jax.block_until_ready(metrics)  # Compiled and run: start the clock.
      self.started, self.running_since = True, time.monotonic()
    else:
      self.steps += 1

  def _stop(self):
    if self.running_since is not None:
      self.seconds += time.monotonic() - self.running_since
      self.running_since = None

  @contextlib.contextmanager
  def paused(self):
    self._stop()
    try:
      yield
    finally:
      if self.started:
        self.running_since = time.monotonic()

  def images_per_sec(self) -> float:
    """The rate since the previous call; call it once the steps are done."""
    self._stop()
    if self.steps:
      rate = self.steps * self.batch_size / self.seconds
    else:
      rate = self.wall_steps * self.batch_size / (time.monotonic() - self.wall_since)
    self.steps, self.seconds, self.running_since = 0, 0.0, time.monotonic()
    self.wall_since, self.wall_steps = time.monotonic(), 0
    return rate


def _eta(seconds: float) -> str:
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f'{h}:{m:02d}:{s:02d}'


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (resuming from workdir if it has checkpoints); returns final metrics.

  Raises Preempted after saving a checkpoint if SIGTERM or SIGINT arrives.
  """
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  lock = (checkpointing.WorkdirLock(workdir) if jax.process_index() == 0
          else contextlib.nullcontext())
  with lock, preemption.Signals() as signals:
    return _train_and_evaluate(config, workdir, signals)


def _describe(config, workdir: Path, data, num: dict) -> None:
  """config.json and dataset.json, for `checkpointing.load_run`."""
  if jax.process_index() == 0:
    (workdir / 'config.json').write_text(config.to_json_best_effort(indent=2))
    (workdir / 'dataset.json').write_text(json.dumps({
        'class_names': data.class_names, 'image_shape': data.image_shape,
        'num_train': num['train'], 'num_val': num['val'],
        'num_test': num['test']}, indent=2))


def _train_and_evaluate(config, workdir: Path, signals: preemption.Signals) -> dict:
  if config.dtype not in models.DTYPES:
    raise InputError(f"unknown dtype={config.dtype!r}; choose 'float32' or 'bfloat16'")
  accum = config.get('grad_accum_steps', 1)
  mesh = sharding.make_mesh(config.batch_size, config.get('mesh_shape', (-1,)),
                            config.get('mesh_axes', ('data',)), accum)
  shard = sharding.DataShard(mesh)
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

  schedule = optim.create_learning_rate_schedule(config.optimizer, total_steps,
                                                 steps_per_epoch)
  tx = optim.create_optimizer(config.optimizer, schedule)
  init_key, step_key = jax.random.split(jax.random.key(config.seed))
  state = create_train_state(config, model, data.image_shape, tx, init_key,
                             NamedSharding(mesh, P()))
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  logging.info('%s: %d parameters, input %s, %d classes, %d devices, %d steps '
               '(%d per epoch).', config.model.name, num_params, data.image_shape,
               data.num_classes, jax.device_count(), total_steps, steps_per_epoch)
  logging.info('Mesh %s over %d process(es); this one feeds batch slice %d of %d; '
               '%d micro-batch(es) per step; compute dtype %s.', dict(mesh.shape),
               jax.process_count(), shard.index, shard.count, accum, config.dtype)
  _describe(config, workdir, data, num)

  manager = checkpointing.manager(workdir, config.keep_checkpoints)
  state, resumed = checkpointing.restore_newest_readable(manager, state)
  if resumed is not None:
    logging.info('Resumed from the checkpoint at step %d.', resumed)
  start_step = int(state.step)

  p_train = make_train_step(config, data.num_classes, mesh)
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
  # The position is a function of the step in both pipelines: resuming at
  # start_step reads what an uninterrupted run would have read.
  batches = ((step, *shard.to_global(*shard.local_rows(images, labels)))
             for step, images, labels in data.train_batches(
                 seed=config.seed, batch_size=config.batch_size, start_step=start_step,
                 process_index=shard.index, process_count=shard.count))
  if config.data.get('pipeline', 'memory') == 'stream':
    from isovolnet_jax import input_stream  # pylint: disable=import-outside-toplevel
    batches = input_stream.prefetch(batches, config.data.prefetch)

  log = logs.MetricLog(workdir)
  timer = StepTimer(config.batch_size)
  t_start = time.time()  # max_train_time_minutes counts from here.
  pending, last_saved, val = [], manager.latest_step(), None

  def check_finite(step):
    losses = [float(m['loss']) for m in jax.device_get(pending)]
    if not all(map(math.isfinite, losses)):
      where = (f'step {last_saved} in {workdir / "checkpoints"}'
               if last_saved is not None else 'none')
      raise InputError(f'training diverged: loss is {losses[-1]} at step {step}; '
                       f'last good checkpoint: {where}; lower '
                       f'--config.optimizer.learning_rate')

  def log_train(step):
    """One progress line; metrics.jsonl gets the mean of the steps since the last."""
    check_finite(step)
    means = {k: float(np.mean([m[k] for m in jax.device_get(pending)]))
             for k in pending[0]}
    ips = timer.images_per_sec()
    log.write(step, 'train', {**means, 'learning_rate': schedule(step - 1),
                              'images_per_sec': ips})
    logging.info('step %d/%d  loss %.4f  accuracy %.4f  %.0f img/s  ETA %s',
                 step, total_steps, means['loss'], means['accuracy'], ips,
                 _eta((total_steps - step) * config.batch_size / ips))
    pending.clear()

  def evaluate_val(step):
    result = evaluate(state, p_eval, mesh, data, 'val', eval_batch)
    log.write(step, 'val', result)
    if jax.process_index() == 0:
      plots.learning_curves(workdir, steps_per_epoch)
    return result

  def save(step, val):
    if pending:
      check_finite(step)
    if not params_finite(state.params):
      raise InputError(f'training diverged: parameters are not finite at step {step}; '
                       f'last good checkpoint: step {last_saved}; lower '
                       f'--config.optimizer.learning_rate')
    checkpointing.save(manager, step, state, val and val['accuracy'])

  try:
    for step, images, labels in batches:
      if step >= total_steps:
        break
      state, metrics = p_train(state, images, labels, step_key)
      if one_step_at_a_time:
        jax.block_until_ready(metrics)
      timer.step_done(metrics)
      pending.append(metrics)
      done = step + 1
      at_log_step = done % config.log_every_steps == 0
      if at_log_step or done == total_steps:
        log_train(done)
      out_of_time = at_log_step and preemption.out_of_time(
          t_start, config.max_train_time_minutes)
      if out_of_time:  # Equal-compute runs: stop here as if this were the end.
        logging.info('max_train_time_minutes=%s reached at step %d; stopping.',
                     config.max_train_time_minutes, done)
      stop_signal = preemption.agreed_signal(signals, done, config.log_every_steps)
      last = done == total_steps or out_of_time or stop_signal is not None
      val = None
      with timer.paused():
        if (done % eval_every == 0 or last) and num['val']:
          val = evaluate_val(done)
        # Every evaluation gets a checkpoint, so the best by val accuracy is
        # chosen among all of them.
        if val is not None or done % config.checkpoint_every_steps == 0 or last:
          save(done, val)
          last_saved = done
      if stop_signal is not None:
        raise Preempted(done, stop_signal)
      if out_of_time:
        break

    final = {} if val is None else {'val': val}
    for split in ('val', 'test'):
      if num[split] and split not in final:
        final[split] = evaluate(state, p_eval, mesh, data, split, eval_batch)
        log.write(int(state.step), split, final[split])
    if jax.process_index() == 0:
      plots.learning_curves(workdir, steps_per_epoch)
    for split, m in final.items():
      logging.info('%s at step %d: loss %.4f accuracy %.4f', split, int(state.step),
                   m['loss'], m['accuracy'])
  finally:
    manager.wait_until_finished()
    manager.close()
    log.close()
  logging.info('Done in %.0f s.', time.time() - t_start)
  return final
