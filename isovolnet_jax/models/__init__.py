"""Model zoo: `create_model(config.model, num_classes, dtype)`.

Every model is a `flax.linen.Module` called as
`model.apply(variables, images, train=...)` on float NHWC images in [-1, 1],
returns float32 logits, keeps BatchNorm statistics in the `batch_stats`
collection and draws dropout noise from the `dropout` RNG stream.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from isovolnet_jax import onednn
from isovolnet_jax.errors import InputError
from isovolnet_jax.airbench.model import AirBench  # airbench's net lives with airbench.
from isovolnet_jax.models.dense_ds import DenseDS
from isovolnet_jax.models.dilated_ds import DilatedDS
from isovolnet_jax.models import layers
from isovolnet_jax.models.fast_cnn import FastCNN
from isovolnet_jax.models.isovolnet import IsoVolNet
from isovolnet_jax.models.mobilenet_v2 import MobileNetV2
from isovolnet_jax.models.resnet import CifarResNet
from isovolnet_jax.models.simple_cnn import SimpleCNN

# config.dtype -> compute dtype (params, optimizer state and BN stats stay fp32).
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'mixed_bfloat16': jnp.float32,
          'auto': jnp.float32}
# config.dtype -> the convolutions' operand dtype where it is not the compute
# dtype: 'mixed_bfloat16' computes in float32 but for its convs, which take
# bfloat16 operands and give float32 back (layers.conv_function's comment has
# why: XLA:CPU's bf16 elementwise work). 'auto': mixed_bfloat16 where it pays
# (oneDNN's convs on a CPU with native bfloat16), float32 elsewhere, chosen
# per platform when lowered (the comment above `layers.native_bfloat16`).
CONV_DTYPES = {'mixed_bfloat16': jnp.bfloat16, 'auto': layers.AUTO}


def resolve_dtype(config: ml_collections.ConfigDict, platform: str | None = None) -> str:
  """What `config.dtype` computes in on `platform` (None: this process's
  backend): 'auto' resolved to 'mixed_bfloat16' or 'float32', the others as
  they are."""
  if config.dtype != 'auto':
    return config.dtype
  if layers.auto_conv_dtype(config.model.get('conv_impl', 'auto'), platform) == 'bfloat16':
    return 'mixed_bfloat16'
  return 'float32'


def dtype_description(config: ml_collections.ConfigDict) -> str:
  """One line: what `config.dtype` computes in here and, for 'auto', why and
  on the other backends."""
  if config.dtype != 'auto':
    return f'compute dtype {config.dtype}'
  here = layers.platform_family(None)
  line = f"dtype='auto' runs {resolve_dtype(config)} on {here} (this backend"
  if here == 'cpu':
    line += (f": oneDNN's {onednn.isa()} has native bfloat16" if layers.native_bfloat16()
             else ': no oneDNN bfloat16 kernels with native bfloat16 here')
  others = sorted({f'{resolve_dtype(config, f)} on {f}' for f in ('cpu', 'gpu', 'tpu')
                   if f != here})
  return f"{line}); {', '.join(others)}"


# model.name -> module class. The config's `model` fields other than `name`
# are passed to it as keyword arguments.
MODELS: dict[str, type[nn.Module]] = {
    'isovolnet': IsoVolNet,
    'dense_ds': DenseDS,
    'dilated_ds': DilatedDS,
    'mobilenet_v2': MobileNetV2,
    'simple_cnn': SimpleCNN,
    'resnet20': CifarResNet,
    'fast_cnn': FastCNN,
    'airbench': AirBench,
}


def _tuples(value: Any) -> Any:
  # A run's config.json gives lists where the config file had tuples; a module
  # with a list field cannot be hashed, as jax.jit's static arguments must be
  # (evaluate and predict rebuild the model from that file).
  return tuple(map(_tuples, value)) if isinstance(value, (list, tuple)) else value


def create_model(model_config: ml_collections.ConfigDict, num_classes: int,
                 dtype: Any = jnp.float32, conv_dtype: Any = None) -> nn.Module:
  """`model_config`'s model computing in `dtype`, its convolutions in
  `conv_dtype` (None: `dtype`)."""
  kwargs = {k: _tuples(v) for k, v in dict(model_config).items()}
  name = kwargs.pop('name')
  if name not in MODELS:
    raise InputError(f'unknown model.name={name!r}; choose one of {sorted(MODELS)}')
  cls = MODELS[name]
  fields = set(cls.__dataclass_fields__) - {'parent', 'name'}
  # model.whiten_stem is in every config (config_defaults): off, it means
  # nothing to a model without it; on, it is refused.
  if 'whiten_stem' not in fields and kwargs.pop('whiten_stem', False):
    having = sorted(n for n, c in MODELS.items() if 'whiten_stem' in c.__dataclass_fields__)
    where = ('its whitening conv is always on' if name == 'airbench'
             else f'models with it: {", ".join(having)}')
    raise InputError(f"model {name!r} has no option 'whiten_stem' ({where}); "
                     f"set --config.model.whiten_stem=false")
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise InputError(f'model {name!r} has no option {unknown[0]!r}; '
                     f'its options are {sorted(fields - {"num_classes", "dtype", "conv_dtype"})}')
  if layers.is_auto(conv_dtype) or (conv_dtype is not None and
                                    jnp.dtype(conv_dtype) != jnp.dtype(dtype)):
    kwargs['conv_dtype'] = conv_dtype
  return cls(num_classes=num_classes, dtype=dtype, **kwargs)


def from_config(config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
  """The run's model: `config.model` computing in `config.dtype` (training,
  evaluate, predict and the benchmarks build it so): 'float32', 'bfloat16'
  throughout, 'mixed_bfloat16' (float32 but bfloat16 convolutions), or 'auto'
  (`resolve_dtype`)."""
  if config.dtype not in DTYPES:
    raise InputError(f"unknown dtype={config.dtype!r}; choose one of {', '.join(DTYPES)}")
  return create_model(config.model, num_classes, DTYPES[config.dtype],
                      CONV_DTYPES.get(config.dtype))
