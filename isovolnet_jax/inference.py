"""The one inference path for a trained model: uint8 images -> logits.

`evaluate` (the command, `evaluate_run`), `predict` (the command and
`predict.predict`) and the notebooks, through them, all call `logits`. It runs
`eval_logits`, which training's own evaluation (`train.eval_step`) runs too,
with the run's `config.eval_tta`, so a checkpoint scores the same everywhere.
This module imports neither train.py nor TensorFlow: `predict` on a few
files starts in seconds.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from isovolnet_jax.airbench import tta as airbench_tta
from isovolnet_jax.data import augment, memory
from isovolnet_jax.errors import InputError


def tta_mode(config: ml_collections.ConfigDict) -> str:
  """`config.eval_tta` as `eval_logits` takes it: 'none', 'flip' or
  'airbench6' ('' is 'none'). Its value is checked when the config is loaded
  (`config_defaults.check`)."""
  return config.eval_tta or 'none'


def _views_at_once() -> bool:
  """Whether the TTA views run as one batch (one forward pass of 6x the
  images): on GPU and TPU, where one pass keeps the device busy and memory is
  plentiful; on CPU one view at a time, where an evaluation batch already
  fills the cores and 6x its activations would only cost memory."""
  return jax.default_backend() != 'cpu'


def eval_logits(apply_fn, variables, images, tta: str = 'none'):
  """Logits of uint8 images with test-time augmentation `tta` ('none', 'flip':
  averaged with the mirror images', 'airbench6'; `tta_mode(config)`).

  'airbench6' is airbench's 6 weighted views (`airbench.tta.airbench6_views`), 6x the
  evaluation's compute. Shifted views were tried earlier on a FastCNN run
  (+-1 or 2 pixels, half the weight): 85.21% / 85.02% test accuracy against
  85.11% with the flip alone; so for FastCNN configs the flip is kept.
  """
  x = augment.normalize(images)
  mode = tta or 'none'
  if mode == 'airbench6':
    views, weights = airbench_tta.airbench6_views(x)
    if _views_at_once():
      out = apply_fn(variables, jnp.concatenate(views), train=False)
      out = out.reshape(len(views), x.shape[0], *out.shape[1:])
      return sum(wt * out[i] for i, wt in enumerate(weights))
    return sum(wt * apply_fn(variables, v, train=False) for v, wt in zip(views, weights))
  logits = apply_fn(variables, x, train=False)
  if mode == 'flip':
    logits = (logits + apply_fn(variables, x[:, :, ::-1], train=False)) / 2
  elif mode != 'none':
    raise InputError(f'unknown tta={mode!r}; choose one of {list(airbench_tta.TTA_MODES)}')
  return logits


# The model is static (a hashable flax Module); the variables are an argument,
# not constants baked into the program.
@functools.partial(jax.jit, static_argnames=('model', 'tta'))
def _logits(model, variables, images, tta: str):
  return eval_logits(model.apply, variables, images, tta=tta)


def logits(model, variables, images: np.ndarray, config: ml_collections.ConfigDict,
           batch_size: int | None = None) -> np.ndarray:
  """Logits [N, classes] of N >= 1 uint8 images [N, H, W, 3] of the run's size.

  `config.eval_tta` (`tta_mode`) names the test-time views, as in training's
  evaluation ('flip': each image's logits averaged with its mirror's). Batches of
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
