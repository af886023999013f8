"""Configs: the schema every `configs/*.py` starts from, loading, overriding, upgrading.

Every key a run can take is here, with its default, so that a typo on the
command line (`--config.optimiser.name=adam`) is refused by ml_collections
instead of silently ignored. The one place for config helpers:
`load_config_file` (a configs/*.py), `apply_overrides` (dotted keys, as sweep
points and `evaluate --config.KEY=VALUE` give them), `add_missing` (an
older run's config.json gets the keys added since, with their defaults, and
retired keys translated: `RETIRED`) and `check` (knobs that cannot work
together, refused when the config is loaded: airbench/checks.py).
"""

import ast
import copy
import difflib
import importlib.util
import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import ml_collections

from isovolnet_jax.errors import InputError


def load_module(path: str | os.PathLike) -> ModuleType:
  """Imports a Python file by path (configs/ and sweep files are not packages)."""
  spec = importlib.util.spec_from_file_location(
      f'_isovolnet_file_{os.path.splitext(os.path.basename(path))[0]}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_config_file(path: str | os.PathLike) -> ml_collections.ConfigDict:
  """`get_config()` of a config file, as --config=PATH would give it."""
  return load_module(path).get_config()


# Keys the schema no longer has -> how to say it now. An old run's config.json
# holding one is upgraded (`add_missing`); an override naming one is refused
# with this hint.
RETIRED = {
    'eval_flip': "eval_flip is gone: eval_tta names the test-time augmentation; "
                 "set --config.eval_tta=flip (or '' for none)",
}


def check(config: ml_collections.ConfigDict) -> None:
  """Refuses, with a one-line InputError naming the fix, knobs that cannot
  work together (airbench's: `airbench.checks.check`). Run when a config is
  loaded: the command line (`cli.run`), `train.train_and_evaluate`, a
  sweep's points, `evaluate`'s overrides."""
  from isovolnet_jax.airbench import checks  # pylint: disable=import-outside-toplevel
  checks.check(config)


def get_base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.source = 'tfds'    # 'tfds' or 'folder'.
  config.data.name = 'cifar10'   # tfds dataset name (source='tfds').
  config.data.tfds_data_dir = ''  # '' = tfds' default (~/tensorflow_datasets).
  config.data.download = 'auto'  # 'auto': only if not prepared and online; 'never'.
  config.data.path = ''          # Folder with train/<class>/*.jpg, test/<class>/*.jpg.
  config.data.image_size = 0     # 0 = keep the images' size; N = resize to N x N.
  config.data.val_size = 5000    # Last N training images (deterministic).
  config.data.cache_dir = ''     # '' = $XDG_CACHE_HOME or ~/.cache /isovolnet_jax.
  # 'memory': whole splits decoded into RAM, augmentation in the jitted step
  # (CIFAR-sized data). 'stream': read, decoded and augmented (random-resized
  # crop + flip) by tf.data on the host, each process its share (ImageNet).
  config.data.pipeline = 'memory'
  config.data.train_split = ''   # '' = 'train'.
  config.data.eval_split = ''    # '' = 'test', or 'validation' if there is no test split.
  config.data.eval_resize = 0    # stream eval: shorter side before the centre crop; 0 = image_size / 0.875.
  config.data.shuffle_window = 10000  # stream, tfds: examples shuffled together (encoded bytes in RAM).
  config.data.prefetch = 2       # Batches a thread sends to the devices ahead of the step.
  # 'auto': the memory pipeline's training split lives on the devices when they
  # are accelerators and it fits (data/resident.py), each step's batch gathered
  # inside the step; on CPU it stays on the host. 'on', 'off' force either.
  config.data.device_resident = 'auto'

  config.augment = ml_collections.ConfigDict()
  config.augment.crop_padding = 4  # Random crop after zero padding; 0 = off.
  config.augment.flip = True       # Random horizontal flip.
  config.augment.area_range = (0.08, 1.0)    # stream: random-resized crop's area fraction...
  config.augment.aspect_range = (0.75, 1.3333)  # ...and aspect ratio (Inception).
  # airbench's augmentation (airbench/augment.py; memory pipeline): set them in
  # place of `flip` and `crop_padding`, not beside them.
  config.augment.alternating_flip = False  # Each image mirrored on alternate epochs, not at random.
  config.augment.translate = 0     # > 0: random shift by up to N px after reflect padding.

  config.model = ml_collections.ConfigDict()
  config.model.name = 'isovolnet'
  config.model.whiten_stem = False  # isovolnet/fast_cnn/dilated_ds: airbench's whitening conv first.

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'sgd'        # sgd, adam, adamw, rmsprop, muon (see below).
  config.optimizer.learning_rate = 0.1  # Peak learning rate.
  config.optimizer.momentum = 0.9      # sgd, rmsprop, muon's SGD leaves.
  config.optimizer.nesterov = True     # sgd, muon (both groups).
  config.optimizer.b1 = 0.9            # adam, adamw.
  config.optimizer.b2 = 0.999          # adam, adamw.
  config.optimizer.eps = 1e-8          # adam, adamw, rmsprop.
  config.optimizer.decay = 0.9         # rmsprop.
  config.optimizer.weight_decay = 5e-4  # L2 on conv/dense kernels (decoupled for adamw).
  # constant, cosine, warmup_cosine, onecycle, piecewise, triangular, linear (to 0 at the end).
  config.optimizer.schedule = 'onecycle'
  config.optimizer.warmup_epochs = 2.0  # warmup_cosine; onecycle's rise is pct_start.
  config.optimizer.pct_start = 0.25    # onecycle: fraction of steps rising.
  config.optimizer.boundaries = (0.5, 0.75)  # piecewise: fractions of training...
  config.optimizer.decay_factor = 0.1  # ...where the rate is multiplied by this.
  # airbench94's tricks (docs/airbench.md), all off here; configs/cifar10_airbench94.py
  # turns them on. The optimizer ones need optim.create_optimizer's batch_size,
  # steps_per_epoch and total_steps arguments, which it asks for when missing.
  config.optimizer.start_factor = 0.2  # triangular: rate at step 0, x learning_rate...
  config.optimizer.end_factor = 0.07   # ...and at the end; the peak (1x) at pct_start.
  config.optimizer.per_1024 = False    # sgd: learning_rate, weight_decay per 1024 examples,
  # momentum-decoupled (airbench: 11.5, 0.0153); weight decay then scales with the schedule.
  config.optimizer.decay_all = False   # sgd: weight decay on every trained leaf, not kernels only.
  config.optimizer.bn_bias_lr_scale = 1.0  # sgd: BN biases' rate x this, same decay step (64).
  config.optimizer.freeze_bn_scale = False  # sgd: BatchNorm scales stay at their init, 1.
  config.optimizer.freeze_whiten_kernel = False  # The 'whiten' layer's kernel is not trained.
  config.optimizer.whiten_bias_epochs = -1.0  # >= 0: its bias frozen after this many epochs.
  config.optimizer.lookahead_every = 0      # > 0: lookahead every this many steps (airbench: 5)...
  config.optimizer.lookahead_start_epochs = 3.0  # ...from this epoch...
  config.optimizer.lookahead_base = 0.95    # ...slow-copy decay base**every * (step/total)**pow...
  config.optimizer.lookahead_pow = 3.0
  config.optimizer.lookahead_sync_epochs = True  # ...weights take the slow copy at each epoch end.
  # name='muon' (airbench94_muon, docs/airbench.md): Muon on the conv kernels at
  # learning_rate, Nesterov SGD (momentum, nesterov) on the rest: BatchNorm and other
  # biases at muon_bias_lr, dense kernels (the head) at muon_head_lr. Those two
  # rates and weight_decay are per example of a summed loss, as airbench's torch
  # SGD: the batch-mean rate is x batch_size, the L2 coefficient weight_decay / rate
  # (a decay of weight_decay * batch_size per step, x the schedule); Muon's leaves
  # are not decayed. The whitening bias's rate falls linearly to 0 over whiten_bias_epochs.
  config.optimizer.muon_momentum = 0.6   # Muon's (torch-style, Nesterov if nesterov) momentum.
  config.optimizer.muon_ns_steps = 3     # Newton-Schulz iterations.
  config.optimizer.muon_normalize = True  # Each kernel rescaled to norm sqrt(out) before a step.
  config.optimizer.muon_bias_lr = 0.053  # SGD rate of the biases, per example.
  config.optimizer.muon_head_lr = 0.67   # SGD rate of the dense kernels, per example.

  config.label_smoothing = 0.0
  config.num_epochs = 100
  config.num_train_steps = -1     # -1: num_epochs worth of steps.
  config.batch_size = 256         # Global, over all devices and hosts.
  config.eval_batch_size = 1000
  # Test-time augmentation, in training's evaluation, evaluate and predict:
  # '' or 'none' (the image alone), 'flip' (averaged with its mirror's logits) or
  # 'airbench6' (airbench's 6 weighted views, airbench/tta.py).
  config.eval_tta = ''
  # > 0: the model's 'whiten' layer kernel is computed from N training images
  # at initialisation (airbench/whitening.py; airbench: 5000).
  config.whiten_images = 0
  config.whiten_eps = 5e-4  # Added to the patch covariance's eigenvalues (airbench/whitening.py).
  config.log_every_steps = 50
  config.eval_every_epochs = 1.0
  # The split evaluated every eval_every_epochs: 'val', or 'test' to watch the
  # test curve (time to an accuracy); only val accuracy ranks checkpoints.
  config.periodic_eval = 'val'
  config.checkpoint_every_steps = 1000
  config.keep_checkpoints = 3     # Newest N, plus the best by val accuracy.
  config.max_train_time_minutes = 0.0  # > 0: stop (checkpoint, final eval) at this wall time.
  config.dtype = 'float32'  # Compute dtype: float32, bfloat16, mixed_bfloat16 or auto.
  # 'mixed_bfloat16': float32, but the convolutions take bfloat16 operands
  # (on CPU it avoids bfloat16's slow XLA:CPU elementwise work: BatchNorm &
  # co. stay float32; results/onednn/mixed measures it). 'auto':
  # mixed_bfloat16 where the convs run oneDNN's kernels on a CPU with native
  # bfloat16 (AVX512-BF16, AMX), float32 elsewhere (GPU and TPU included),
  # chosen per platform when the step is lowered. Params, optimizer state and
  # BatchNorm statistics stay float32 whichever.

  # Devices: a mesh over every device of every host. The batch is sharded
  # along 'data' and everything else is replicated; further axes (e.g.
  # ('data', 'model') with shape (-1, 2)) are there for model sharding later.
  config.mesh_shape = (-1,)       # One size per axis; one -1 = the rest of the devices.
  config.mesh_axes = ('data',)    # Must include 'data'.
  # > 1: each step's global batch is split into this many micro-batches whose
  # gradients are averaged before one update (memory of batch_size / k). With
  # BatchNorm each micro-batch normalizes with its own statistics.
  config.grad_accum_steps = 1
  return config


# ---------------------------------------------------------------- overrides


def _leaf_keys(config: ml_collections.ConfigDict, prefix: str = '') -> list[str]:
  keys = []
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict):
      keys += _leaf_keys(v, f'{prefix}{k}.')
    else:
      keys.append(f'{prefix}{k}')
  return keys


