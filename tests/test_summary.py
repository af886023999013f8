"""isovolnet_jax.summary: per-layer figures add up to the real model."""

import json
import math
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from isovolnet_jax import config_defaults
from isovolnet_jax import conv_arithmetic as ca
from isovolnet_jax import summary
from isovolnet_jax.errors import InputError
from isovolnet_jax.models import create_model

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_config(name: str) -> ml_collections.ConfigDict:
  return config_defaults.load_config_file(ROOT / 'configs' / name)


def real_param_count(config, shape, num_classes) -> int:
  model = create_model(config.model, num_classes)
  variables = jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((1, *shape)), train=False))
  return sum(math.prod(v.shape) for v in jax.tree.leaves(variables['params']))


def run_cli(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', 'isovolnet_jax.summary', *args],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize('name', [
    'cifar10.py', 'cifar10_isovolnet_seed.py', 'cifar10_isovolnet_standard.py',
    'cifar10_dense_ds.py',
    'cifar10_dilated_ds.py', 'cifar10_mobilenet_v2.py', 'cifar10_simple_cnn.py',
    'cifar10_resnet20.py', 'cifar10_fast_cpu.py'])
def test_layers_add_up_to_the_real_parameters(name):
  config = load_config(name)
  result = summary.summarize(config, (32, 32, 3), 10)
  assert result['total_params'] == real_param_count(config, (32, 32, 3), 10)
  assert result['total_params'] == sum(l['params'] for l in result['layers'])
  assert result['total_flops'] == sum(l['flops'] for l in result['layers']) > 0
  for layer in result['layers']:
    assert layer['volume'] == math.prod(layer['output_shape'])


def test_conv_and_dense_flops_come_from_conv_arithmetic():
  result = summary.summarize(load_config('cifar10_resnet20.py'), (32, 32, 3), 10)
  layers = {l['path']: l for l in result['layers']}
  stem = layers['stem/Conv_0']
  assert stem['output_shape'] == [32, 32, 16] and stem['params'] == 3 * 3 * 3 * 16
  assert stem['flops'] == ca.conv_flops(32, 32, 3, 16, 3, bias=False)
  assert layers['classifier']['flops'] == ca.dense_flops(64, 10)
  # ResNet-20's convs do 40,550,400 multiply-adds (the usual "41M FLOPs",
  # which count MACs), the classifier 640 plus 10 bias adds.
  assert result['total_flops'] == 2 * 40_550_400 + 2 * 640 + 10


def test_fast_cnn_flops_count_its_padded_stem_as_a_3_channel_conv():
  result = summary.summarize(load_config('cifar10_fast_cpu.py'), (32, 32, 3), 10)
  stem = {l['path']: l for l in result['layers']}['conv0/Conv_0']
  assert stem['flops'] == ca.conv_flops(32, 32, 3, 24, 3, bias=False)
  # 3x3 convs 24-32-32-64-64-80-80 at 32, 32, 16, 16, 8, 8, 4 pixels a side.
  macs = 9 * (1024 * (3 * 24 + 24 * 32) + 256 * (32 * 32 + 32 * 64)
              + 64 * (64 * 64 + 64 * 80) + 16 * 80 * 80)
  assert result['total_flops'] == 2 * macs + 2 * 80 * 10 + 10


def test_model_sizes():
  dilated = summary.summarize(load_config('cifar10_dilated_ds.py'), (32, 32, 3), 10)
  assert dilated['total_params'] == 100_416 < 200_000
  resnet = summary.summarize(load_config('cifar10_resnet20.py'), (32, 32, 3), 10)
  assert 260_000 <= resnet['total_params'] <= 280_000
  # IsoVolNet: the seed's 5 blocks, and the default's 4 (docs/isovolnet.md's table).
  seed = summary.summarize(load_config('cifar10_isovolnet_seed.py'), (32, 32, 3), 10)
  assert seed['total_params'] == 2_566_747
  default = summary.summarize(load_config('cifar10.py'), (32, 32, 3), 10)
  assert default['total_params'] == 169_819


def test_defaults_follow_the_config():
  imagenet = load_config('imagenet_mobilenet_v2.py')
  assert summary.default_input_shape(imagenet) == (224, 224, 3)
  assert summary.default_num_classes(imagenet) == 1000
  cifar = load_config('cifar10.py')
  assert summary.default_input_shape(cifar) == (32, 32, 3)
  assert summary.default_num_classes(cifar) == 10
  with pytest.raises(InputError, match='H,W,C'):
    summary.parse_shape('32,32')


def test_cli_json_on_imagenet_mobilenet_v2():
  proc = run_cli('--config=configs/imagenet_mobilenet_v2.py', '--json')
  assert proc.returncode == 0, proc.stderr
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result['total_params'] == 3_504_872
  assert result['input_shape'] == [224, 224, 3] and result['num_classes'] == 1000
  assert result['layers'] and {'path', 'output_shape', 'volume', 'params',
                               'flops'} <= set(result['layers'][0])
  assert '3,504,872' in proc.stdout  # The table's total line.


def test_cli_overrides_and_errors():
  proc = run_cli('--config=configs/cifar10.py', '--config.model.conv=standard',
                 '--input_shape=64,64,3', '--json')
  assert proc.returncode == 0, proc.stderr
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  config = load_config('cifar10.py')
  config.model.conv = 'standard'
  assert result['total_params'] == real_param_count(config, (64, 64, 3), 10)
  proc = run_cli('--config=configs/cifar10.py', '--input_shape=32,32')
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      "error: --input_shape='32,32' must be H,W,C, e.g. 32,32,3"]
