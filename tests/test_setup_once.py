"""One set-up: training, the benchmarks and evaluate build the model, state
and step through `train.build` / `models.from_config`, with the data set's
class count and size, not numbers written into the tools."""

import re
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from isovolnet_jax import config_defaults
from isovolnet_jax import data
from isovolnet_jax import sharding
from isovolnet_jax import summary
from isovolnet_jax.bench import benchmark
from isovolnet_jax.bench import input_pipeline

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'isovolnet_jax'


def _tiny(**overrides):
  config = config_defaults.get_base_config()
  config.model.name = 'fast_cnn'
  config.model.widths = (8, 8, 16)
  config.model.pool_after = (0, 1)
  config.batch_size = 4
  return config_defaults.apply_overrides(config, overrides)


def _five_class_folder(root: Path, per_class: int = 4) -> Path:
  rng = np.random.default_rng(0)
  for split in ('train', 'test'):
    for c in range(5):
      d = root / split / f'class{c}'
      d.mkdir(parents=True)
      for i in range(per_class):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f'{i}.png')
  return root


def test_input_pipeline_bench_takes_classes_and_size_from_the_data(tmp_path):
  config = _tiny(**{'data.source': 'folder', 'data.path': str(_five_class_folder(tmp_path / 'f')),
                    'data.cache_dir': str(tmp_path / 'cache'), 'data.val_size': 0})
  dataset = data.dataset(config)
  built, step = input_pipeline.training(config, dataset, sharding.make_mesh(config.batch_size))
  assert built.model.num_classes == 5
  assert built.plan.steps_per_epoch == 20 // 4  # 5 classes x 4 images, batches of 4.
  head = [x for x in jax.tree.leaves(built.state.params) if x.ndim == 2][-1]
  assert head.shape[-1] == 5
  del step


def test_benchmark_plans_with_the_configs_data_size():
  config = _tiny(**{'data.val_size': 5000})
  t = benchmark.jax_training(config, (32, 32, 3), 10)
  assert summary.default_num_train(config) == 45_000
  assert t['plan'].steps_per_epoch == 45_000 // 4
  t = benchmark.jax_training(config, (32, 32, 3), 5, num_train=40)
  assert t['plan'].steps_per_epoch == 10 and t['model'].num_classes == 5
  config = _tiny(**{'data.name': 'cifar100', 'data.val_size': 0})
  assert summary.default_num_train(config) == 50_000
  assert summary.default_num_classes(config) == 100


def test_no_tool_writes_the_data_sets_size_or_builds_the_model_by_hand():
  bench = sorted((PACKAGE / 'bench').glob('*.py'))
  for path in bench:
    text = path.read_text()
    assert not re.search(r'\b(50_?000|195)\b', text), path
  for path in sorted(PACKAGE.rglob('*.py')):
    if path.parts[-2:] == ('models', '__init__.py'):
      continue
    assert 'DTYPES[' not in path.read_text(), f'{path}: use models.from_config'
  evaluate = (PACKAGE / 'evaluate.py').read_text()
  assert 'from isovolnet_jax import train' not in evaluate  # The loss is losses.py's.