def _parse_string(text: str, current: Any, key: str) -> Any:
  """A command-line string -> the type of the field it replaces."""
  if isinstance(current, str):
    return text
  if isinstance(current, bool):
    if text.lower() in ('true', '1', 'yes'):
      return True
    if text.lower() in ('false', '0', 'no'):
      return False
    raise InputError(f'config key {key!r} is a bool; got {text!r} (use true or false)')
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    if current is None:
      return text
    raise InputError(f'config key {key!r} is a {type(current).__name__}; '
                     f'cannot read {text!r} as one') from None


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Mapping[str, Any] | None) -> ml_collections.ConfigDict:
  """A copy of `config` with dotted keys set ({'model.activation': 'swish'}).

  Unknown keys raise an InputError with the closest key. String values for
  non-string fields are parsed as the command line's would be ('1e-3' -> 0.001).
  """
  config = copy.deepcopy(config)
  for key, value in (overrides or {}).items():
    *path, leaf = key.split('.')
    node = config
    for part in path:
      node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      if key in RETIRED:
        raise InputError(f'config key {key!r}: {RETIRED[key]}')
      close = difflib.get_close_matches(key, _leaf_keys(config), n=1)
      hint = f"; did you mean {close[0]!r}?" if close else ''
      raise InputError(f'unknown config key {key!r}{hint}')
    current = node[leaf]
    if isinstance(current, ml_collections.ConfigDict):
      raise InputError(f'config key {key!r} is a group; set one of its fields, '
                       f'e.g. {key}.{next(iter(current.keys()), "name")}')
    if isinstance(value, str):
      value = _parse_string(value, current, key)
    if isinstance(current, (list, tuple)) and isinstance(value, (list, tuple)):
      value = type(current)(value)  # JSON turned the config's tuples into lists.
    try:
      node[leaf] = value
    except (TypeError, ValueError) as e:
      raise InputError(f'config key {key!r}: cannot set {value!r} '
                       f'(it holds {current!r}): {e}'.splitlines()[0]) from None
  return config


def add_missing(config: ml_collections.ConfigDict,
                defaults: ml_collections.ConfigDict | None = None) -> ml_collections.ConfigDict:
  """Upgrades `config` in place: keys of `defaults` (the schema) it lacks are
  added with their default values, so `--config.NEW_KEY=...` works on runs
  trained before the key existed, and its `RETIRED` keys are translated
  (eval_flip=True with no eval_tta -> eval_tta='flip'). Returns `config`."""
  if defaults is None:
    defaults = get_base_config()
    upgrade_retired(config)
  for key, value in defaults.items():
    if key not in config:
      config[key] = value
    elif isinstance(value, ml_collections.ConfigDict) and isinstance(
        config[key], ml_collections.ConfigDict):
      add_missing(config[key], value)
  return config


def upgrade_retired(config) -> None:
  """An old config's `RETIRED` keys in today's terms, in place (a ConfigDict,
  or the dict of a result.json)."""
  if 'eval_flip' in config:
    flip = config['eval_flip']
    del config['eval_flip']
    if flip and not config.get('eval_tta'):
      config['eval_tta'] = 'flip'
