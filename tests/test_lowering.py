"""model.conv_impl='auto' is chosen per platform when a computation is lowered.

Every CIFAR-10 zoo config's training step (`train.make_train_step`, 8 images
of 32x32, 10 classes) is traced once on this CPU machine and lowered for
CUDA and for CPU (jax lowers for a platform it does not have): the CUDA
program holds no oneDNN custom call (a CPU-only FFI target) and nothing from
`unrolled_conv` (its depthwise kernel gradient is a `lax.scan`), and has the
convolutions and loops of the same step built with conv_impl='lax'; the CPU
program calls oneDNN. So the tests fail if 'auto' goes back to choosing from
`jax.default_backend()` at Python time, in either direction.

Marker for `unrolled_conv`: the StableHLO's source locations
(`as_text(debug_info=True)`) name the Python file each op was traced from;
`test_the_markers_see_what_they_look_for` checks that they do.
"""

import pathlib

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from helpers import ROOT, load_config_file, require
from isovolnet_jax import models, onednn, optim, sharding, train
from isovolnet_jax.models import layers

CONFIGS = sorted(p.stem for p in (ROOT / 'configs').glob('cifar10*.py'))
BATCH = 8
UNROLLED = pathlib.Path(layers.unrolled_conv.__file__).name  # 'unrolled_conv.py'
ONEDNN = onednn.TARGET


def traced_train_step(name: str, conv_impl: str | None = None, dtype: str | None = None):
  """The config's training step, traced (not compiled) on abstract inputs."""
  config = load_config_file(name)
  with config.unlocked():
    config.batch_size = BATCH
    if dtype is not None:
      config.dtype = dtype
    if conv_impl is not None:  # Every model has the option; not every config sets it.
      config.model.conv_impl = conv_impl
  mesh = sharding.make_mesh(BATCH, grad_accum_steps=config.get('grad_accum_steps', 1))
  model = models.from_config(config, 10)
  tx = optim.create_optimizer(config.optimizer, config.optimizer.learning_rate,
                              batch_size=BATCH, steps_per_epoch=10, total_steps=100)
  state = jax.eval_shape(lambda: train.create_train_state(
      model, (32, 32, 3), tx, jax.random.key(0), NamedSharding(mesh, P())))
  images = jax.ShapeDtypeStruct((BATCH, 32, 32, 3), jnp.uint8)
  labels = jax.ShapeDtypeStruct((BATCH,), jnp.int32)
  return train.make_train_step(config, 10, mesh).trace(state, images, labels,
                                                        jax.random.key(1))


def stablehlo(traced, platform: str) -> str:
  return traced.lower(lowering_platforms=(platform,)).as_text(debug_info=True)


def op_counts(text: str) -> dict[str, int]:
  return {op: text.count(op) for op in
          ('stablehlo.convolution', 'stablehlo.while', 'stablehlo.custom_call')}


# The configs with grouped convs of several input channels a group, which
# 'auto' runs unrolled on GPU (seed 002's dilated DS net: 2 a group).
GROUPED_ON_GPU = {'cifar10_dilated_ds'}


@pytest.mark.parametrize('name', CONFIGS)
def test_train_step_lowers_per_platform(name):
  traced = traced_train_step(name)
  cuda = stablehlo(traced, 'cuda')
  assert ONEDNN not in cuda
  if name in GROUPED_ON_GPU:
    assert UNROLLED in cuda
  else:
    assert UNROLLED not in cuda
    # 'lax' for every layer on GPU: the convolutions and loops of the same step
    # built with conv_impl='lax'.
    assert op_counts(cuda) == op_counts(stablehlo(traced_train_step(name, 'lax'), 'cuda'))
  cpu = stablehlo(traced, 'cpu')
  require(onednn.available(),
          f'the oneDNN extension is unavailable ({onednn.unavailable_reason()}): '
          f"the CPU half of this test needs it")
  assert ONEDNN in cpu


def test_the_markers_see_what_they_look_for():
  """Explicit 'unrolled' keeps its meaning on every platform, and the
  location marker finds it, loop included (dilated DS: grouped convs;
  IsoVolNet: depthwise convs, whose kernel gradient is unrolled_conv's scan
  at a batch of 8)."""
  for name in ('cifar10_dilated_ds', 'cifar10'):
    traced = traced_train_step(name, 'unrolled')
    for platform in ('cpu', 'cuda'):
      text = stablehlo(traced, platform)
      assert UNROLLED in text and ONEDNN not in text, (name, platform)
  lax_text = stablehlo(traced_train_step('cifar10', 'lax'), 'cuda')
  assert UNROLLED not in lax_text
  assert op_counts(text)['stablehlo.while'] > op_counts(lax_text)['stablehlo.while']


def test_cpu_default_still_runs_onednn():
  """On this CPU machine a plain jit (no platform named) of the training step
  calls oneDNN for the forward pass and both gradients."""
  require(onednn.available(),
          f'the oneDNN extension is unavailable ({onednn.unavailable_reason()})')
  assert jax.default_backend() == 'cpu'
  assert layers.resolve_conv_impl('auto') == 'onednn'
  text = traced_train_step('cifar10').lower().as_text()
  # 4 blocks, each a depthwise and a pointwise conv: forward, input gradient
  # and kernel gradient of each, less the first conv's input gradient (the
  # images need none).
  assert text.count(f'@{ONEDNN}') == 3 * 8 - 1
  assert UNROLLED not in text


def test_without_onednn_auto_is_unrolled_on_cpu_only(monkeypatch):
  monkeypatch.setattr(onednn, '_load', lambda: (None, 'switched off by the test'))
  traced = traced_train_step('cifar10')
  cpu, cuda = stablehlo(traced, 'cpu'), stablehlo(traced, 'cuda')
  assert UNROLLED in cpu and ONEDNN not in cpu
  assert UNROLLED not in cuda and ONEDNN not in cuda
  assert 'oneDNN unavailable: switched off by the test' in \
      layers.conv_impl_description('auto')


def test_explicit_onednn_is_cpu_only():
  """conv_impl='onednn' lowered for CUDA is lax there (no CPU custom call)."""
  require(onednn.available(),
          f'the oneDNN extension is unavailable ({onednn.unavailable_reason()})')
  traced = traced_train_step('cifar10_mobilenet_v2', 'onednn')
  assert ONEDNN in stablehlo(traced, 'cpu')
  cuda = stablehlo(traced, 'cuda')
  assert ONEDNN not in cuda
  assert op_counts(cuda) == op_counts(
      stablehlo(traced_train_step('cifar10_mobilenet_v2', 'lax'), 'cuda'))


@pytest.mark.parametrize('in_channels, groups, unrolled', [
    (8, 8, False),   # depthwise: lax (IsoVolNet, MobileNetV2).
    (8, 4, True),    # 2 input channels a group: unrolled (dilated DS).
    (8, 1, False),   # plain: lax.
])
def test_gpu_runs_lax_except_grouped_convs_of_several_inputs(in_channels, groups, unrolled):
  x = jax.ShapeDtypeStruct((2, 8, 8, in_channels), jnp.float32)
  k = jax.ShapeDtypeStruct((3, 3, in_channels // groups, 8), jnp.float32)
  conv = layers.conv_function('auto')
  f = jax.jit(lambda x, k: conv(x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                feature_group_count=groups))
  cuda = f.trace(x, k).lower(lowering_platforms=('cuda',)).as_text(debug_info=True)
  assert (UNROLLED in cuda) == unrolled
  assert ONEDNN not in cuda
