"""Which airbench knobs go together: checked once, when a config is loaded.

`check(config)` refuses, with a one-line `InputError` that names the setting
to change, the combinations that would silently do two things, or nothing:

- `augment.translate` with `augment.crop_padding` (two crops), or
  `augment.alternating_flip` with `augment.flip` (two flips);
- `augment.translate`, `augment.alternating_flip` or `whiten_images` with
  `data.pipeline='stream'` (they need the memory pipeline);
- `whiten_images` for a model without a 'whiten' layer (only `airbench`, and
  isovolnet / fast_cnn / dilated_ds with `model.whiten_stem=True`, have one);
- the SGD-only optimizer knobs (`per_1024`, `decay_all`, `bn_bias_lr_scale`,
  `freeze_bn_scale`; the last also with muon) with another optimizer;
  `freeze_whiten_kernel` and `whiten_bias_epochs` go with any;
- `optimizer.muon_*` with an optimizer other than muon;
- an `eval_tta` that is not one of `tta.TTA_MODES`.

`config_defaults.check` calls it: the command line (`cli.run`), training
(`train.train_and_evaluate`), a sweep's points (`tools/sweep.point_configs`)
and `evaluate`'s overrides. An unset knob is one at its schema default
(`config_defaults.get_base_config`).
"""

import ml_collections

from isovolnet_jax.errors import InputError

# optimizer keys of airbench's parameter groups; their schema defaults leave them off.
GROUP_KEYS = ('decay_all', 'bn_bias_lr_scale', 'freeze_bn_scale', 'freeze_whiten_kernel',
              'whiten_bias_epochs')
# Those of them every optimizer takes: the whitening layer's freezes.
WHITEN_KEYS = frozenset({'freeze_whiten_kernel', 'whiten_bias_epochs'})
# Those muon takes too (its BatchNorm scales, if any, train with the biases).
MUON_KEYS = WHITEN_KEYS | {'freeze_bn_scale'}
# optimizer.name='muon''s own keys.
MUON_ONLY = ('muon_momentum', 'muon_ns_steps', 'muon_normalize', 'muon_bias_lr',
             'muon_head_lr')


def _default_optimizer() -> ml_collections.ConfigDict:
  from isovolnet_jax import config_defaults  # pylint: disable=import-outside-toplevel
  return config_defaults.get_base_config().optimizer


def groups_on(opt: ml_collections.ConfigDict,
              defaults: ml_collections.ConfigDict | None = None) -> set[str]:
  """The `GROUP_KEYS` set away from their defaults (`defaults`: the schema's
  optimizer, built here when not given; `optim.create_optimizer` builds the
  grouped optimizer when there are any)."""
  defaults = _default_optimizer() if defaults is None else defaults
  return {k for k in GROUP_KEYS if opt[k] != defaults[k]}


def check(config: ml_collections.ConfigDict) -> None:
  """Raises InputError for a combination of airbench's knobs that cannot work."""
  check_augment(config)
  check_whitening(config)
  check_optimizer(config.optimizer)
  check_tta(config)


def check_augment(config: ml_collections.ConfigDict) -> None:
  aug = config.augment
  if aug.translate and aug.crop_padding:
    raise InputError(f'augment.translate={aug.translate} and augment.crop_padding='
                     f'{aug.crop_padding} are two crops; set --config.augment.crop_padding=0')
  if aug.alternating_flip and aug.flip:
    raise InputError('augment.alternating_flip and augment.flip are two flips; set '
                     '--config.augment.flip=False')
  if config.data.pipeline == 'stream' and (aug.translate or aug.alternating_flip):
    raise InputError("augment.translate and augment.alternating_flip are for "
                     "data.pipeline='memory'; set --config.data.pipeline=memory")


def check_whitening(config: ml_collections.ConfigDict) -> None:
  n, model = config.whiten_images, config.model
  if not n:
    return
  if model.name != 'airbench' and not model.whiten_stem:
    from isovolnet_jax import models  # pylint: disable=import-outside-toplevel
    cls = models.MODELS.get(model.name)
    stem = ('--config.model.whiten_stem=true or '
            if cls is not None and 'whiten_stem' in cls.__dataclass_fields__ else '')
    raise InputError(f'whiten_images={n} but model {model.name!r} has no '
                     f"'whiten' layer; set {stem}--config.whiten_images=0")
  if config.data.pipeline == 'stream':
    raise InputError("whiten_images needs the training images in memory; set "
                     "--config.data.pipeline=memory (or --config.whiten_images=0)")


def check_optimizer(opt: ml_collections.ConfigDict) -> None:
  defaults = _default_optimizer()
  on = groups_on(opt, defaults)
  sgd_only = sorted(on - (MUON_KEYS if opt.name == 'muon' else WHITEN_KEYS))
  sgd_only += ['per_1024'] if opt.per_1024 else []
  if sgd_only and opt.name != 'sgd':
    raise InputError(f"optimizer.name={opt.name!r}: airbench's optimizer knobs "
                     f"{', '.join(sgd_only)} are implemented for sgd only; set "
                     f"--config.optimizer.name=sgd or turn them off")
  muon_set = [k for k in MUON_ONLY if opt[k] != defaults[k]]
  if muon_set and opt.name != 'muon':
    raise InputError(f"optimizer.{muon_set[0]} is for optimizer.name='muon', not "
                     f"{opt.name!r}; set --config.optimizer.name=muon or leave it at "
                     f"its default, {defaults[muon_set[0]]!r}")


def check_tta(config: ml_collections.ConfigDict) -> None:
  from isovolnet_jax.airbench import tta  # pylint: disable=import-outside-toplevel
  if config.eval_tta not in tta.TTA_MODES:
    raise InputError(f'unknown eval_tta={config.eval_tta!r}; choose one of '
                     f"{list(tta.TTA_MODES)} ('' is 'none')")
