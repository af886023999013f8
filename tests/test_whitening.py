"""airbench/whitening.py on real CIFAR-10 patches (the JPEG copy beside the repository)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from isovolnet_jax.airbench import whitening
from isovolnet_jax.airbench import model as airbench

EPS = 5e-4


@pytest.fixture(scope='module')
def train_images(small_cifar) -> np.ndarray:
  """The 600 training images of `small_cifar` (60 per class), uint8 [N, 32, 32, 3]."""
  root = small_cifar / 'train'
  files = [root / c / f for c in sorted(os.listdir(root)) for f in sorted(os.listdir(root / c))]
  return np.stack([np.asarray(Image.open(f).convert('RGB')) for f in files])


def _conv(images, kernel):
  """The VALID conv the model's whitening layer runs, in float64 via numpy patches."""
  p = whitening.patches(images, kernel.shape[0])
  return p @ kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)


def test_kernel_shape_and_matches_a_conv(train_images):
  kernel = whitening.whitening_kernel(train_images[:50])
  assert kernel.shape == (2, 2, 3, 24) and kernel.dtype == np.float32
  # The (h, w, c) patch order is the HWIO kernel's: a lax conv gives the same.
  x = whitening.to_model_scale(train_images[:4]).astype(np.float32)
  y = jax.lax.conv_general_dilated(x, kernel, (1, 1), 'VALID',
                                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  assert y.shape == (4, 31, 31, 24)
  np.testing.assert_allclose(np.asarray(y).reshape(-1, 24), _conv(train_images[:4], kernel),
                             rtol=1e-4, atol=1e-3)


def test_whitened_patches_have_identity_covariance(train_images):
  """The + half's outputs have covariance diag(l / (l + eps)) (the identity
  where an eigenvalue l is well above eps, and exactly with eps = 0); the -
  half mirrors it: [[D, -D], [-D, D]]."""
  values, _ = whitening.eigen(train_images)
  assert np.all(np.diff(values) <= 0) and values[-1] > 0  # Descending, positive definite.
  d = values / (values + EPS)
  y = _conv(train_images, whitening.whitening_kernel(train_images, eps=EPS))
  cov = y.T @ y / len(y)
  np.testing.assert_allclose(cov[:12, :12], np.diag(d), atol=2e-5)
  np.testing.assert_allclose(cov[12:, 12:], np.diag(d), atol=2e-5)
  np.testing.assert_allclose(cov[:12, 12:], -np.diag(d), atol=2e-5)
  # The large directions are whitened to ~1; eps damps the smallest (on these
  # JPEGs the last eigenvalues are ~10x below eps: pixel noise, not amplified).
  assert np.all(d[:5] > 0.98) and d[-1] < 0.5
  y0 = _conv(train_images, whitening.whitening_kernel(train_images, eps=0.0))
  np.testing.assert_allclose(y0[:, :12].T @ y0[:, :12] / len(y0), np.eye(12), atol=1e-4)


def test_filters_orthogonal_and_sign_paired(train_images):
  values, vectors = whitening.eigen(train_images)
  f = whitening.whitening_kernel(train_images, eps=EPS).reshape(12, 24).T.astype(np.float64)
  np.testing.assert_allclose(f[12:], -f[:12])  # Filter i + 12 is -(filter i).
  # Orthogonal in patch space, with squared norms 1 / (l + eps).
  gram = f[:12] @ f[:12].T
  np.testing.assert_allclose(gram, np.diag(1 / (values + EPS)), rtol=1e-5, atol=1e-3)
  # Each is an eigenvector of the patch covariance: C f_i = l_i f_i.
  cov = whitening.patch_covariance(train_images)
  np.testing.assert_allclose(f[:12] @ cov, values[:, None] * f[:12], rtol=1e-4, atol=1e-4)


def test_uint8_and_model_scale_floats_agree(train_images):
  a = whitening.whitening_kernel(train_images[:100])
  b = whitening.whitening_kernel(train_images[:100].astype(np.float32) / 127.5 - 1)
  # Eigenvectors are defined up to sign: compare the (+v, -v) pairs as sets.
  a, b = a.reshape(12, 24).T, b.reshape(12, 24).T
  for i in range(12):
    assert min(np.abs(a[i] - b[i]).max(), np.abs(a[i] + b[i]).max()) < 1e-3


def test_with_whitening_sets_the_airbench_layer(train_images):
  model = airbench.AirBench(num_classes=10)
  params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))['params']
  new = whitening.with_whitening(params, train_images)
  np.testing.assert_array_equal(new['whiten']['kernel'],
                                whitening.whitening_kernel(train_images))
  assert new['whiten']['bias'] is params['whiten']['bias']
  assert new['block1'] is params['block1']
  with pytest.raises(ValueError, match='2 \\* k\\*k\\*channels'):
    whitening.with_whitening({'whiten': {'kernel': jnp.zeros((2, 2, 3, 16))}}, train_images)
