"""Orbax checkpoints of a run, and `load_run`: a workdir -> model + variables.

Layout: WORKDIR/checkpoints/<step>/state (params, batch_stats, opt_state,
step). The data position and the RNG are functions of (seed, step), so the
step is all the resume state there is. WORKDIR/config.json and
WORKDIR/dataset.json describe the run for `load_run`.
"""

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from isovolnet_jax import models
from isovolnet_jax import config_defaults
from isovolnet_jax.errors import InputError

VAL_METRIC = 'val_accuracy'
# WORKDIR/checkpoints/dropped/<step>: a step the keep policy dropped, moved
# out of the listing in one rename and deleted before the next save.
DROPPED = 'dropped'


def manager(workdir: str | Path, keep: int = 3, read_only: bool = False
            ) -> ocp.CheckpointManager:
  """Keeps the newest `keep` checkpoints and, besides them, the best by val accuracy.

  Orbax deletes a dropped step in place, file by file: a run killed in
  between left a half-deleted step that still listed as a checkpoint and
  could not be restored. With `todelete_subdir` Orbax renames it into
  DROPPED instead (one rename), and `_Manager` deletes it while no save runs.
  """
  policy = pp.AnyPreservationPolicy([
      pp.LatestN(keep),
      pp.BestN(get_metric_fn=lambda m: m[VAL_METRIC], n=1,
               keep_checkpoints_without_metrics=False),
  ])
  options = ocp.CheckpointManagerOptions(
      create=not read_only, read_only=read_only, preservation_policy=policy,
      cleanup_tmp_directories=not read_only,  # Half-written saves of a killed run.
      # best_fn makes Orbax write the metrics with each checkpoint (and gives
      # best_step()); which steps are kept is the policy's decision.
      best_fn=lambda m: m[VAL_METRIC], best_mode='max',
      todelete_subdir=None if read_only else DROPPED)
  if read_only:
    return ocp.CheckpointManager(Path(workdir, 'checkpoints').absolute(), options=options)
  mngr = _Manager(Path(workdir, 'checkpoints').absolute(), options=options)
  mngr.wait_until_finished()  # Deletes what a killed run had dropped.
  return mngr


class _Manager(ocp.CheckpointManager):
  """Deletes DROPPED after every wait for the saves in flight: Orbax's save
  starts with one, and training ends with one. Never during a save, whose
  finalize renames into DROPPED."""

  def wait_until_finished(self):
    super().wait_until_finished()
    if jax.process_index() == 0:
      shutil.rmtree(Path(self.directory, DROPPED), ignore_errors=True)


def savable(state) -> dict:
  return {'step': state.step, 'params': state.params,
          'batch_stats': state.batch_stats, 'opt_state': state.opt_state}


def digest(tree) -> str:
  """sha256 of every array's bytes, shape and dtype, in tree order, on the
  host: what checkpoints saved before `checksum` carry."""
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(tree)):
    leaf = np.asarray(leaf)
    h.update(f'{leaf.shape}{leaf.dtype}'.encode())
    h.update(np.ascontiguousarray(leaf).tobytes())
  return h.hexdigest()


def _words(leaf: jax.Array) -> jax.Array:
  """A leaf's bits as uint32 words, one per element (8- and 16-bit types
  widened), so that integer sums over them are exact on every backend."""
  width = leaf.dtype.itemsize * 8
  if leaf.dtype == jnp.bool_:
    return leaf.astype(jnp.uint32).reshape(-1)
  bits = jax.lax.bitcast_convert_type(leaf, getattr(jnp, f'uint{width}'))
  return bits.reshape(-1).astype(jnp.uint32)


@jax.jit
def _checksums(tree) -> jax.Array:
  """uint32 [leaves, 2]: two position-weighted sums of each leaf's words,
  wrapping (exact in any order), computed where the arrays are."""
  sums = []
  for leaf in jax.tree.leaves(tree):
    w = _words(jnp.asarray(leaf))
    i = jnp.arange(w.size, dtype=jnp.uint32)
    sums.append(jnp.stack([jnp.sum(w * (2 * i + 1)),
                           jnp.sum((w ^ (i * jnp.uint32(0x9E3779B9))) * jnp.uint32(0x85EBCA6B))]))
  return jnp.stack(sums) if sums else jnp.zeros((0, 2), jnp.uint32)


