"""The whitening layer's kernel from training images (airbench's first layer).

A k x k conv whose filters are the eigenvectors of the (uncentred) covariance
of the images' k x k patches, each scaled by 1/sqrt(eigenvalue + eps), and
each also negated: 2 * k*k*3 filters. Its output on a patch is the patch in
the covariance's eigenbasis with unit variance per direction (PCA whitening);
eps keeps the near-null directions (pixel noise, JPEG artefacts) from being
amplified without bound. With the sign pairs (+v, -v) the GELU after the
layer keeps both halves of each direction instead of cutting one off.

The kernel is computed once at initialisation (airbench: from 5,000 training
images) and frozen (`optimizer.freeze_whiten_kernel`); the layer's bias still
trains for the first epochs (`optimizer.whiten_bias_epochs`).
"""

import numpy as np

from isovolnet_jax.data import order


def to_model_scale(images) -> np.ndarray:
  """uint8 [0, 255] -> float64 [-1, 1], the scale the models see
  (data.augment.normalize); floats are taken as already on it."""
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images.astype(np.float64) / 127.5 - 1.0
  return images.astype(np.float64)


def patches(images, patch: int = 2) -> np.ndarray:
  """[N, H, W, C] -> [N*(H-p+1)*(W-p+1), p*p*C]: every p x p patch (stride 1,
  no padding, as the VALID conv sees them), flattened in (h, w, c) order, the
  order of an HWIO kernel's first three axes."""
  x = to_model_scale(images)
  n, h, w, c = x.shape
  oh, ow = h - patch + 1, w - patch + 1
  views = [x[:, i:i + oh, j:j + ow, :] for i in range(patch) for j in range(patch)]
  return np.stack(views, axis=3).reshape(n * oh * ow, patch * patch * c)


def patch_covariance(images, patch: int = 2, chunk: int = 500) -> np.ndarray:
  """E[p p^T] over all patches (uncentred, as airbench: its normalized inputs
  have about zero mean), in float64, `chunk` images at a time (5,000 CIFAR
  images hold 4.8M patches)."""
  images = np.asarray(images)
  total, count = 0.0, 0
  for start in range(0, len(images), chunk):
    p = patches(images[start:start + chunk], patch)
    total = total + p.T @ p
    count += len(p)
  return total / count


def eigen(images, patch: int = 2) -> tuple[np.ndarray, np.ndarray]:
  """Eigenvalues (descending) and eigenvectors (columns) of the patch covariance."""
  values, vectors = np.linalg.eigh(patch_covariance(images, patch))
  return values[::-1], vectors[:, ::-1]


def whitening_kernel(images, patch: int = 2, eps: float = 5e-4) -> np.ndarray:
  """The (patch, patch, C, 2*patch*patch*C) HWIO float32 kernel: filter i
  (i < patch*patch*C) is eigenvector i (largest eigenvalue first) divided by
  sqrt(eigenvalue_i + eps); filter i + patch*patch*C is its negation."""
  c = np.asarray(images).shape[-1]
  values, vectors = eigen(images, patch)
  scaled = vectors / np.sqrt(values + eps)              # [p*p*C, p*p*C], columns.
  filters = np.concatenate([scaled, -scaled], axis=1)  # (+v, -v) pairs.
  return filters.reshape(patch, patch, c, -1).astype(np.float32)


def with_whitening(params: dict, images, eps: float = 5e-4, layer: str = 'whiten') -> dict:
  """A copy of `params` whose `layer` kernel is `whitening_kernel(images)` of
  its own patch size (e.g. AirBench's 'whiten' from 5,000 training images)."""
  kernel = params[layer]['kernel']
  new = whitening_kernel(images, patch=kernel.shape[0], eps=eps)
  if new.shape != tuple(kernel.shape):
    raise ValueError(f'whitening kernel {new.shape} does not fit {layer!r}\'s '
                     f'{tuple(kernel.shape)}: its width must be 2 * k*k*channels')
  return {**params, layer: {**params[layer], 'kernel': new.astype(kernel.dtype)}}


def from_training_split(params: dict, train_images, n: int, seed: int, eps: float = 5e-4,
                        layer: str = 'whiten') -> dict:
  """`with_whitening` from `n` training images: the first `n` of epoch 0's
  order (`data.order.epoch_permutation`), a random sample that is a function
  of `seed` (airbench takes the first 5,000 of CIFAR-10's files, which are in
  random order; an image folder is read class by class). Training calls this
  at set-up (`config.whiten_images`)."""
  rows = np.sort(order.epoch_permutation(seed, 0, len(train_images))[:n])
  return with_whitening(params, train_images[rows], eps=eps, layer=layer)
