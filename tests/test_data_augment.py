"""Augmentation: the train step's crop and flip, the stream's crops on the host."""

import jax
import numpy as np

from isovolnet_jax.data import augment


def test_augment_is_deterministic_crop_and_flip():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
  key = jax.random.key(7)
  a = np.asarray(augment.augment(key, images, 4, True))
  b = np.asarray(augment.augment(key, images, 4, True))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, augment.augment(jax.random.key(8), images, 4, True))
  padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
  # Each output is a 32x32 window of the padded image, possibly mirrored.
  for i in range(len(images)):
    windows = [padded[i, dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9)]
    candidates = windows + [w[:, ::-1] for w in windows]
    assert any(np.array_equal(a[i], w) for w in candidates)
  # Without padding, only flips remain; both outcomes occur over 16 images.
  flips = np.asarray(augment.augment(key, images, 0, True))
  flipped = [np.array_equal(flips[i], images[i, :, ::-1]) for i in range(16)]
  kept = [np.array_equal(flips[i], images[i]) for i in range(16)]
  assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_normalize_range():
  x = np.array([0, 255], np.uint8)
  np.testing.assert_allclose(augment.normalize(x), [-1.0, 1.0])


def test_random_resized_crop_flip_and_centre_crop():
  tf = augment.tf()
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (60, 80, 3), np.uint8)
  for encode in (tf.io.encode_png, lambda x: tf.io.encode_jpeg(x, quality=100)):
    encoded = encode(image)
    kw = dict(size=24, area_range=(0.08, 1.0), aspect_range=(0.75, 1.33), flip=True)
    views = [augment.train_image(encoded, tf.constant([0, i], tf.int64), **kw).numpy()
             for i in range(6)]
    assert all(v.shape == (24, 24, 3) and v.dtype == np.uint8 for v in views)
    assert len({v.tobytes() for v in views}) == 6  # Each seed its own crop.
    again = augment.train_image(encoded, tf.constant([0, 3], tf.int64), **kw).numpy()
    np.testing.assert_array_equal(again, views[3])  # Stateless: a function of the seed.
  # Eval: the centre 87.5% square of the shorter side (a 60x60 image: the
  # central 52x52 window), resized; a left half-black image stays half black.
  half = np.zeros((60, 60, 3), np.uint8)
  half[:, 30:] = 255
  out = augment.eval_image(tf.io.encode_png(half), size=52, resize=60).numpy()
  assert out.shape == (52, 52, 3)
  assert (out[:, :25] == 0).all() and (out[:, 27:] == 255).all()
