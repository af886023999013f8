"""predict.py: the library against model.apply, and the command line on real files."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from isovolnet_jax import config_defaults
from isovolnet_jax import checkpointing, predict, train
from isovolnet_jax.errors import InputError
from isovolnet_jax.data import normalize

ROOT = Path(__file__).resolve().parents[1]


def smoke_config(data_path, cache_dir):
  config = config_defaults.load_config_file(ROOT / 'configs' / 'smoke.py')
  config.data.source = 'folder'
  config.data.path = str(data_path)
  config.data.cache_dir = str(cache_dir)
  return config


@pytest.fixture(scope='module')
def workdir(small_cifar, tmp_path_factory):
  """A 20-step smoke run on the small CIFAR copy (about 10 s here)."""
  tmp = tmp_path_factory.mktemp('predict_run')
  train.train_and_evaluate(smoke_config(small_cifar, tmp / 'cache'), str(tmp / 'run'))
  return tmp / 'run'


@pytest.fixture(scope='module')
def images(small_cifar, tmp_path_factory):
  """A 40x56 PNG (a CIFAR cat upscaled), a CIFAR JPEG and a 20x20 PNG."""
  tmp = tmp_path_factory.mktemp('predict_images')
  jpg = sorted((small_cifar / 'test' / 'cat').iterdir())[0]
  big = tmp / 'cat_40x56.png'
  Image.open(jpg).resize((56, 40), Image.BICUBIC).save(big)  # PIL sizes are (w, h).
  small = tmp / 'tiny_20x20.png'
  Image.new('RGB', (20, 20), (120, 80, 40)).save(small)
  return {'big': big, 'jpg': jpg, 'small': small}


def cli(*args, cwd=None):
  return subprocess.run([sys.executable, '-m', 'isovolnet_jax.predict', *map(str, args)],
                        capture_output=True, text=True, cwd=cwd, timeout=120,
                        env={**os.environ, 'JAX_PLATFORMS': 'cpu'})


def test_cli_prints_top_k_and_json(workdir, images):
  r = cli(f'--workdir={workdir}', '--json', '--top_k=3', images['big'], images['jpg'])
  assert r.returncode == 0, r.stderr
  lines = r.stdout.strip().splitlines()
  # The library's probabilities for the same files: the CLI prints their top 3.
  run = checkpointing.load_run(workdir)
  probs = predict.predict(run, [predict.load_image(images[k]) for k in ('big', 'jpg')])
  expected = []
  for p in probs:
    order = np.argsort(-p)[:3]
    expected.append([(run.class_names[i], float(p[i])) for i in order])
  for line, f, want in zip(lines[:2], (images['big'], images['jpg']), expected):
    assert line == f'{f}: ' + ', '.join(f'{name} {prob:.2f}' for name, prob in want)
  out = json.loads(lines[-1])
  assert [o['file'] for o in out] == [str(images['big']), str(images['jpg'])]
  for o, want in zip(out, expected):
    assert [p['class'] for p in o['top_k']] == [name for name, _ in want]
    np.testing.assert_allclose([p['probability'] for p in o['top_k']],
                               [prob for _, prob in want], atol=5e-5 + 1e-6)


def test_cli_refuses_small_image_in_one_line(workdir, images):
  r = cli(f'--workdir={workdir}', images['big'], images['small'])
  assert r.returncode == 2
  assert r.stdout == ''
  # The size check runs before anything imports TensorFlow: stderr is just this.
  assert r.stderr.strip().splitlines() == [
      f'error: {images["small"]} is 20x20, smaller than the 32x32 minimum; use a larger image']


@pytest.mark.parametrize('case', ['missing_file', 'not_a_run', 'no_checkpoints'])
def test_cli_bad_input_is_one_error_line(workdir, images, tmp_path, case):
  files, wd = [images['big']], workdir
  if case == 'missing_file':
    files = [tmp_path / 'nope.jpg']
  elif case == 'not_a_run':
    wd = tmp_path
  else:  # A run's description without its checkpoints.
    wd = tmp_path / 'run'
    wd.mkdir()
    for f in ('config.json', 'dataset.json'):
      shutil.copy(workdir / f, wd / f)
  r = cli(f'--workdir={wd}', *files)
  assert r.returncode == 2
  assert 'Traceback' not in r.stderr
  errors = [l for l in r.stderr.splitlines() if l.startswith('error: ')]
  assert len(errors) == 1 and r.stderr.strip().endswith(errors[0])
  assert {'missing_file': 'nope.jpg does not exist', 'not_a_run': 'config.json does not exist',
          'no_checkpoints': 'no checkpoint in'}[case] in errors[0]


def test_predict_matches_model_apply(workdir, images, small_cifar):
  run = checkpointing.load_run(workdir)
  files = [images['big'], images['jpg']] + sorted((small_cifar / 'test' / 'dog').iterdir())[:9]
  loaded = [predict.load_image(f) for f in files]
  assert run.config.eval_tta in ('', 'none')
  probs = predict.predict(run, loaded, batch_size=4)  # 11 images: 3 batches, the last padded.
  assert probs.dtype == np.float32 and probs.shape == (11, len(run.class_names))
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
  # Directly: resize the 40x56 one with jax.image.resize, the rest are 32x32.
  x = np.stack([np.asarray(jax.image.resize(im.astype(np.float32), (32, 32, 3),
                                            'bilinear', antialias=True).round().clip(0, 255)
                           ).astype(np.uint8) if im.shape != (32, 32, 3) else im
                for im in loaded])
  logits = run.model.apply(run.variables, normalize(x), train=False)
  np.testing.assert_array_equal(probs.argmax(-1), np.asarray(logits).argmax(-1))
  np.testing.assert_allclose(probs, jax.nn.softmax(logits), atol=1e-5)
  # A uint8 batch array of the run's shape goes through as is.
  np.testing.assert_allclose(predict.predict(run, x), probs, atol=1e-6)
  assert predict.predict(run, []).shape == (0, len(run.class_names))


def test_predict_with_flip_tta_averages_with_the_mirror(workdir, small_cifar):
  """A run whose config has eval_tta='flip' predicts
  the softmax of its logits averaged with the mirror images', as evaluate does."""
  run = checkpointing.load_run(workdir)
  x = np.stack([predict.load_image(f) for f in sorted((small_cifar / 'test' / 'cat').iterdir())])
  flipped_config = run.config.copy_and_resolve_references()
  flipped_config.eval_tta = 'flip'
  flipped = dataclasses.replace(run, config=flipped_config)
  probs = predict.predict(flipped, x, batch_size=8)  # 20 images: the last batch padded.

  def apply(images):
    return run.model.apply(run.variables, normalize(images), train=False)

  np.testing.assert_allclose(probs, jax.nn.softmax((apply(x) + apply(x[:, :, ::-1])) / 2),
                             atol=1e-5)
  plain = predict.predict(run, x)
  np.testing.assert_allclose(plain, jax.nn.softmax(apply(x)), atol=1e-5)
  # This 20-step model is not mirror-symmetric: the flip changes its outputs
  # by far more than the tolerance above.
  assert np.abs(probs - plain).max() > 1e-3


