"""Augmentation and the images' scale.

The memory pipeline augments in the jitted train step (`augment`: crop after
zero padding, or airbench's reflect-padded translation, and random flip), so
no CPU input thread competes with XLA for the cores; airbench's alternating
flip needs each image's index and runs on the host where the batch is
gathered (`airbench.augment`). The streaming pipeline crops on the host while it decodes
(`train_image`: Inception's random-resized crop and flip; `eval_image`:
centre crop), where a JPEG decodes only the crop.
"""

import jax
import jax.numpy as jnp

from isovolnet_jax.airbench import augment as airbench_augment

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
    images = airbench_augment.translate_reflect(images, crop_key, translate)
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
