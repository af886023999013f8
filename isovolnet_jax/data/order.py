"""The order of the examples: a pure function of (seed, step).

Both pipelines draw an epoch's order from `epoch_permutation(seed, epoch)`
and cut it into full batches, so a resumed run reads what an uninterrupted
run would have read, without saving any iterator state. Evaluation batches
are padded to one size, with a mask that is 0 on the padding.
"""

import numpy as np

from isovolnet_jax.errors import InputError


def steps_per_epoch(num_train: int, batch_size: int) -> int:
  """Full batches of the training split (the remainder is dropped)."""
  steps = num_train // batch_size
  if steps == 0:
    raise InputError(f'batch_size={batch_size} is larger than the {num_train} '
                     f'training images; lower --config.batch_size')
  return steps


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(n)


def batch_rows(perm: np.ndarray, steps: np.ndarray | int, batch_size: int) -> np.ndarray:
  """The rows of global batch `steps` (one step or an array) of an epoch.

  Sorted: the gather reads memory in order; the batch's members are the same.
  """
  steps = np.asarray(steps)
  rows = perm[:(steps.max() + 1) * batch_size].reshape(-1, batch_size)[steps]
  return np.sort(rows, axis=-1)


def process_slice(index: int, count: int, batch_size: int) -> slice:
  """This process's rows of a global batch: the `index`-th of `count` blocks."""
  local = batch_size // count
  return slice(index * local, (index + 1) * local)


def pad(x: np.ndarray, size: int) -> np.ndarray:
  """`x` with zero rows appended up to `size` rows."""
  return np.concatenate([x, np.zeros((size - len(x), *x.shape[1:]), x.dtype)])


def padded(images: np.ndarray, labels: np.ndarray, size: int):
  """(images, labels, mask) of `size` rows: the padding is zeros, mask 0."""
  mask = np.ones(len(images), np.float32)
  return pad(images, size), pad(labels, size), pad(mask, size)