def checksum(tree) -> str:
  """A checksum of every array's bits, shape and dtype, in tree order,
  computed on the devices: the host fetches 8 bytes a leaf, not the state.

  Orbax does not checksum array data: 4 KB overwritten in the middle of a data
  file restores wrong values without an error. This checksum, saved with each
  checkpoint and checked after each restore, turns that into a detected
  corruption (two 32-bit sums a leaf: a random change goes unseen with odds
  of about 2^-64). Checkpoints saved before it carry `digest`'s sha256.
  """
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(tree):
    h.update(f'{np.shape(leaf)}{jnp.asarray(leaf).dtype}'.encode())
  h.update(np.asarray(jax.device_get(_checksums(tree))).tobytes())
  return h.hexdigest()


def save(mngr: ocp.CheckpointManager, step: int, state, val_accuracy=None):
  metrics = None if val_accuracy is None else {VAL_METRIC: float(val_accuracy)}
  tree = savable(state)
  mngr.save(step, metrics=metrics, args=ocp.args.Composite(
      state=ocp.args.StandardSave(tree),
      digest=ocp.args.JsonSave({'checksum': checksum(tree)})))


class CorruptCheckpoint(Exception):
  pass


def _restore_verified(mngr, step: int, state_args) -> dict:
  """Restores one step and checks its digest; CorruptCheckpoint if unreadable."""
  try:
    restored = mngr.restore(step, args=ocp.args.Composite(
        state=state_args, digest=ocp.args.JsonRestore()))
  except ValueError as e:
    if 'do not match' in str(e):
      raise InputError(
          f'the checkpoint at step {step} in {mngr.directory} was saved with another '
          f'model or optimizer than this config asks for; resume with the run\'s own '
          f'settings (its config.json) or train into a new --workdir') from e
    raise CorruptCheckpoint(f'{type(e).__name__}: {e}') from e
  except Exception as e:  # pylint: disable=broad-except
    # Orbax/TensorStore raise many types for truncated or missing files.
    raise CorruptCheckpoint(f'{type(e).__name__}: {e}') from e
  saved = restored['digest'] or {}
  if 'checksum' in saved:
    ok = saved['checksum'] == checksum(restored['state'])
  else:  # Saved before the checksum: the host-side sha256.
    ok = saved.get('sha256') == digest(restored['state'])
  if not ok:
    raise CorruptCheckpoint('its arrays do not match the digest saved with them')
  return restored['state']


def restore_newest_readable(mngr: ocp.CheckpointManager, state):
  """The newest checkpoint that restores and verifies, into `state`'s shardings.

  An unreadable or damaged one is skipped with a warning naming its step and
  path, and moved to WORKDIR/checkpoints_unreadable/ (deleting a user's
  checkpoint is never our call; moving it frees the step number for training).
  Returns (state, step) or (state, None) if there is no checkpoint at all.
  """
  steps = sorted(mngr.all_steps(), reverse=True)
  if not steps:
    return state, None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, savable(state))
  for step in steps:
    try:
      restored = _restore_verified(mngr, step, ocp.args.StandardRestore(abstract))
    except CorruptCheckpoint as e:
      path = Path(mngr.directory, str(step))
      # Moved aside, not deleted: training will save this step number again.
      aside = Path(mngr.directory).parent / 'checkpoints_unreadable' / str(step)
      if aside.exists():  # The same step failed before: keep both copies.
        aside = aside.with_name(f'{step}-{time.time_ns()}')
      if jax.process_index() == 0:
        aside.parent.mkdir(exist_ok=True)
        os.replace(path, aside)
      logging.warning('Checkpoint at step %d (%s) cannot be used: %s. Moved it to %s '
                      'and trying an older one.', step, path,
                      str(e).splitlines()[0][:300], aside)
      continue
    mngr.reload()
    return state.replace(**restored), step
  mngr.reload()
  raise InputError(f'none of the checkpoints {sorted(steps)} in {mngr.directory} can '
                   f'be read (moved to checkpoints_unreadable/, see the warnings '
                   f'above); rerun to start over or restore them by hand')


