"""airbench's training augmentation as pure functions of (seed, image id, epoch)
or a key, for the input pipeline to call (not wired in yet: docs/airbench.md).

Both are deterministic in their arguments, so a step's augmentation is the
same on every run and after every resume, as the pipeline's own.
"""

import jax
import jax.numpy as jnp


def first_epoch_flips(image_ids, seed: int = 0) -> jax.Array:
  """Whether each image is mirrored in epoch 0: a fair coin per (seed, image id)."""
  key = jax.random.key(seed)
  return jax.vmap(lambda i: jax.random.bernoulli(jax.random.fold_in(key, i)))(
      jnp.asarray(image_ids, jnp.uint32))


def alternating_flip(images, image_ids, epoch, seed: int = 0) -> jax.Array:
  """Mirrors NHWC `images` (any dtype) by airbench's derandomised flip.

  A random half of the images is mirrored in epoch 0 (`first_epoch_flips`),
  and every image's flip alternates from one epoch to the next: over any two
  consecutive epochs each image is seen once each way, where independent coin
  flips would show a quarter of them the same way twice (the paper's
  "alternating flip"). `image_ids` are the images' indices in the training
  set, so the result does not depend on batching or order.
  """
  flip = first_epoch_flips(image_ids, seed) ^ (jnp.asarray(epoch) % 2 == 1)
  return jnp.where(flip[:, None, None, None], images[:, :, ::-1], images)


def translate_reflect(images, key, pixels: int = 2) -> jax.Array:
  """Each image shifted by (dy, dx), drawn uniformly from [-pixels, pixels]^2,
  its border filled by reflection (airbench: 2 pixels; reflection, not zero
  padding, keeps image statistics at the border). Same shape and dtype."""
  if pixels <= 0:
    return images
  n, h, w, _ = images.shape
  padded = jnp.pad(images, ((0, 0), (pixels, pixels), (pixels, pixels), (0, 0)),
                   mode='reflect')
  # Offsets into the padded image: 0..2*pixels, i.e. shifts -pixels..pixels.
  offsets = jax.random.randint(key, (n, 2), 0, 2 * pixels + 1)
  crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))
  return jax.vmap(crop)(padded, offsets)
