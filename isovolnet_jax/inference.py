"""The one inference path for a trained model: uint8 images -> logits.

`evaluate` (the command, `evaluate_run`), `predict` (the command and
`predict.predict`) and the notebooks, through them, all call `logits`. It runs
`eval_logits`, which training's own evaluation (`train.eval_step`) runs too,
with the run's `config.eval_flip`, so a checkpoint scores the same everywhere.
This module imports neither train.py nor TensorFlow: `predict` on a few
files starts in seconds.
"""

import functools

import jax
import ml_collections
import numpy as np

from isovolnet_jax.data import augment, memory


def eval_logits(apply_fn, variables, images, flip: bool = False):
  """Logits of uint8 images; flip=True averages them with the mirror images'
  (test-time augmentation, `config.eval_flip`).

  Shifted views (airbench's multi-crop, +-1 or 2 pixels, half the weight) were
  tried on a FastCNN run: 85.21% / 85.02% test accuracy against 85.11% with
  the flip alone, for 3x the evaluation time; not kept.
  """
  x = augment.normalize(images)
  logits = apply_fn(variables, x, train=False)
  if flip:
    logits = (logits + apply_fn(variables, x[:, :, ::-1], train=False)) / 2
  return logits


# The model is static (a hashable flax Module); the variables are an argument,
# not constants baked into the program.
@functools.partial(jax.jit, static_argnames=('model', 'flip'))
def _logits(model, variables, images, flip: bool):
  return eval_logits(model.apply, variables, images, flip)


def logits(model, variables, images: np.ndarray, config: ml_collections.ConfigDict,
           batch_size: int | None = None) -> np.ndarray:
  """Logits [N, classes] of N >= 1 uint8 images [N, H, W, 3] of the run's size.

  `config.eval_flip`: each image's logits are averaged with its mirror's, as
  in training's evaluation. Batches of `config.eval_batch_size` (or
  `batch_size`), at most N, the last one padded by `data.memory.eval_batches`:
  every batch has one shape, so the model compiles once.
  """
  if not len(images):
    raise ValueError('no images to run the model on')
  flip = bool(config.eval_flip)
  batch_size = min(batch_size or config.eval_batch_size, len(images))
  no_labels = np.zeros(len(images), np.int32)  # eval_batches pads labels too.
  out = []
  for x, _, mask in memory.eval_batches(images, no_labels, batch_size):
    out.append(np.asarray(_logits(model, variables, x, flip))[mask > 0])
  return np.concatenate(out)
