"""Training and evaluation: the steps, and the loop `train_and_evaluate(config, workdir)`.

Data parallel (`sharding.py`): the batch is split along the mesh's `data`
axis and the train state replicated; `jax.jit` inserts the gradient
all-reduce itself. `make_train_step` builds the one jitted train step that
training, the benchmark and the efficiency report run. Training resumes from
the newest checkpoint in the workdir by itself.
"""

import contextlib
import dataclasses
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
from isovolnet_jax import config_defaults
from isovolnet_jax import data
from isovolnet_jax import inference
from isovolnet_jax import logs
from isovolnet_jax.losses import cross_entropy
from isovolnet_jax import models
from isovolnet_jax import optim
from isovolnet_jax import plots
from isovolnet_jax import preemption
from isovolnet_jax import sharding
from isovolnet_jax.airbench import optim as airbench_optim
from isovolnet_jax.airbench import whitening
from isovolnet_jax.errors import InputError, Preempted


class TrainState(train_state.TrainState):
  batch_stats: Any


# ---------------------------------------------------------------- steps

FINITE = 'params_finite'  # The train step's metric: all parameters are finite.


def params_finite(params) -> jax.Array:
  return jnp.all(jnp.array([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]))


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


def micro_batch_keys(key: jax.Array, k: int) -> jax.Array:
  """The micro-batches' dropout keys: fold_in(key, i) for micro-batch i, or
  `key` itself when there is one, so that a step without accumulation draws
  its dropout from the step's own key."""
  if k == 1:
    return key[None]
  return jax.vmap(functools.partial(jax.random.fold_in, key))(jnp.arange(k))


def train_step(state: TrainState, images, labels, base_key, *, config, num_classes,
               mesh=None):
  """One optimizer step on a global batch of uint8 images (sharded along `data`).

  The batch is split into `config.grad_accum_steps` = k micro-batches
  (`split_micro_batches`; k=1: the whole batch) run one after the other by
  `lax.scan`; their gradients are averaged into one update, so the
  activations held at a time are those of batch_size / k images. The
  augmentation is drawn for the whole batch before the split, so it does not
  depend on k.

  BatchNorm under accumulation: each micro-batch is normalized with its own
  mean and variance (as a smaller batch on fewer devices would be), and the
  running statistics are updated once per micro-batch, in order (micro-batch
  i starts from i-1's). So k micro-batches give exactly the update of one big
  batch only for models without batch statistics (model.norm='none');
  with BatchNorm they match k smaller batches, and the running averages
  move k momentum steps per optimizer step. `mesh` (optional) pins the
  micro-batches' sharding along `data`.
  """
  aug_key, dropout_key = jax.random.split(jax.random.fold_in(base_key, state.step))
  # float32 here; each model casts its input to its compute dtype (bf16 or f32).
  images = data.normalize(data.augment_in_step(aug_key, images, config))
  k = config.grad_accum_steps

  def loss_fn(params, batch_stats, images, labels, dropout_key):
    logits, updates = state.apply_fn(
        {'params': params, 'batch_stats': batch_stats}, images, train=True,
        rngs={'dropout': dropout_key}, mutable=['batch_stats'])
    loss = cross_entropy(logits, labels, num_classes, config.label_smoothing).mean()
    return loss, (logits, updates['batch_stats'])

  def micro_step(carry, xs):
    grad_sum, batch_stats = carry
    x, y, key = xs
    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, batch_stats, x, y, key)
    # The loss without label smoothing, as the validation loss is measured.
    plain = (cross_entropy(logits, y, num_classes, 0.0).mean() if config.label_smoothing
             else jnp.zeros(()))
    return ((jax.tree.map(jnp.add, grad_sum, grads), batch_stats),
            (loss, jnp.sum(jnp.argmax(logits, -1) == y), plain))

  zeros = jax.tree.map(jnp.zeros_like, state.params)
  (grad_sum, batch_stats), (losses, correct, plain_losses) = jax.lax.scan(
      micro_step, (zeros, state.batch_stats),
      (split_micro_batches(images, k, mesh), split_micro_batches(labels, k, mesh),
       micro_batch_keys(dropout_key, k)),
      # One micro-batch is unrolled (0: wholly): XLA's CPU convolutions run
      # far slower in a loop's body, even a loop of one iteration.
      unroll=0 if k == 1 else 1)
  # Equal-sized micro-batches: the mean of their mean losses is the batch's.
  state = state.apply_gradients(grads=jax.tree.map(lambda g: g / k, grad_sum),
                                batch_stats=batch_stats)
  metrics = {'loss': jnp.mean(losses), 'accuracy': jnp.sum(correct) / labels.shape[0]}
  if config.label_smoothing:  # Without it the two losses are one.
    metrics['loss_unsmoothed'] = jnp.mean(plain_losses)
  # Fetched with the metrics at log and save steps: no separate sync.
  metrics[FINITE] = params_finite(state.params)
  return state, metrics


