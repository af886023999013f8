"""airbench/augment.py: alternating flip and reflect-padded translation."""

import jax
import numpy as np

from isovolnet_jax.airbench import augment as aug


def _images(n, size=8, low=0):
  return np.random.default_rng(0).integers(low, 256, (n, size, size, 3), dtype=np.uint8)


def _flipped(out, images):
  """Per image: True if mirrored, False if unchanged (asserts one of the two)."""
  out = np.asarray(out)
  same = (out == images).all(axis=(1, 2, 3))
  mirror = (out == images[:, :, ::-1]).all(axis=(1, 2, 3))
  assert np.all(same ^ mirror)
  return mirror


def test_alternating_flip_alternates_per_image():
  images, ids = _images(400), np.arange(400)
  flips = [_flipped(aug.alternating_flip(images, ids, e), images) for e in range(4)]
  assert 0.4 < flips[0].mean() < 0.6                  # A random half in epoch 0...
  assert np.all(flips[1] == ~flips[0])                 # ...the other half in epoch 1,
  assert np.all(flips[2] == flips[0]) and np.all(flips[3] == flips[1])  # and so on.


def test_alternating_flip_depends_on_seed_id_epoch_only():
  images, ids = _images(64), np.arange(1000, 1064)
  out = np.asarray(aug.alternating_flip(images, ids, 5, seed=3))
  perm = np.random.default_rng(1).permutation(64)
  # Another order (or batching) of the same images: the same flips per image.
  np.testing.assert_array_equal(
      np.asarray(aug.alternating_flip(images[perm], ids[perm], 5, seed=3)), out[perm])
  other = np.asarray(aug.alternating_flip(images, ids, 5, seed=4))
  assert not np.array_equal(other, out)


def _shift_of(out, image, pixels):
  """The (dy, dx) with out == the reflect-padded image's crop at that shift."""
  padded = np.pad(image, ((pixels, pixels), (pixels, pixels), (0, 0)), mode='reflect')
  n = image.shape[0]
  found = [(dy, dx) for dy in range(-pixels, pixels + 1) for dx in range(-pixels, pixels + 1)
           if np.array_equal(out, padded[pixels + dy:pixels + dy + n,
                                         pixels + dx:pixels + dx + n])]
  assert len(found) == 1
  return found[0]


def test_translate_reflect_shifts_by_up_to_pixels_with_reflection():
  images = _images(300, low=1)  # No zero pixel: zero padding would show.
  out = np.asarray(aug.translate_reflect(images, jax.random.key(0), 2))
  assert out.shape == images.shape and out.dtype == np.uint8 and out.min() >= 1
  shifts = [_shift_of(o, x, 2) for o, x in zip(out, images)]
  assert len(set(shifts)) == 25  # Every shift in [-2, 2]^2 occurs...
  assert sum(s == (0, 0) for s in shifts) < 300 / 25 * 2.5  # ...none dominates.
  # The reference's reflection is torch's 'reflect' (the edge not repeated):
  # the rows above row 0 are rows 1 and 2, so a 1-row shift down starts with row 1.
  padded = np.pad(images[0], ((2, 2), (2, 2), (0, 0)), mode='reflect')
  np.testing.assert_array_equal(padded[1, 2:-2], images[0][1])
  np.testing.assert_array_equal(padded[0, 2:-2], images[0][2])


def test_translate_reflect_is_a_function_of_the_key():
  images = _images(16)
  a = aug.translate_reflect(images, jax.random.key(7), 2)
  np.testing.assert_array_equal(a, aug.translate_reflect(images, jax.random.key(7), 2))
  assert not np.array_equal(a, aug.translate_reflect(images, jax.random.key(8), 2))
  np.testing.assert_array_equal(aug.translate_reflect(images, jax.random.key(7), 0), images)