def test_load_image_makes_rgb(tmp_path):
  rgb = (np.arange(40 * 48 * 3) % 256).astype(np.uint8).reshape(40, 48, 3)
  Image.fromarray(rgb).convert('L').save(tmp_path / 'gray.png')
  Image.fromarray(rgb).convert('RGBA').save(tmp_path / 'rgba.png')
  gray = predict.load_image(tmp_path / 'gray.png')
  assert gray.shape == (40, 48, 3) and gray.dtype == np.uint8
  assert (gray[..., 0] == gray[..., 2]).all()
  np.testing.assert_array_equal(predict.load_image(tmp_path / 'rgba.png'), rgb)
  (tmp_path / 'text.png').write_text('not an image')
  with pytest.raises(InputError, match='not an image'):
    predict.load_image(tmp_path / 'text.png')


def test_to_rgb_and_resize():
  assert predict.to_rgb(np.zeros((32, 40), np.uint8)).shape == (32, 40, 3)
  assert predict.to_rgb(np.zeros((32, 40, 4), np.uint8)).shape == (32, 40, 3)
  with pytest.raises(InputError, match=r'small.png is 31x64, smaller than the 32x32'):
    predict.to_rgb(np.zeros((31, 64, 3), np.uint8), 'small.png')
  with pytest.raises(InputError, match='uint8'):
    predict.to_rgb(np.zeros((32, 32, 3), np.float32))
  flat = np.full((40, 56, 3), 77, np.uint8)
  out = predict.resize(flat, 32, 32)
  assert out.shape == (32, 32, 3) and out.dtype == np.uint8 and (out == 77).all()
