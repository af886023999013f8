"""Orbax checkpoints of a run, and `load_run`: a workdir -> model + variables.

Layout: WORKDIR/checkpoints/<step>/state (params, batch_stats, opt_state,
step). The data position and the RNG are functions of (seed, step), so the
step is all the resume state there is. WORKDIR/config.json and
WORKDIR/dataset.json describe the run for `load_run`.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from isovolnet_jax import models
from isovolnet_jax.errors import InputError

VAL_METRIC = 'val_accuracy'


def manager(workdir: str | Path, keep: int = 3, read_only: bool = False
            ) -> ocp.CheckpointManager:
  """Keeps the newest `keep` checkpoints and, besides them, the best by val accuracy."""
  policy = pp.AnyPreservationPolicy([
      pp.LatestN(keep),
      pp.BestN(get_metric_fn=lambda m: m[VAL_METRIC], n=1,
               keep_checkpoints_without_metrics=False),
  ])
  options = ocp.CheckpointManagerOptions(
      create=not read_only, read_only=read_only, preservation_policy=policy,
      # best_fn makes Orbax write the metrics with each checkpoint (and gives
      # best_step()); which steps are kept is the policy's decision.
      best_fn=lambda m: m[VAL_METRIC], best_mode='max')
  return ocp.CheckpointManager(Path(workdir, 'checkpoints').absolute(),
                               options=options)


def savable(state) -> dict:
  return {'step': state.step, 'params': state.params,
          'batch_stats': state.batch_stats, 'opt_state': state.opt_state}


def save(mngr: ocp.CheckpointManager, step: int, state, val_accuracy=None):
  metrics = None if val_accuracy is None else {VAL_METRIC: float(val_accuracy)}
  mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(savable(state))),
            metrics=metrics)


def restore_into(mngr: ocp.CheckpointManager, step: int, state):
  """Restores `step` with the shapes, dtypes and shardings of `state`."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, savable(state))
  try:
    restored = mngr.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
  except ValueError as e:
    if 'do not match' not in str(e) and 'shape' not in str(e):
      raise
    raise InputError(
        f'the checkpoint at step {step} in {mngr.directory} was saved with another '
        f'model or optimizer than this config asks for; resume with the run\'s own '
        f'settings (its config.json) or train into a new --workdir') from e
  return state.replace(**restored['state'])


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
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def load_run(workdir: str | Path, checkpoint: str | int = 'latest') -> Run:
  """Model, variables (params + batch_stats) and config of a finished or running run.

  `checkpoint` is 'latest', 'best' (highest validation accuracy) or a step.
  """
  from isovolnet_jax import train  # Late: train imports this module.
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
  restored = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore()))['state']
  model = models.create_model(config.model, len(info['class_names']),
                              train.DTYPES[config.dtype])
  variables = {'params': restored['params']}
  if restored.get('batch_stats'):
    variables['batch_stats'] = restored['batch_stats']
  return Run(model, variables, config, info['class_names'],
             tuple(info['image_shape']), int(step))