# Evaluation's logits (eval_tta included) are those of evaluate and predict:
# one function, in inference.py, which predict imports without TensorFlow.
eval_logits = inference.eval_logits


def eval_step(state: TrainState, images, labels, mask, *, num_classes, tta='none'):
  """Sums (not means) so that padded batches add up exactly. `tta`:
  `inference.tta_mode(config)`, as evaluate and predict."""
  logits = eval_logits(state.apply_fn,
                       {'params': state.params, 'batch_stats': state.batch_stats},
                       images, tta=tta)
  loss = cross_entropy(logits, labels, num_classes, 0.0)
  correct = jnp.argmax(logits, -1) == labels
  return {'loss': jnp.sum(loss * mask), 'correct': jnp.sum(correct * mask),
          'count': jnp.sum(mask)}


def create_train_state(model, image_shape, tx, key, replicated):
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


def make_resident_train_step(config: ml_collections.ConfigDict, num_classes: int,
                             mesh: jax.sharding.Mesh):
  """`train_step` on a batch gathered on the devices: `step(state, split,
  rows, key)` with `split` the training split on the devices
  (`data.resident.put`) and `rows` the step's epoch's row table
  (`data.resident.epoch_rows`); the batch is that of `state.step`, the same
  as the host pipeline gives for it."""
  replicated = NamedSharding(mesh, P())

  def resident_train_step(state, split, rows, base_key):
    images, labels = data.resident.batch(split, rows, state.step,
                                         config.augment.alternating_flip)
    images, labels = (jax.lax.with_sharding_constraint(a, NamedSharding(mesh, P('data')))
                      for a in (images, labels))
    return train_step(state, images, labels, base_key, config=config,
                      num_classes=num_classes, mesh=mesh)
  return jax.jit(resident_train_step, out_shardings=(replicated, replicated),
                 donate_argnums=0)


def make_eval_step(config: ml_collections.ConfigDict, num_classes: int):
  """`eval_step` jitted: `step(state, images, labels, mask)` -> summed metrics."""
  return jax.jit(functools.partial(eval_step, num_classes=num_classes,
                                   tta=inference.tta_mode(config)))


def evaluate(state, eval_fn, mesh, dataset, split, batch_size) -> dict:
  """The split's mean loss and accuracy. The batches' sums stay on the
  devices until the last batch is dispatched, then come back in one fetch."""
  shard = sharding.DataShard(mesh)
  batches = ((shard.to_global(*shard.local_rows(x, y, m))) for x, y, m in
             dataset.eval_batches(split, batch_size, shard.index, shard.count))
  sums = [eval_fn(state, *batch) for batch in data.prefetch(batches, dataset.device_prefetch)]
  sums = jax.device_get(sums)
  totals = {k: sum(float(out[k]) for out in sums) for k in ('loss', 'correct', 'count')}
  return {'loss': totals['loss'] / totals['count'],
          'accuracy': totals['correct'] / totals['count']}


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
  A config whose knobs cannot work together is refused first
  (`config_defaults.check`).
  """
  config_defaults.check(config)
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  lock = (checkpointing.WorkdirLock(workdir) if jax.process_index() == 0
          else contextlib.nullcontext())
  with lock, preemption.Signals() as signals:
    return _train(config, workdir, signals)


@dataclasses.dataclass(frozen=True)
class Plan:
  """The run's length and periods, in steps."""
  total_steps: int
  steps_per_epoch: int
  eval_every: int
  eval_batch_size: int  # Rounded up to a multiple of the data-parallel devices.
  eval_split: str       # Evaluated every eval_every steps: 'val', or 'test' to watch it.

  @classmethod
  def of(cls, config: ml_collections.ConfigDict, num_train: int, n_data: int) -> 'Plan':
    per_epoch = data.steps_per_epoch(num_train, config.batch_size)
    total = (config.num_train_steps if config.num_train_steps > 0
             else int(config.num_epochs * per_epoch))
    split = config.periodic_eval
    if split not in ('val', 'test'):
      raise InputError(f"unknown periodic_eval={split!r}; choose 'val' or 'test'")
    return cls(total, per_epoch, max(1, round(config.eval_every_epochs * per_epoch)),
               math.ceil(config.eval_batch_size / n_data) * n_data, split)


