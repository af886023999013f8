"""airbench's augmentation: 2-pixel reflect-padded translation and alternating flip.

`augment.translate` (with `augment.crop_padding=0`): `translate_reflect`, run
by `data.augment.augment` inside the jitted train step, in place of the
zero-padded crop. `augment.alternating_flip` (with `augment.flip=False`):
`alternating_flip`, run on the host where the memory pipeline gathers the
batch (`data/memory.train_batches`; it needs each image's row in the training
split), or inside the step when the split lives on the devices
(`data/resident.batch`, from `first_epoch_flips`). Both are for
`data.pipeline='memory'` (`airbench.checks`).
"""

import jax
import jax.numpy as jnp
import numpy as np


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


_FLIP_STREAM = 1  # Seeds the epoch-0 coins apart from the epochs' permutations.


def first_epoch_flips(image_ids, seed: int = 0) -> np.ndarray:
  """Whether each image is mirrored in epoch 0: a fair coin per (seed, image id)."""
  ids = np.asarray(image_ids)
  rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_FLIP_STREAM,)))
  return rng.random(int(ids.max()) + 1 if ids.size else 0)[ids] < 0.5


def alternating_flip(images, image_ids, epoch: int, seed: int = 0) -> np.ndarray:
  """Mirrors NHWC `images` by airbench's derandomised flip.

  A random half of the images is mirrored in epoch 0 (`first_epoch_flips`),
  and every image's flip alternates from one epoch to the next: over any two
  consecutive epochs each image is seen once each way, where independent coin
  flips would show a quarter of them the same way twice (the paper's
  "alternating flip"). `image_ids` are the images' indices in the training
  set, so the result does not depend on batching, order or resumption.
  """
  flip = first_epoch_flips(image_ids, seed) ^ (epoch % 2 == 1)
  return np.where(flip[:, None, None, None], images[:, :, ::-1], images)
