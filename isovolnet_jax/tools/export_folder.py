r"""Writes a tfds image-classification dataset as an image folder.

  python -m isovolnet_jax.tools.export_folder --dataset=cifar10 --out=data/cifar10_png \
    [--splits=train,test] [--format=png|jpg] [--tfds_data_dir=DIR]

gives OUT/<split>/<class name>/<index>.<format>, the layout that
`--config.data.source=folder --config.data.path=OUT` trains on (no network
needed afterwards). tfds downloads the dataset the first time. PNG keeps the
pixels exactly; this project's figures were measured on a JPEG copy of
CIFAR-10 (`../shared/data/cifar10_jpeg`), whose encoder settings are not known
here, so a `--format=jpg` export is close to it but not the same.
"""

import os
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow reads the data.

import numpy as np
from PIL import Image

FORMATS = ('png', 'jpg')


def export(dataset: str, out: str | Path, splits: Sequence[str] = ('train', 'test'),
           image_format: str = 'png', data_dir: str | None = None) -> dict[str, int]:
  """Writes each split's images; returns the number written per split."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  if image_format not in FORMATS:
    raise ValueError(f'image_format={image_format!r}; choose one of {FORMATS}')
  out = Path(out)
  counts = {}
  for split in splits:
    ds, info = tfds.load(dataset, split=split, as_supervised=True, with_info=True,
                         data_dir=data_dir)
    names = info.features[info.supervised_keys[1]].names
    for name in names:  # Every class in every split, as the folder reader expects.
      (out / split / name).mkdir(parents=True, exist_ok=True)
    count = 0
    for i, (image, label) in enumerate(tfds.as_numpy(ds)):
      pixels = image[..., 0] if image.shape[-1] == 1 else image  # PIL: grayscale is HxW.
      Image.fromarray(np.asarray(pixels, np.uint8)).save(
          out / split / names[label] / f'{i:06d}.{image_format}')
      count += 1
    counts[split] = count
  return counts


def main(argv):
  from absl import flags  # pylint: disable=import-outside-toplevel
  del argv
  f = flags.FLAGS
  counts = export(f.dataset, f.out, f.splits, f.format, f.tfds_data_dir or None)
  for split, n in counts.items():
    print(f'{Path(f.out, split)}: {n} images')


if __name__ == '__main__':
  from absl import app, flags
  flags.DEFINE_string('dataset', 'cifar10', 'A tfds image-classification dataset.')
  flags.DEFINE_string('out', None, 'The folder to write.')
  flags.DEFINE_list('splits', ['train', 'test'], 'The tfds splits to write.')
  flags.DEFINE_enum('format', 'png', FORMATS, 'png (lossless) or jpg.')
  flags.DEFINE_string('tfds_data_dir', '', "tfds' data_dir; '' = ~/tensorflow_datasets.")
  flags.mark_flag_as_required('out')
  app.run(main)
