"""configs/imagenet_mobilenet_v2.py trains end to end with the streaming
pipeline, by the command a pod runs (`python -m isovolnet_jax.main`), on
tfds' mock imagenet2012 and on a generated folder of 224x224 JPEGs. Tiny
overrides keep it fast: 2 steps of batch 4, width 0.25."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image
import pytest

from helpers import ROOT, metrics

TINY = ('--config.num_train_steps=2', '--config.batch_size=4', '--config.eval_batch_size=8',
        '--config.model.width_multiplier=0.25', '--config.data.val_size=4',
        '--config.log_every_steps=1')

# `main` as `python -m isovolnet_jax.main` runs it, inside tfds' mock data.
# tfds' mock wraps every as_dataset() in its MockFs, which redirects etils'
# epath, for every thread of the process, into a temporary folder deleted on
# exit. Orbax saves through epath in background threads, so a save still in
# flight when the evaluation after it builds its dataset wrote part of the
# checkpoint there: "No ArrayMetadata found for process_index=0 ...
# 2.orbax-checkpoint-tmp" (docs/checkpoints.md). The mock data need no file
# system but an existing data_dir, which NoMockFs writes for real.
MOCK_MAIN = textwrap.dedent('''
    import pathlib, sys
    from unittest import mock
    import tensorflow_datasets as tfds
    from tensorflow_datasets.testing import test_utils
    from isovolnet_jax import cli, main

    class NoMockFs:
      def __enter__(self):
        return self
      def __exit__(self, *exc):
        return False
      def add_file(self, path, content=None):
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content or '')

    data_dir, argv = sys.argv[1], sys.argv[2:]
    main.define_flags()
    with mock.patch.object(test_utils, 'MockFs', NoMockFs), \\
         tfds.testing.mock_data(num_examples=16, data_dir=data_dir):
      cli.run(main.main, argv=['main', *argv])
''')


def run(program, workdir, *flags):
  out = subprocess.run([sys.executable, *program, '--config=configs/imagenet_mobilenet_v2.py',
                        f'--workdir={workdir}', *TINY, *flags], cwd=ROOT, capture_output=True,
                       text=True, timeout=600, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
  assert out.returncode == 0, out.stderr[-3000:]
  return out


def check_trained(workdir, num_test):
  rows = metrics(workdir)
  assert [r['step'] for r in rows if r['split'] == 'train'] == [1, 2]
  test = [r for r in rows if r['split'] == 'test']
  assert len(test) == 1 and np.isfinite(test[0]['loss'])
  info = json.loads((workdir / 'dataset.json').read_text())
  assert info['image_shape'] == [224, 224, 3]
  assert (info['num_train'], info['num_val'], info['num_test']) == (12, 4, num_test)
  assert sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir()) == [2]
  return info


@pytest.mark.long
def test_imagenet_config_trains_on_mock_imagenet2012(tmp_path):
  out = run(['-c', MOCK_MAIN, str(tmp_path / 'tfds')], tmp_path / 'run')
  assert "Streaming imagenet2012: train='train'" in out.stderr
  info = check_trained(tmp_path / 'run', 16)
  assert len(info['class_names']) == 1000


@pytest.mark.long
def test_imagenet_config_trains_on_a_224_folder(tmp_path):
  """train/ and validation/ (no test/): evaluation finds 'validation'."""
  rng = np.random.default_rng(0)
  for split, n in (('train', 16), ('validation', 6)):
    for i in range(n):
      d = tmp_path / 'data' / split / f'n0{i % 3}'
      d.mkdir(parents=True, exist_ok=True)
      Image.fromarray(rng.integers(0, 256, (224, 224, 3), np.uint8)).save(d / f'{i}.JPEG')
  out = run(['-m', 'isovolnet_jax.main'], tmp_path / 'run', '--config.data.source=folder',
            f'--config.data.path={tmp_path / "data"}')
  assert "test='validation' (6)" in out.stderr
  info = check_trained(tmp_path / 'run', 6)
  assert info['class_names'] == ['n00', 'n01', 'n02']