@dataclasses.dataclass(frozen=True)
class SetUp:
  """What the loop reads and never changes."""
  mesh: jax.sharding.Mesh
  dataset: Any  # data.dataset(config)
  num: dict     # Examples per split: 'train', 'val', 'test'.
  plan: Plan
  schedule: optax.Schedule
  step_key: jax.Array
  manager: Any  # checkpointing.manager


@dataclasses.dataclass(frozen=True)
class Built:
  """A config's model, plan, optimizer and initial state: all of training's
  set-up that needs no data, only its sizes (`build`)."""
  mesh: jax.sharding.Mesh
  model: Any
  plan: Plan
  schedule: optax.Schedule
  state: TrainState
  step_key: jax.Array


def make_mesh(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
  """The config's device mesh (`sharding.make_mesh`)."""
  return sharding.make_mesh(config.batch_size, config.mesh_shape, config.mesh_axes,
                            config.grad_accum_steps)


def build(config: ml_collections.ConfigDict, num_classes: int, image_shape,
          num_train: int, mesh: jax.sharding.Mesh | None = None) -> Built:
  """The model (`models.from_config`), the plan for `num_train` training
  examples, the schedule, the optimizer and the initial state (replicated
  over `mesh`, by default the config's) as training builds them; `_set_up`
  adds the data, the whitening and the checkpoint. The benchmarks and the
  efficiency report call this with random images (`num_train`:
  `summary.default_num_train`). The train step is `make_train_step(config,
  num_classes, built.mesh)`."""
  mesh = make_mesh(config) if mesh is None else mesh
  model = models.from_config(config, num_classes)
  plan = Plan.of(config, num_train, mesh.shape['data'])
  schedule = optim.create_learning_rate_schedule(config.optimizer, plan.total_steps,
                                                 plan.steps_per_epoch)
  init_key, step_key = jax.random.split(jax.random.key(config.seed))
  tx = optim.create_optimizer(config.optimizer, schedule, batch_size=config.batch_size,
                              steps_per_epoch=plan.steps_per_epoch,
                              total_steps=plan.total_steps)
  if warning := airbench_optim.lookahead_warning(config.optimizer, plan.steps_per_epoch,
                                                 plan.total_steps):
    logging.warning(warning)
  state = create_train_state(model, tuple(image_shape), tx, init_key,
                             NamedSharding(mesh, P()))
  return Built(mesh, model, plan, schedule, state, step_key)


def _set_up(config, workdir: Path) -> tuple[SetUp, TrainState]:
  """The mesh, data, model and plan; the state restored from the newest checkpoint."""
  models.from_config(config, 1)  # A bad dtype or model is refused before the data loads.
  mesh = make_mesh(config)
  dataset = data.dataset(config)
  num = {split: dataset.num_examples(split) for split in ('train', 'val', 'test')}
  built = build(config, dataset.num_classes, dataset.image_shape, num['train'], mesh)
  plan = built.plan
  state = _whitened(config, built.state, dataset, NamedSharding(mesh, P()))
  shard = sharding.DataShard(mesh)
  logging.info('%s: %d parameters, input %s, %d classes, %d devices, %d steps '
               '(%d per epoch).', config.model.name,
               sum(x.size for x in jax.tree.leaves(state.params)), dataset.image_shape,
               dataset.num_classes, jax.device_count(), plan.total_steps,
               plan.steps_per_epoch)
  logging.info('Mesh %s over %d process(es); this one feeds batch slice %d of %d; '
               '%d micro-batch(es) per step; %s.', dict(mesh.shape),
               jax.process_count(), shard.index, shard.count, config.grad_accum_steps,
               models.dtype_description(config))
  _describe(config, workdir, dataset, num)
  manager = checkpointing.manager(workdir, config.keep_checkpoints)
  state, resumed = checkpointing.restore_newest_readable(manager, state)
  if resumed is not None:
    logging.info('Resumed from the checkpoint at step %d.', resumed)
  return SetUp(mesh, dataset, num, plan, built.schedule, built.step_key, manager), state


def _whitened(config, state: TrainState, dataset, replicated) -> TrainState:
  """The state with its 'whiten' layer's kernel computed from
  `config.whiten_images` training images (airbench's whitening stem): the
  first of epoch 0's order (`whitening.from_training_split`). A checkpoint
  restored afterwards overwrites it, as it should. That the model has the
  layer and the images are in memory is checked with the config
  (`airbench.checks`)."""
  n = config.whiten_images
  if not n:
    return state
  params = whitening.from_training_split(jax.device_get(state.params), dataset.train_images,
                                         n, seed=config.seed, eps=config.whiten_eps)
  return state.replace(params=jax.device_put(params, replicated))


def _describe(config, workdir: Path, dataset, num: dict) -> None:
  """config.json and dataset.json, for `checkpointing.load_run`."""
  if jax.process_index() == 0:
    (workdir / 'config.json').write_text(config.to_json_best_effort(indent=2))
    (workdir / 'dataset.json').write_text(json.dumps({
        'class_names': dataset.class_names, 'image_shape': dataset.image_shape,
        'num_train': num['train'], 'num_val': num['val'],
        'num_test': num['test']}, indent=2))


def _device_batches(config, dataset, mesh, start_step: int):
  """(step, images, labels) as global arrays, from `start_step` on, sent to
  the devices ahead of the step by a thread (`data.prefetch`).

  The position is a function of the step in both pipelines: resuming at
  start_step reads what an uninterrupted run would have read.
  """
  shard = sharding.DataShard(mesh)
  batches = ((step, *shard.to_global(*shard.local_rows(images, labels)))
             for step, images, labels in dataset.train_batches(
                 seed=config.seed, batch_size=config.batch_size, start_step=start_step,
                 process_index=shard.index, process_count=shard.count))
  return data.prefetch(batches, dataset.device_prefetch)


def resident(config, dataset) -> bool:
  """Whether training reads its batches from a split on the devices
  (`data.device_resident`; the memory pipeline's split when it fits)."""
  nbytes = (dataset.train_images.nbytes if hasattr(dataset, 'train_images') else 0)
  return data.resident.wanted(config.data.device_resident, config.data.pipeline, nbytes)


def _stepper(config, setup: 'SetUp', start_step: int):
  """`advance(state, step) -> (state, metrics)`: global step `step` (0-based)
  with its batch, the batches coming from a split on the devices or from the
  host pipeline; either way the same batch for the same step."""
  num_classes, mesh = setup.dataset.num_classes, setup.mesh
  if resident(config, setup.dataset):
    ds = setup.dataset
    split = data.resident.put(mesh, ds.train_images, ds.train_labels, config.seed,
                              config.augment.alternating_flip)
    step_fn = make_resident_train_step(config, num_classes, mesh)
    logging.info('Training split on the devices (%.0f MB a device); batches gathered '
                 'in the step.', ds.train_images.nbytes / 1e6)
    tables = {}

    def advance(state, step):
      epoch = step // setup.plan.steps_per_epoch
      if epoch + 1 not in tables:  # One upload an epoch, the next epoch's ahead.
        for e in [e for e in tables if e < epoch]:
          del tables[e]
        for e in (epoch, epoch + 1):
          if e not in tables:
            tables[e] = data.resident.epoch_rows(mesh, config.seed, e,
                                                 len(ds.train_images), config.batch_size)
      return step_fn(state, split, tables[epoch], setup.step_key)
    return advance

  step_fn = make_train_step(config, num_classes, mesh)
  batches = _device_batches(config, setup.dataset, mesh, start_step)

  def advance(state, step):
    at, images, labels = next(batches)
    assert at == step, (at, step)
    return step_fn(state, images, labels, setup.step_key)
  advance.close = batches.close  # Stops the prefetch thread.
  return advance


def _one_step_at_a_time() -> bool:
  """Whether to wait for each step before dispatching the next.

  Several CPU devices of one process share one thread pool. With steps
  queued ahead (async dispatch), a device's next step can hold a pool thread
  while the other device's current step waits for one, and the gradient
  all-reduce never meets: the run aborts ("Termination timeout for all
  reduce"; cf. jax-ml/jax#25861). Waiting costs nothing measurable there.
  """
  return jax.default_backend() == 'cpu' and len(jax.local_devices()) > 1


def _check_finite(metrics, step: int, last_saved: int | None, workdir: Path) -> None:
  """Stops a diverged run before it logs or saves: the parameters the step
  made (its metrics' FINITE) are not finite."""
  if not bool(metrics[FINITE]):
    where = (f'step {last_saved} in {workdir / "checkpoints"}'
             if last_saved is not None else 'none')
    raise InputError(f'training diverged: the parameters are not finite at step {step}; '
                     f'last good checkpoint: {where}; lower '
                     f'--config.optimizer.learning_rate')


def _log_train(log, step: int, unlogged: list, images_per_sec: float, learning_rate,
               total_steps: int, batch_size: int) -> None:
  """One progress line; metrics.jsonl gets the mean of the steps since the last.
  The steps' metrics are stacked on the devices and fetched at once."""
  stacked = jax.device_get(jax.tree.map(lambda *xs: jnp.stack(xs), *unlogged))
  means = {k: float(np.mean(v)) for k, v in stacked.items() if k != FINITE}
  log.write(step, 'train', {**means, 'learning_rate': learning_rate,
                            'images_per_sec': images_per_sec})
  logging.info('step %d/%d  loss %.4f  accuracy %.4f  %.0f img/s  ETA %s',
               step, total_steps, means['loss'], means['accuracy'], images_per_sec,
               _eta((total_steps - step) * batch_size / images_per_sec))


def _evaluate_and_log(log, step: int, split: str, state, eval_fn, setup: SetUp) -> dict:
  """The split's metrics, logged with the evaluation's own seconds and the
  wall clock at its end (unix time): time to an accuracy is read from these
  (`bench.time_to_accuracy`)."""
  start = time.time()
  result = evaluate(state, eval_fn, setup.mesh, setup.dataset, split,
                    setup.plan.eval_batch_size)
  log.write(step, split, {**result, 'eval_seconds': time.time() - start,
                          'unix_time': time.time()})
  return result


def _draw_curves(workdir: Path, plan: Plan) -> None:
  if jax.process_index() == 0:
    plots.learning_curves(workdir, plan.steps_per_epoch)


def _train(config, workdir: Path, signals: preemption.Signals) -> dict:
  setup, state = _set_up(config, workdir)
  jitted_eval_step = make_eval_step(config, setup.dataset.num_classes)
  start_step, total = int(state.step), setup.plan.total_steps
  advance = _stepper(config, setup, start_step)
  wait_each_step = _one_step_at_a_time()
  log, timer = logs.MetricLog(workdir), StepTimer(config.batch_size)
  t_start = time.time()  # max_train_time_minutes counts from here.
  unlogged, last_saved, watched = [], setup.manager.latest_step(), None
  split = setup.plan.eval_split
  try:
    for done in range(start_step + 1, total + 1):
      state, metrics = advance(state, done - 1)
      if wait_each_step:
        jax.block_until_ready(metrics)
      timer.step_done(metrics)
      unlogged.append(metrics)

      at_log_step = done % config.log_every_steps == 0
      out_of_time = at_log_step and preemption.out_of_time(
          t_start, config.max_train_time_minutes)
      stop_signal = preemption.agreed_signal(signals, done, config.log_every_steps)
      last = done == total or out_of_time or stop_signal is not None
      evaluate_now = bool(setup.num[split]) and (done % setup.plan.eval_every == 0 or last)
      # Every evaluation gets a checkpoint, so the best by val accuracy is
      # chosen among all of them.
      save_now = evaluate_now or done % config.checkpoint_every_steps == 0 or last

      if at_log_step or save_now:
        _check_finite(metrics, done, last_saved, workdir)
      if at_log_step or done == total:
        _log_train(log, done, unlogged, timer.images_per_sec(), setup.schedule(done - 1),
                   total, config.batch_size)
        unlogged = []
      with timer.paused():
        watched = (_evaluate_and_log(log, done, split, state, jitted_eval_step, setup)
                   if evaluate_now else None)
        if save_now:
          # Only a val accuracy ranks checkpoints: never select on the test set.
          checkpointing.save(setup.manager, done, state,
                             watched['accuracy'] if watched and split == 'val' else None)
          last_saved = done
      if stop_signal is not None:
        _draw_curves(workdir, setup.plan)
        raise Preempted(done, stop_signal)
      if out_of_time:  # Equal-compute runs: stop here as if this were the end.
        logging.info('max_train_time_minutes=%s reached at step %d; stopping.',
                     config.max_train_time_minutes, done)
        break
    final = _final_evaluation(log, state, watched and {split: watched},
                              jitted_eval_step, setup)
    _draw_curves(workdir, setup.plan)
  finally:
    getattr(advance, 'close', lambda: None)()
    setup.manager.wait_until_finished()
    setup.manager.close()
    log.close()
  logging.info('Done in %.0f s.', time.time() - t_start)
  return final


def _final_evaluation(log, state, measured: dict | None, eval_fn, setup: SetUp) -> dict:
  """Val and test metrics of the final state; `measured` ({split: metrics})
  if the last step evaluated that split already."""
  final = dict(measured or {})
  step = int(state.step)
  for split in ('val', 'test'):
    if setup.num[split] and split not in final:
      final[split] = _evaluate_and_log(log, step, split, state, eval_fn, setup)
  for split, m in final.items():
    logging.info('%s at step %d: loss %.4f accuracy %.4f', split, step,
                 m['loss'], m['accuracy'])
  return final
