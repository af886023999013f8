"""Augmentation and the images' scale.

The memory pipeline augments in the jitted train step (`augment`: crop after
zero padding, or airbench's reflect-padded translation, and random flip), so
no CPU input thread competes with XLA for the cores; airbench's alternating
flip needs each image's index and runs on the host where the batch is
gathered (`alternating_flip`). The streaming pipeline crops on the host while it decodes
(`train_image`: Inception's random-resized crop and flip; `eval_image`:
centre crop), where a JPEG decodes only the crop.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from isovolnet_jax.errors import InputError

CROP_FRACTION = 0.875  # Eval: centre crop of 87.5% of the shorter side (224 of 256).


def normalize(images: jnp.ndarray) -> jnp.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return images.astype(jnp.float32) / 127.5 - 1.0


# ---------------------------------------------------------------- on device

def augment(key: jax.Array, images: jnp.ndarray, crop_padding: int, flip: bool,
            translate: int = 0) -> jnp.ndarray:
  """Random crop after zero padding (or reflect-padded translation) +
  horizontal flip, on uint8 images.

  Runs inside the jitted step; `key` is derived from (seed, step), so a step's
  augmentation is the same on every run and after every resume.
  """
  n, h, w, _ = images.shape
  crop_key, flip_key = jax.random.split(key)
  if translate:
    images = translate_reflect(images, crop_key, translate)
  elif crop_padding:
    p = crop_padding
    padded = jnp.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
    offsets = jax.random.randint(crop_key, (n, 2), 0, 2 * p + 1)
    images = jax.vmap(lambda img, o: jax.lax.dynamic_slice(
        img, (o[0], o[1], 0), (h, w, img.shape[-1])))(padded, offsets)
  if flip:
    do_flip = jax.random.bernoulli(flip_key, 0.5, (n, 1, 1, 1))
    images = jnp.where(do_flip, images[:, :, ::-1], images)
  return images


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


def check(aug: ml_collections.ConfigDict, pipeline: str) -> None:
  """Refuses knobs that would silently do two things, or nothing."""
  if aug.translate and aug.crop_padding:
    raise InputError(f'augment.translate={aug.translate} and augment.crop_padding='
                     f'{aug.crop_padding} are two crops; set --config.augment.crop_padding=0')
  if aug.alternating_flip and aug.flip:
    raise InputError('augment.alternating_flip and augment.flip are two flips; set '
                     '--config.augment.flip=False')
  if pipeline == 'stream' and (aug.translate or aug.alternating_flip):
    raise InputError("augment.translate and augment.alternating_flip are for "
                     "data.pipeline='memory'; set --config.data.pipeline=memory")


# ---------------------------------------------------------------- on the host, memory pipeline

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


# ---------------------------------------------------------------- on the host, stream pipeline

def tf():
  import tensorflow  # Lazily, and without the GPU, which is JAX's.
  tensorflow.config.set_visible_devices([], 'GPU')
  return tensorflow


def _crop(encoded, box_fn):
  """Decodes only the crop `box_fn(shape)` -> (offset_y, offset_x, h, w) of a
  JPEG (decode_and_crop_jpeg); other formats are decoded whole, then cropped."""
  tf_ = tf()

  def jpeg():
    y, x, h, w = box_fn(tf_.image.extract_jpeg_shape(encoded))
    return tf_.image.decode_and_crop_jpeg(encoded, tf_.stack([y, x, h, w]), channels=3)

  def other():
    image = tf_.io.decode_image(encoded, channels=3, expand_animations=False)
    y, x, h, w = box_fn(tf_.shape(image))
    return image[y:y + h, x:x + w]
  image = tf_.cond(tf_.io.is_jpeg(encoded), jpeg, other)
  image.set_shape([None, None, 3])
  return image


def _to_uint8(image, size):
  tf_ = tf()
  image = tf_.image.resize(image, (size, size), method='bilinear', antialias=True)
  return tf_.cast(tf_.clip_by_value(tf_.round(image), 0, 255), tf_.uint8)


def train_image(encoded, seed, *, size: int, area_range, aspect_range, flip: bool):
  """Random-resized crop (Inception style) + horizontal flip -> uint8 [size, size, 3]."""
  tf_ = tf()
  crop_seed, flip_seed = tf_.unstack(tf_.random.experimental.stateless_split(seed, 2))

  def box(shape):
    begin, extent, _ = tf_.image.stateless_sample_distorted_bounding_box(
        shape, tf_.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=crop_seed,
        min_object_covered=0.1, aspect_ratio_range=aspect_range,
        area_range=area_range, max_attempts=10, use_image_if_no_bounding_boxes=True)
    return begin[0], begin[1], extent[0], extent[1]
  image = _crop(encoded, box)
  if flip:
    image = tf_.image.stateless_random_flip_left_right(image, flip_seed)
  return _to_uint8(image, size)


def eval_image(encoded, *, size: int, resize: int):
  """The centre square that a resize of the shorter side to `resize` and a
  `size` crop would keep, resized to `size`."""
  tf_ = tf()

  def box(shape):
    h, w = shape[0], shape[1]
    side = tf_.cast(tf_.round(tf_.cast(tf_.minimum(h, w), tf_.float32) * size / resize),
                    tf_.int32)
    side = tf_.maximum(side, 1)
    return (h - side) // 2, (w - side) // 2, side, side
  return _to_uint8(_crop(encoded, box), size)