class WorkdirLock:
  """One training process per workdir: a second one is refused, naming the first.

  flock is released by the kernel when the holder dies, even by kill -9, so a
  crashed run never leaves a stale lock behind.
  """

  def __init__(self, workdir: str | Path):
    self.path = Path(workdir, '.lock')
    self.file = None

  def __enter__(self):
    self.file = open(self.path, 'a+')
    try:
      fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      self.file.seek(0)
      holder = self.file.read().strip() or 'another process'
      self.file.close()
      raise InputError(f'{self.path.parent} is in use by {holder}; wait for it to '
                       f'finish or train into another --workdir') from None
    self.file.seek(0)
    self.file.truncate()
    self.file.write(f'pid {os.getpid()} on {socket.gethostname()}')
    self.file.flush()
    return self

  def __exit__(self, *exc):
    fcntl.flock(self.file, fcntl.LOCK_UN)
    self.file.close()


def best_step(workdir: str | Path) -> int | None:
  """The kept checkpoint with the highest validation accuracy."""
  mngr = manager(workdir, read_only=True)
  scored = [s for s in mngr.all_steps() if (mngr.metrics(s) or {}).get(VAL_METRIC) is not None]
  return mngr.best_step() if scored else None


@dataclasses.dataclass
class Run:
  """What a notebook needs: `run.model.apply(run.variables, images)`."""
  model: nn.Module
  variables: dict[str, Any]
  config: ml_collections.ConfigDict
  class_names: list[str]
  image_shape: tuple[int, int, int]
  step: int


def load_config(workdir: str | Path) -> ml_collections.ConfigDict:
  path = Path(workdir, 'config.json')
  if not path.exists():
    raise InputError(f'{path} does not exist; is {workdir} the --workdir of a run?')
  config = ml_collections.ConfigDict(json.loads(path.read_text()))
  # Keys added to the schema after the run was trained take their defaults.
  return config_defaults.add_missing(config)


def _local_target(mngr: ocp.CheckpointManager, step: int):
  """The saved state's shapes and dtypes, placed on this process's first device.

  Training on N devices saves arrays sharded over N; restoring them as saved
  would need the same N (Orbax: "Topology mismatch"), so a run trained on 2
  CPU devices could not be loaded in a 1-device notebook.
  """
  meta = ocp.StandardCheckpointer().metadata(
      Path(mngr.directory, str(step), 'state')).item_metadata
  tree = getattr(meta, 'tree', meta)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                      tree, is_leaf=lambda m: hasattr(m, 'shape'))


def load_run(workdir: str | Path, checkpoint: str | int = 'latest') -> Run:
  """Model, variables (params + batch_stats) and config of a finished or running run.

  `checkpoint` is 'latest', 'best' (highest validation accuracy) or a step.
  """
  config = load_config(workdir)
  info = json.loads(Path(workdir, 'dataset.json').read_text())
  mngr = manager(workdir, read_only=True)
  steps = mngr.all_steps()
  if not steps:
    raise InputError(f'no checkpoint in {Path(workdir, "checkpoints")}; train first')
  if checkpoint == 'latest':
    step = max(steps)
  elif checkpoint == 'best':
    step = best_step(workdir)
    if step is None:
      raise InputError(f'no checkpoint in {workdir} has a validation accuracy; '
                       f"use checkpoint='latest'")
  else:
    step = int(checkpoint)
    if step not in steps:
      raise InputError(f'no checkpoint at step {step} in {workdir}; kept steps: {steps}')
  try:
    restored = _restore_verified(mngr, step,
                                 ocp.args.StandardRestore(_local_target(mngr, step)))
  except CorruptCheckpoint as e:
    raise InputError(f'checkpoint {Path(mngr.directory, str(step))} cannot be used '
                     f'({str(e).splitlines()[0][:200]}); pick another step') from e
  model = models.from_config(config, len(info['class_names']))
  variables = {'params': restored['params']}
  if restored.get('batch_stats'):
    variables['batch_stats'] = restored['batch_stats']
  return Run(model, variables, config, info['class_names'],
             tuple(info['image_shape']), int(step))
