"""airbench/checks.py: the knob combinations refused when a config is loaded
(`config_defaults.check`), each in one line that names the fix; the ones that
work pass."""

import subprocess
import sys

import pytest

from isovolnet_jax import config_defaults
from isovolnet_jax.errors import InputError

from helpers import ROOT, load_config_file

CONFIGS = sorted(p.stem for p in (ROOT / 'configs').glob('*.py'))


def _config(overrides, base=None):
  base = config_defaults.get_base_config() if base is None else load_config_file(base)
  return config_defaults.apply_overrides(base, overrides)


REFUSED = [
    # Two crops, two flips.
    ({'augment.translate': 2, 'augment.crop_padding': 4}, None,
     'two crops; set --config.augment.crop_padding=0'),
    ({'augment.alternating_flip': True, 'augment.flip': True}, None,
     'two flips; set --config.augment.flip=False'),
    # airbench's augmentation and whitening need the memory pipeline.
    ({'augment.translate': 2, 'augment.crop_padding': 0, 'data.pipeline': 'stream'}, None,
     'set --config.data.pipeline=memory'),
    ({'augment.alternating_flip': True, 'augment.flip': False, 'data.pipeline': 'stream'},
     None, 'set --config.data.pipeline=memory'),
    ({'data.pipeline': 'stream'}, 'cifar10_airbench94', 'set --config.data.pipeline=memory'),
    ({'whiten_images': 10, 'model.whiten_stem': True, 'data.pipeline': 'stream'}, None,
     'whiten_images needs the training images in memory'),
    # whiten_images without a 'whiten' layer: the stem where the model has one.
    ({'whiten_images': 10}, None,
     "no 'whiten' layer; set --config.model.whiten_stem=true or --config.whiten_images=0"),
    ({'whiten_images': 10, 'model.name': 'resnet20'}, None,
     "model 'resnet20' has no 'whiten' layer; set --config.whiten_images=0"),
    # SGD-only optimizer knobs.
    ({'optimizer.name': 'adam'}, 'cifar10_airbench94', 'implemented for sgd only'),
    ({'optimizer.name': 'adamw', 'optimizer.per_1024': True}, None,
     'per_1024 are implemented for sgd only; set --config.optimizer.name=sgd'),
    ({'optimizer.name': 'rmsprop', 'optimizer.decay_all': True}, None,
     'decay_all are implemented for sgd only'),
    ({'optimizer.name': 'adamw', 'optimizer.bn_bias_lr_scale': 64.0}, None,
     'bn_bias_lr_scale are implemented for sgd only'),
    ({'optimizer.name': 'adamw', 'optimizer.freeze_bn_scale': True}, None,
     'freeze_bn_scale are implemented for sgd only'),
    ({'optimizer.per_1024': True}, 'cifar10_airbench94_muon', 'per_1024 are implemented'),
    ({'optimizer.decay_all': True}, 'cifar10_airbench94_muon', 'decay_all are implemented'),
    # muon's own keys.
    ({'optimizer.name': 'sgd'}, 'cifar10_airbench94_muon',
     "optimizer.muon_head_lr is for optimizer.name='muon', not 'sgd'; "
     'set --config.optimizer.name=muon'),
    ({'optimizer.muon_ns_steps': 5}, None, "muon_ns_steps is for optimizer.name='muon'"),
    # The TTA knob.
    ({'eval_tta': 'crops'}, None, "unknown eval_tta='crops'; choose one of"),
]


@pytest.mark.parametrize('overrides, base, match', REFUSED)
def test_each_refused_combination_is_one_line_naming_the_fix(overrides, base, match):
  config = _config(overrides, base)
  with pytest.raises(InputError, match=match.replace('.', r'\.').replace('(', r'\(')) as e:
    config_defaults.check(config)
  assert '\n' not in str(e.value)


@pytest.mark.parametrize('name', CONFIGS)
def test_every_config_passes(name):
  config_defaults.check(load_config_file(name))


@pytest.mark.parametrize('overrides, base', [
    # The whitening freezes go with any optimizer; freeze_bn_scale with muon.
    ({'optimizer.name': 'adamw', 'optimizer.freeze_whiten_kernel': True,
      'optimizer.whiten_bias_epochs': 3.0, 'model.whiten_stem': True,
      'whiten_images': 100}, None),
    ({'optimizer.freeze_bn_scale': True}, 'cifar10_airbench94_muon'),
    ({'eval_tta': ''}, None), ({'eval_tta': 'none'}, None), ({'eval_tta': 'flip'}, None),
    ({'augment.translate': 2, 'augment.crop_padding': 0, 'augment.flip': True}, None),
])
def test_combinations_that_work_pass(overrides, base):
  config_defaults.check(_config(overrides, base))


def _main(*flags):
  return subprocess.run([sys.executable, '-m', 'isovolnet_jax.main', '--config=configs/smoke.py',
                         '--workdir=unused', *flags], cwd=ROOT, capture_output=True,
                        text=True, timeout=300)


@pytest.mark.parametrize('flag, match', [
    ('--config.augment.translate=2', 'set --config.augment.crop_padding=0'),
    ('--config.eval_flip=true', "'eval_flip' on the command line: eval_flip is gone"),
])
def test_the_command_line_refuses_before_anything_starts(flag, match):
  out = _main(flag)
  lines = [l for l in out.stderr.splitlines() if l.strip()]
  assert out.returncode == 2, out.stderr[-2000:]
  assert lines[-1].startswith('error: ') and match in lines[-1], out.stderr[-2000:]
  assert 'eval_tta' in lines[-1] or 'eval_flip' not in flag
  assert not (ROOT / 'unused').exists()
