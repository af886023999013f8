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
import jax.numpy as jnp
import ml_collections
import numpy as np

from isovolnet_jax.data import augment, memory
from isovolnet_jax.errors import InputError


TTA_MODES = ('none', 'flip', 'airbench6')


def tta_mode(config: ml_collections.ConfigDict) -> str:
  """`config.eval_tta`, or when it is '' (older runs, the default) 'flip' or
  'none' by `config.eval_flip`."""
  mode = config.eval_tta or ('flip' if config.eval_flip else 'none')
  if mode not in TTA_MODES:
    raise InputError(f'unknown eval_tta={mode!r}; choose one of {list(TTA_MODES)}')
  return mode


def airbench6_views(x):
  """airbench's 6 test views of NHWC images and their weights: the image and
  its mirror, unshifted (1/4 each) and shifted by one pixel down-right and
  up-left (both axes at once, reflect padding; 1/8 each). As its
  tta_level=2: half the weight on the unshifted pair, half on the shifted."""
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode='reflect')
  h, w = x.shape[1:3]
  down_right = padded[:, 0:h, 0:w]       # out[i, j] = x[i - 1, j - 1].
  up_left = padded[:, 2:h + 2, 2:w + 2]  # out[i, j] = x[i + 1, j + 1].
  views, weights = [], []
  for v, weight in ((x, 0.25), (down_right, 0.125), (up_left, 0.125)):
    views += [v, v[:, :, ::-1]]
    weights += [weight, weight]
  return views, weights


def _views_at_once() -> bool:
  """Whether the TTA views run as one batch (one forward pass of 6x the
  images): on GPU and TPU, where one pass keeps the device busy and memory is
  plentiful; on CPU one view at a time, where an evaluation batch already
  fills the cores and 6x its activations would only cost memory."""
  return jax.default_backend() != 'cpu'


def eval_logits(apply_fn, variables, images, flip: bool = False, tta: str | None = None):
  """Logits of uint8 images; flip=True averages them with the mirror images'
  (test-time augmentation, `config.eval_flip`); `tta` ('none', 'flip',
  'airbench6'; `config.eval_tta`) overrides `flip` when given.

  'airbench6' is airbench's 6 weighted views (`airbench6_views`), 6x the
  evaluation's compute. Shifted views were tried earlier on a FastCNN run
  (+-1 or 2 pixels, half the weight): 85.21% / 85.02% test accuracy against
  85.11% with the flip alone; so for FastCNN configs the flip is kept.
  """
  x = augment.normalize(images)
  mode = tta or ('flip' if flip else 'none')
  if mode == 'airbench6':
    views, weights = airbench6_views(x)
    if _views_at_once():
      out = apply_fn(variables, jnp.concatenate(views), train=False)
      out = out.reshape(len(views), x.shape[0], *out.shape[1:])
      return sum(wt * out[i] for i, wt in enumerate(weights))
    return sum(wt * apply_fn(variables, v, train=False) for v, wt in zip(views, weights))
  logits = apply_fn(variables, x, train=False)
  if mode == 'flip':
    logits = (logits + apply_fn(variables, x[:, :, ::-1], train=False)) / 2
  elif mode != 'none':
    raise InputError(f'unknown tta={mode!r}; choose one of {list(TTA_MODES)}')
  return logits


# The model is static (a hashable flax Module); the variables are an argument,
# not constants baked into the program.
@functools.partial(jax.jit, static_argnames=('model', 'tta'))
def _logits(model, variables, images, tta: str):
  return eval_logits(model.apply, variables, images, tta=tta)


def logits(model, variables, images: np.ndarray, config: ml_collections.ConfigDict,
           batch_size: int | None = None) -> np.ndarray:
  """Logits [N, classes] of N >= 1 uint8 images [N, H, W, 3] of the run's size.

  `config.eval_flip`: each image's logits are averaged with its mirror's, as
  in training's evaluation; `config.eval_tta` (`tta_mode`), when set, names
  the views instead, as in training's evaluation. Batches of
  `config.eval_batch_size` (or `batch_size`), at most N, the last one padded
  by `data.memory.eval_batches`: every batch has one shape, so the model
  compiles once.
  """
  if not len(images):
    raise ValueError('no images to run the model on')
  tta = tta_mode(config)
  batch_size = min(batch_size or config.eval_batch_size, len(images))
  no_labels = np.zeros(len(images), np.int32)  # eval_batches pads labels too.
  out = []
  for x, _, mask in memory.eval_batches(images, no_labels, batch_size):
    out.append(np.asarray(_logits(model, variables, x, tta))[mask > 0])
  return np.concatenate(out)
