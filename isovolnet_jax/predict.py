r"""Class probabilities for images from a trained run.

  python -m isovolnet_jax.predict --workdir=runs/cifar10 [--checkpoint=best] \
    [--top_k=3] [--json] cat.jpg dog.png

prints `cat.jpg: cat 0.71, dog 0.12, frog 0.05` per file (and with --json a
last line holding the same as a JSON list). In Python:

  run = checkpointing.load_run('runs/cifar10')
  probs = predict.predict(run, [predict.load_image('cat.jpg')])

Images of any size (at least 32x32) are resized to the run's input size the
way `data.image_size` resizes the training data: bilinear with antialiasing
(`jax.image.resize`, which follows `tf.image.resize`), rounded back to uint8.
"""

import json
import logging as std_logging
import os
from collections.abc import Sequence
from pathlib import Path

from isovolnet_jax import cli

if __name__ == '__main__':
  cli.use_tcmalloc()  # Before JAX starts.

# TensorFlow (imported by the data and logging libraries) need not log its banner.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from isovolnet_jax import inference
from isovolnet_jax import logs
from isovolnet_jax.errors import InputError
from isovolnet_jax.data.sources import MIN_SIDE


def load_image(path: str | Path) -> np.ndarray:
  """An image file -> uint8 HxWx3 (grayscale, palette and RGBA become RGB)."""
  path = Path(path)
  if not path.is_file():
    raise InputError(f'{path} does not exist')
  try:
    with Image.open(path) as img:
      # Phone photos store their rotation in EXIF; apply it as viewers do.
      return np.asarray(ImageOps.exif_transpose(img).convert('RGB'))
  except (UnidentifiedImageError, OSError) as e:
    raise InputError(f'{path} is not an image PIL can read ({e})') from e


def to_rgb(image: np.ndarray, name: str = 'image') -> np.ndarray:
  """uint8 HxW, HxWx1, HxWx3 or HxWx4 -> HxWx3, refusing images under 32x32."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise InputError(f'{name} has dtype {image.dtype}; pass uint8 pixels in [0, 255]')
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
    raise InputError(f'{name} has shape {image.shape}; expected HxW, HxWx3 or HxWx4')
  h, w = image.shape[:2]
  if h < MIN_SIDE or w < MIN_SIDE:
    raise InputError(f'{name} is {h}x{w}, smaller than the {MIN_SIDE}x{MIN_SIDE} '
                     f'minimum; use a larger image')
  if image.shape[-1] == 1:
    return np.repeat(image, 3, axis=-1)
  return image[..., :3]  # RGBA: drop alpha, as PIL's convert('RGB') does.


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """uint8 HxWx3 -> uint8 height x width x 3, as the data pipeline resizes."""
  if image.shape[:2] == (height, width):
    return image
  x = jax.image.resize(jnp.asarray(image, jnp.float32), (height, width, 3),
                       method='bilinear', antialias=True)
  return np.asarray(jnp.clip(jnp.round(x), 0, 255).astype(jnp.uint8))


def predict(run, images: np.ndarray | Sequence[np.ndarray],
            names: Sequence[str] | None = None,
            batch_size: int | None = None) -> np.ndarray:
  """Softmax probabilities, float32 [N, classes], for a batch of uint8 images.

  `images`: an array [N, H, W(, C)] or a list of HxW(xC) arrays of any sizes
  (each at least 32x32); `names` label them in error messages. The model runs
  as the run's config says (`eval_tta`, `eval_batch_size` unless `batch_size`)
  through `inference.logits`, as in `evaluate`.
  """
  if len(images) == 0:
    return np.zeros((0, len(run.class_names)), np.float32)
  if names is None:
    names = [f'image {i}' for i in range(len(images))]
  height, width = run.image_shape[:2]
  if (isinstance(images, np.ndarray) and images.dtype == np.uint8
      and images.shape[1:] == (height, width, 3)):
    batch = images  # The common case (a test split): nothing to convert.
  else:
    batch = np.stack([resize(to_rgb(x, n), height, width)
                      for x, n in zip(images, names, strict=True)])
  logits = inference.logits(run.model, run.variables, batch, run.config, batch_size)
  return np.asarray(jax.nn.softmax(logits), np.float32)


def top_k(probs: np.ndarray, class_names: Sequence[str], k: int) -> list[tuple[str, float]]:
  """The k most probable (class name, probability) of one image, most probable first."""
  order = np.argsort(-probs, kind='stable')[:k]
  return [(class_names[i], float(probs[i])) for i in order]


# ---------------------------------------------------------------- command line

def define_flags():
  """Defined only when run as a program (a notebook imports this module)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  cli.define_flags(config=False, workdir='The --workdir of a training run.')
  flags.DEFINE_string('checkpoint', 'latest', "'latest', 'best' or a step number.")
  flags.DEFINE_integer('top_k', 3, 'How many classes to print per image.')
  flags.DEFINE_bool('json', False, 'Also print the predictions as one JSON line.')


def main(argv):
  from absl import flags, logging  # pylint: disable=import-outside-toplevel
  from isovolnet_jax import checkpointing  # pylint: disable=import-outside-toplevel
  FLAGS = flags.FLAGS
  files = argv[1:]
  logging.set_verbosity(logging.WARNING)  # app.run's INFO default is for training.
  logs.quiet_orbax(std_logging.ERROR)
  if not files:
    raise InputError('no image files given; usage: python -m isovolnet_jax.predict '
                     '--workdir=DIR image.jpg [image.png ...]')
  if FLAGS.top_k < 1:
    raise InputError(f'--top_k={FLAGS.top_k}; it must be at least 1')
  if FLAGS.checkpoint not in ('latest', 'best') and not FLAGS.checkpoint.isdigit():
    raise InputError(f"--checkpoint={FLAGS.checkpoint}; use 'latest', 'best' or a step")
  # Read and check every file before restoring the model: bad input fails fast.
  images = [to_rgb(load_image(f), f) for f in files]
  # load_run imports TensorFlow (via train), whose C++ start-up lines land on
  # stderr; a workdir that is not a run is refused before that.
  checkpointing.load_config(FLAGS.workdir)
  run = checkpointing.load_run(FLAGS.workdir, FLAGS.checkpoint)
  probs = predict(run, images, files)
  results = []
  for f, p in zip(files, probs):
    best = top_k(p, run.class_names, FLAGS.top_k)
    print(f'{f}: ' + ', '.join(f'{name} {prob:.2f}' for name, prob in best))
    results.append({'file': f, 'top_k': [{'class': name, 'probability': round(prob, 4)}
                                         for name, prob in best]})
  if FLAGS.json:
    print(json.dumps(results))


if __name__ == '__main__':
  define_flags()
  cli.run(main)
