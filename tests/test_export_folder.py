"""export_folder: a tfds dataset (tfds' mock data, no download) -> an image
folder that the folder pipeline reads back pixel for pixel."""

from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from isovolnet_jax import config_defaults
from isovolnet_jax.tools import export_folder
from isovolnet_jax.data import memory

ROOT = Path(__file__).resolve().parents[1]


def test_export_writes_a_folder_the_pipeline_reads(tmp_path):
  out = tmp_path / 'cifar10_png'
  with tfds.testing.mock_data(num_examples=30):
    counts = export_folder.export('cifar10', out)
    expected = {split: list(tfds.as_numpy(tfds.load('cifar10', split=split,
                                                     as_supervised=True)))
                for split in ('train', 'test')}
  assert counts == {'train': 30, 'test': 30}
  names = tfds.builder('cifar10').info.features['label'].names
  for split in ('train', 'test'):
    assert sorted(p.name for p in (out / split).iterdir()) == sorted(names)
    for i, (image, label) in enumerate(expected[split]):
      path = out / split / names[label] / f'{i:06d}.png'
      np.testing.assert_array_equal(np.asarray(Image.open(path)), image)

  config = config_defaults.load_config_file(ROOT / 'configs' / 'smoke.py')
  config.data.update(source='folder', path=str(out), cache_dir=str(tmp_path / 'cache'),
                     val_size=0)
  data = memory.load(config)
  assert data.class_names == sorted(names)
  assert data.train_images.shape == (30, 32, 32, 3) and data.test_images.shape == (30, 32, 32, 3)
  # The same images, in the folder reader's order: compare as sets of bytes.
  assert ({x.tobytes() for x in data.test_images}
          == {image.tobytes() for image, _ in expected['test']})
