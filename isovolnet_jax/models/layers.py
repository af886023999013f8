"""Building blocks shared by the models."""

import contextlib
import contextvars
import functools
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import logging
from jax import lax

from isovolnet_jax import onednn
from isovolnet_jax.errors import InputError
from isovolnet_jax.models import bf16_casts, unrolled_conv

ACTIVATIONS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    'relu': nn.relu,
    'leaky_relu': nn.leaky_relu,  # slope 0.01, as PyTorch's default.
    'swish': nn.swish,
    'relu6': nn.relu6,
}


def activation_fn(name: str) -> Callable[[jnp.ndarray], jnp.ndarray]:
  if name not in ACTIVATIONS:
    raise InputError(f'unknown model.activation={name!r}; choose one of '
                     f'{sorted(ACTIVATIONS)}')
  return ACTIVATIONS[name]


BATCH_NORM_EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.9


def norm_layer(name: str, train: bool, dtype: Any) -> Callable[..., Any]:
  """BatchNorm (statistics kept in float32 whatever the compute dtype).

  flax's own: a BatchNorm with wide-minor reductions and a closed-form
  custom-VJP backward pass was no faster for IsoVolNet and slower for FastCNN
  and MobileNetV2 (docs/performance.md, "Figures behind code choices"); only
  ConvNormAct's training layers of few channels take `BatchNormAct`.
  """
  if name == 'batch':
    return functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON,
                             dtype=dtype,
                             param_dtype=jnp.float32)
  if name == 'none':
    return lambda **kw: (lambda x: x)
  raise InputError(f"unknown model.norm={name!r}; choose 'batch' or 'none'")


# XLA:CPU vectorises its loop fusions along the output's minor axis: with C
# narrower than one float32 vector (16 lanes of AVX-512) BatchNorm and the
# activation run mostly on padding lanes. Seen as (N, H, W*C), with the
# per-channel vectors tiled W times, the same work fills the vectors:
# IsoVolNet's first layers (3 and 12 channels) train their BatchNorm + swish
# 1.5-2.5x faster, 16 channels and more train slower that way. In the whole
# step it paid only once the mixed policy's casts were bit operations
# (`bf16_casts`): before, the casts to bfloat16 around the view made it a tie
# (results/onednn/narrow_batch_norm).
_WIDE_BATCH_NORM_MAX_CHANNELS = 15


def _batch_norm_act(x, scale, bias, *, act, dtype, wide):
  """(act(BatchNorm(x)), batch mean, batch variance), as flax's BatchNorm
  computes them in training (statistics in float32, E[x^2] - E[x]^2, the
  output in `dtype`); `wide`: on the (N, H, W*C) view of x."""
  shape, c = x.shape, x.shape[-1]
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  axes = tuple(range(x.ndim - 1))
  fold = tile = lambda v: v
  if wide:
    x, axes = x.reshape(*shape[:-2], -1), axes[:-1]
    fold = lambda v: v.reshape(-1, c).sum(0)   # (W*C,) -> (C,)
    tile = lambda v: jnp.tile(v, shape[-2])    # (C,) -> (W*C,)
  count = math.prod(shape[:-1])
  mean = fold(x.sum(axes)) / count
  var = jnp.maximum(0., fold((x * x).sum(axes)) / count - mean * mean)
  mul = lax.rsqrt(var + BATCH_NORM_EPSILON) * scale
  # x * mul + (bias - mean * mul), not flax's (x - mean) * mul + bias: the
  # same to rounding, and its backward pass 1.5x faster on the wide view.
  y = act((x * tile(mul) + tile(bias - mean * mul)).astype(dtype))
  return y.reshape(shape), mean, var


class BatchNormAct(nn.Module):
  """Training-mode BatchNorm (batch statistics; the running averages updated)
  and then `activation`, with nn.BatchNorm's variables, initial values and
  values (`norm_layer`'s momentum and epsilon), for NHWC inputs of few
  channels: lowered for CPU it computes on the (N, H, W*C) view (the comment
  above), elsewhere on (N, H, W, C).
  """
  activation: str | None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    feature_shape = x.shape[-1:]
    ra_mean = self.variable('batch_stats', 'mean', jnp.zeros, feature_shape, jnp.float32)
    ra_var = self.variable('batch_stats', 'var', jnp.ones, feature_shape, jnp.float32)
    scale = self.param('scale', nn.initializers.ones, feature_shape, jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, feature_shape, jnp.float32)
    act = activation_fn(self.activation) if self.activation is not None else (lambda y: y)
    norm = lambda wide: functools.partial(_batch_norm_act, act=act, dtype=self.dtype, wide=wide)
    y, mean, var = lax.platform_dependent(x, scale, bias, cpu=norm(True), default=norm(False))
    if not self.is_initializing():
      m = BATCH_NORM_MOMENTUM
      ra_mean.value = m * ra_mean.value + (1 - m) * mean
      ra_var.value = m * ra_var.value + (1 - m) * var
    return y


CONV_IMPLS = ('auto', 'lax', 'unrolled', 'onednn')

# 'auto' is chosen per platform when a computation is lowered, not from
# jax.default_backend() when the model is built: one trace can be lowered for
# CPU and for CUDA (jax.export, a GPU host's CPU fallback), and each gets its
# own convolutions (`lax.platform_dependent`; tests/test_lowering.py lowers
# every zoo config's training step for both). Why platform_dependent: it
# stages out every branch and keeps, at lowering, only the lowering
# platform's, so the CPU-only oneDNN custom call and the unrolled convs'
# scan never reach a GPU computation. Its branches may hold custom VJPs
# (oneDNN's, unrolled_conv's): the switch it builds is differentiated like any
# other, its transpose is again platform-dependent, so the train step's
# backward pass makes the same choice. Lowered for one platform, XLA sees a
# one-branch conditional and inlines it: on CPU the same program as before.
#
# GPU (cuda/rocm), by kind of layer (`_gpu_conv`): 'lax', XLA's cuDNN
# convolutions, for plain and depthwise convs: on one H200 'unrolled' (then
# 'auto' on GPU) trained IsoVolNet (configs/cifar10.py, depthwise) at 28k img/s
# against 124k (float32) / 163k (bfloat16) with 'lax', 4.4x slower. 'unrolled'
# for grouped convs of several input channels a group: seed 002's dilated DS
# net (2 a group) trained 16x faster with it on the same H200
# (results/seed002_gpu: 19,100-19,600 against 1,225 img/s).
# TPU: 'lax' (not measured: its convolution units take grouped convs).
# CPU: 'onednn' where the extension loaded (lax for the cases oneDNN declines),
# else 'unrolled'.
_GPU_PLATFORMS = ('gpu', 'cuda', 'rocm')


def platform_family(platform: str | None) -> str:
  """'cpu', 'gpu' or 'tpu' (or another backend's name) for a jax platform or
  backend name; None: this process's default backend."""
  platform = platform or jax.default_backend()
  return 'gpu' if platform in _GPU_PLATFORMS else platform


def resolve_conv_impl(impl: str, platform: str | None = None) -> str:
  """What `model.conv_impl` runs on `platform` ('cpu', 'gpu'/'cuda'/'rocm',
  'tpu'; None: `jax.default_backend()`). The choice itself is made when the
  computation is lowered (`conv_function`); this says what it will be.

  'auto': on CPU 'onednn' (`isovolnet_jax.onednn`, an x86 CPU where its
  extension loaded: oneDNN's kernels for every convolution, faster than
  XLA's and 'unrolled', docs/performance.md "oneDNN"), else 'unrolled'
  (`unrolled_conv`: depthwise and grouped convs as shifted slices, 1x1 convs
  as matmuls, where XLA:CPU's grouped convs are slow); 'lax' on TPU; on GPU 'lax+unrolled': lax, but `unrolled_conv` for grouped convs
  of several input channels a group (the comment above has the figures).
  Explicit 'onednn' is CPU-only: lowered for any other platform it runs 'lax'.
  """
  if impl not in CONV_IMPLS:
    raise InputError(f'unknown model.conv_impl={impl!r}; choose one of '
                     f'{list(CONV_IMPLS)}')
  family = platform_family(platform)
  if impl == 'auto':
    if family == 'gpu':
      return 'lax+unrolled'  # `_gpu_conv`: by kind of layer.
    if family != 'cpu':
      return 'lax'
    return 'onednn' if onednn.available() else 'unrolled'
  if impl == 'onednn' and family != 'cpu':
    return 'lax'
  return impl


def conv_impl_description(impl: str) -> str:
  """One line: what `impl` runs on this process's backend (for oneDNN, on which
  ISA) and, where it differs, on the other backends."""
  here = platform_family(None)
  chosen = resolve_conv_impl(impl)
  line = f'model.conv_impl={impl!r} runs {chosen!r}'
  if chosen == 'onednn':
    # A dtype whose start-up probe failed on this CPU (bfloat16 without
    # AVX-512) runs lax, and the line says so.
    failed = ''.join(f' ({dtype} runs lax: its start-up probe failed: {why})'
                     for dtype, why in onednn.probe_results().items() if why)
    line += f': oneDNN on {onednn.isa()}, {onednn.threads_description()}{failed},'
  elif impl in ('auto', 'onednn') and here == 'cpu' and not onednn.available():
    line += f' (oneDNN unavailable: {onednn.unavailable_reason()})'
  if impl in ('lax', 'unrolled'):
    return f'{line} on every backend'
  line += f' on {here} (this backend)'
  others = {}
  for family in ('cpu', 'gpu', 'tpu'):
    if family != here:
      others.setdefault(resolve_conv_impl(impl, family), []).append(family)
  return line + ''.join(f"; {name!r} on {'/'.join(fams)}"
                        for name, fams in others.items())


@functools.cache
def _log_conv_impl(impl: str) -> None:
  logging.info('%s', conv_impl_description(impl))


def _several_inputs_a_group(lhs, rhs, dimension_numbers, feature_group_count) -> bool:
  """A grouped conv (not depthwise) with more than one input channel a group."""
  if feature_group_count == 1:
    return False
  rhs_spec = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers).rhs_spec
  return rhs.shape[rhs_spec[1]] > 1


def _gpu_conv(lhs, rhs, window_strides, padding, **kwargs):
  """'auto' on GPU: lax, except grouped convs of several input channels a
  group, which `unrolled_conv` runs (the comment above has the figures)."""
  if _several_inputs_a_group(lhs, rhs, kwargs.get('dimension_numbers'),
                             kwargs.get('feature_group_count', 1)):
    return unrolled_conv.conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs)
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs)


def _per_platform(cpu_conv):
  """lax.conv_general_dilated's signature: `cpu_conv` in a computation lowered
  for CPU, `_gpu_conv` for GPU, lax for any other platform."""

  def conv(lhs, rhs, window_strides, padding, kwargs):
    branch = lambda f: (lambda lhs, rhs: f(lhs, rhs, window_strides, padding, **kwargs))
    return lax.platform_dependent(
        lhs, rhs, cpu=branch(cpu_conv), cuda=branch(_gpu_conv), rocm=branch(_gpu_conv),
        default=branch(lax.conv_general_dilated))
  return onednn.with_lax_conv_signature(conv)


# 'auto' without oneDNN: unrolled on CPU. With oneDNN: oneDNN on CPU (lax for
# the cases it declines), and the same GPU/TPU choice as without.
_unrolled_on_cpu = _per_platform(unrolled_conv.conv_general_dilated)
_onednn_on_cpu = onednn.make_conv_general_dilated(_per_platform(lax.conv_general_dilated))


def runs_onednn_on_cpu(conv) -> bool:
  """Whether `conv` (a `conv_function`) is oneDNN's where lowered for CPU."""
  conv = getattr(conv, 'inner', conv)  # Through `_with_operands_in`.
  return conv is onednn.conv_general_dilated or conv is _onednn_on_cpu


# config.dtype='mixed_bfloat16' (models.from_config): the model computes in
# float32 (BatchNorm, activations, pooling, residual adds, the head) and only
# its convolutions take bfloat16 operands: each conv casts its input and kernel
# to bfloat16, runs (oneDNN's bf16 kernels on CPU, cuDNN's on GPU), and casts
# its output back to the model's dtype. XLA fuses those casts into the
# elementwise fusions beside the conv (on CPU as integer bit operations,
# `bf16_casts`: XLA:CPU's own convert to bfloat16 is scalar code); the
# backward convs (the casts' gradients hand them a bf16 cotangent) are bf16
# too. Why: with dtype=bfloat16 throughout, XLA:CPU computes each bf16
# elementwise op in float32 between converts, and IsoVolNet's elementwise work
# took 126 ms of a 138 ms step against 47 ms in float32 (results/onednn/README.md,
# the per-op profile), as PyTorch's autocast keeps BatchNorm and activations
# in float32.
@functools.cache
def _with_operands_in(conv: Callable[..., jnp.ndarray], dtype) -> Callable[..., jnp.ndarray]:
  """`conv` (lax.conv_general_dilated's signature) on operands cast to `dtype`,
  its result cast back to the operands' own (promoted) dtype, or to
  `preferred_element_type` where one is asked for."""

  def conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs):
    out_dtype = kwargs.pop('preferred_element_type', None) or jnp.result_type(lhs, rhs)
    cast = bf16_casts.cast  # Looked up when traced (tests swap it for astype).
    y = conv(cast(lhs, dtype), cast(rhs, dtype), window_strides, padding, **kwargs)
    return cast(y, out_dtype)

  conv_general_dilated.inner = conv
  conv_general_dilated.operand_dtype = jnp.dtype(dtype)
  return conv_general_dilated


# config.dtype='auto' (models.from_config): mixed_bfloat16 where it was
# measured faster than float32 with float32's accuracy (oneDNN's kernels on a
# CPU with AVX512-BF16: docs/defaults.md, "Precision"), float32 elsewhere.
# Without native bfloat16 (oneDNN's AVX-512 ISA without BF16 emulates it) or
# without oneDNN (XLA:CPU computes bf16 convs via float32) it would only add
# casts; on GPU and TPU float32 convs already take the tensor cores' / MXU's
# fast paths (TF32, bf16 passes) and mixed is not measured there. Chosen per
# platform when lowered, as conv_impl is: a trace lowered for CUDA keeps
# float32 convs.
AUTO = 'auto'
_NATIVE_BFLOAT16_ISAS = ('avx512_core_bf16', 'avx512_core_fp16', 'avx512_core_amx',
                         'avx512_core_amx_fp16')


def is_auto(operand_dtype: Any) -> bool:
  """Whether a model's `conv_dtype` is 'auto' (not a dtype: jnp.dtype refuses it)."""
  return isinstance(operand_dtype, str) and operand_dtype == AUTO


def native_bfloat16() -> bool:
  """Whether oneDNN runs bfloat16 convolutions natively on this CPU: it loaded,
  its bfloat16 start-up probe passed, and it dispatches an ISA with bfloat16
  instructions (AVX512-BF16 or AMX)."""
  return (onednn.available() and 'bfloat16' in onednn.supported_dtypes()
          and onednn.isa() in _NATIVE_BFLOAT16_ISAS)


def auto_conv_dtype(impl: str, platform: str | None = None) -> str:
  """What conv_dtype='auto' computes `impl`'s convolutions in on `platform`
  (None: this process's backend): 'bfloat16' where they run oneDNN's
  kernels on a CPU with native bfloat16, else 'float32'."""
  runs_onednn = resolve_conv_impl(impl, platform) == 'onednn'
  return 'bfloat16' if runs_onednn and native_bfloat16() else 'float32'


@functools.cache
def _bfloat16_where_native(conv: Callable[..., jnp.ndarray]) -> Callable[..., jnp.ndarray]:
  """`conv` on bfloat16 operands where lowered for CPU, as it is elsewhere;
  `conv` itself where it is not oneDNN's or on a CPU without native bfloat16
  (asked when traced)."""
  mixed = _with_operands_in(conv, jnp.dtype(jnp.bfloat16))

  def body(lhs, rhs, window_strides, padding, kwargs):
    branch = lambda f: (lambda lhs, rhs: f(lhs, rhs, window_strides, padding, **kwargs))
    if not (runs_onednn_on_cpu(conv) and native_bfloat16()):
      return branch(conv)(lhs, rhs)
    return lax.platform_dependent(lhs, rhs, cpu=branch(mixed), default=branch(conv))

  conv_general_dilated = onednn.with_lax_conv_signature(body)
  conv_general_dilated.inner = conv
  conv_general_dilated.operand_dtype = AUTO
  return conv_general_dilated


def conv_function(impl: str, operand_dtype: Any = None) -> Callable[..., jnp.ndarray]:
  """The function nn.Conv runs in place of lax.conv_general_dilated, by
  `model.conv_impl`; logs once per process what runs. 'auto' and 'onednn'
  choose per platform when lowered (see the comment above `resolve_conv_impl`).
  `operand_dtype` (a model's `conv_dtype`; None: the operands' own): the
  dtype it computes in, between casts (`_with_operands_in`); 'auto':
  bfloat16 where `auto_conv_dtype` says so, chosen per platform when lowered."""
  conv = _conv_function(impl)
  if operand_dtype is None:
    return conv
  if is_auto(operand_dtype):
    return _bfloat16_where_native(conv)
  return _with_operands_in(conv, jnp.dtype(operand_dtype))


def _conv_function(impl: str) -> Callable[..., jnp.ndarray]:
  resolve_conv_impl(impl)  # Validates `impl`.
  _log_conv_impl(impl)
  if impl == 'auto' and onednn.available():
    return _onednn_on_cpu
  if impl == 'onednn' and onednn.available():
    # oneDNN lowered for CPU (lax for what it declines), lax for the rest.
    return onednn.conv_general_dilated
  if impl == 'onednn':
    raise InputError(f"model.conv_impl='onednn' but oneDNN is unavailable: "
                     f"{onednn.unavailable_reason()}; use model.conv_impl=auto")
  if impl == 'auto':
    return _unrolled_on_cpu
  if impl == 'unrolled':
    return unrolled_conv.conv_general_dilated
  return lax.conv_general_dilated


def Conv(features: int, kernel_size, *, conv_impl: str = 'auto', conv_dtype: Any = None,
         **kwargs):
  """nn.Conv (same parameters, names and init) whose grouped convs use
  `conv_impl`, computing in `conv_dtype` where given (`conv_function`)."""
  return nn.Conv(features, kernel_size,
                 conv_general_dilated=conv_function(conv_impl, conv_dtype), **kwargs)


@jax.custom_vjp
def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
  """2x2/2 max pooling as a reshape and a max (nn.max_pool's values).

  Its gradient is an elementwise mask (custom VJP) instead of XLA's
  select-and-scatter or the window reductions that autodiff of a max builds,
  both several times slower on CPU (docs/performance.md, "Figures behind code
  choices"). On
  ties (equal maxima in a window) every tied element gets the gradient where
  nn.max_pool gives it to one; after a ReLU the only common tie is at 0,
  where the ReLU's own gradient is 0 anyway.
  """
  return _max_pool_2x2(x)


def _windows_2x2(x):
  """(B, H/2, 2, W/2, 2, C): the 2x2 windows, as stride-2 VALID pooling sees them."""
  b, h, w, c = x.shape
  h, w = h // 2 * 2, w // 2 * 2  # An odd row or column is dropped, as VALID pooling does.
  return x[:, :h, :w].reshape(b, h // 2, 2, w // 2, 2, c)


def _max_pool_2x2(x):
  return _windows_2x2(x).max(axis=(2, 4))


def _max_pool_fwd(x):
  y = _max_pool_2x2(x)
  return y, (x, y)


def _max_pool_bwd(res, g):
  x, y = res
  b, h, w, c = x.shape
  h2, w2 = h // 2 * 2, w // 2 * 2
  up = lambda a: jnp.repeat(jnp.repeat(a, 2, axis=1), 2, axis=2)
  dx = jnp.where(x[:, :h2, :w2] == up(y), up(g), jnp.zeros((), g.dtype))
  return (jnp.pad(dx, ((0, 0), (0, h - h2), (0, w - w2), (0, 0))),)


max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)


def avg_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
  """2x2/2 average pooling (nn.avg_pool's values) as the sum of the windows'
  four stride-2 phases, in float32, and a gradient that spreads g / 4 over
  each window (custom VJP).

  Four strided slices and three adds fuse into one elementwise loop, where a
  reshape and a mean is a reduction over two axes of 2; autodiff of the
  slices would pad each phase's gradient back (slow in bfloat16). Both
  forward and forward + backward are faster on CPU at every zoo shape
  (docs/performance.md, "Figures behind code choices").
  """
  return _avg_pool_2x2(x.shape[1] % 2, x.shape[2] % 2, x)


def _phases_2x2(x):
  """x's 2x2 windows as their four stride-2 phases, each (B, H/2, W/2, C);
  an odd last row or column is dropped, as VALID pooling does."""
  h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
  return [x[:, i:h:2, j:w:2] for i in (0, 1) for j in (0, 1)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _avg_pool_2x2(odd_h: int, odd_w: int, x):
  del odd_h, odd_w  # The backward pass's: the rows and columns the pool drops.
  a, b, c, d = (p.astype(jnp.float32) for p in _phases_2x2(x))
  return (((a + b) + (c + d)) * 0.25).astype(x.dtype)


def _avg_pool_fwd(odd_h, odd_w, x):
  return _avg_pool_2x2(odd_h, odd_w, x), None


def _avg_pool_bwd(odd_h, odd_w, _, g):
  quarter = (g.astype(jnp.float32) * 0.25).astype(g.dtype)  # Exact: a power of 2.
  dx = jnp.repeat(jnp.repeat(quarter, 2, axis=1), 2, axis=2)
  return (jnp.pad(dx, ((0, 0), (0, odd_h), (0, odd_w), (0, 0))),)


_avg_pool_2x2.defvjp(_avg_pool_fwd, _avg_pool_bwd)


_FUSE_INFERENCE = contextvars.ContextVar('fuse_inference', default=True)


@contextlib.contextmanager
def fused_inference(enabled: bool):
  """Whether ConvNormAct runs inference as one oneDNN call
  (`conv_bn_act_inference`; on by default) in what is traced inside:
  `with layers.fused_inference(False):` traces the separate modules (e.g. to
  capture Conv_0 / BatchNorm_0 intermediates, or to time the two). jit caches
  a function's trace: jit a new function inside the block."""
  token = _FUSE_INFERENCE.set(bool(enabled))
  try:
    yield
  finally:
    _FUSE_INFERENCE.reset(token)


def _cpu_operand_dtype(conv_dtype: Any, dtype: Any):
  """The dtype a conv of `conv_dtype` (a model's field) computes in on CPU."""
  if conv_dtype is None:
    return jnp.dtype(dtype)
  if is_auto(conv_dtype):
    return jnp.dtype(auto_conv_dtype('onednn', 'cpu'))
  return jnp.dtype(conv_dtype)


# oneDNN's depthwise kernel computes a post-op on a 16-lane vector a pixel, so
# for a grouped conv with few output channels the swish (an exp and a divide a
# lane) runs mostly on padding lanes: with this many channels or fewer it is
# faster as an XLA fusion after the call (docs/performance.md, "Figures behind
# code choices"). ReLU-like post-ops cost next to nothing either way.
_SWISH_IN_XLA_MAX_CHANNELS = 8


def conv_bn_act_inference(x, kernel, scale, bias, mean, var, *, activation, strides,
                          dilation, groups, conv_impl, conv_dtype, dtype):
  """ConvNormAct in inference (BatchNorm with its running statistics).

  Lowered for CPU: BatchNorm folded into the kernel (times scale / std) and a
  float32 bias, and the conv, bias and activation one oneDNN call
  (`onednn.conv_bias_act`): one pass over the output where the layer took a
  conv and an XLA fusion that read the output back (BatchNorm, activation,
  the cast); a narrow depthwise conv's swish follows the call in XLA
  (`_SWISH_IN_XLA_MAX_CHANNELS`). Lowered elsewhere: what the modules
  compute (conv, flax's BatchNorm, activation). Only called where
  `conv_impl` runs oneDNN on CPU.
  """
  x, kernel = x.astype(dtype), kernel.astype(dtype)  # nn.Conv's promotion.
  activate = lambda name: activation_fn(name) if name is not None else (lambda y: y)
  act = activate(activation)
  conv_args = dict(rhs_dilation=(dilation, dilation), feature_group_count=groups)
  window = (strides, strides)
  mul = lax.rsqrt(var + BATCH_NORM_EPSILON) * scale

  def unfused(x, kernel):
    y = conv_function(conv_impl, conv_dtype)(
        x, kernel, window, 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'), **conv_args)
    return act(((y - mean) * mul + bias).astype(dtype))  # flax's BatchNorm, eval mode.

  def folded(x, kernel):
    operand = _cpu_operand_dtype(conv_dtype, dtype)
    w = (kernel.astype(jnp.float32) * mul).astype(operand)
    b = (bias - mean * mul).astype(jnp.float32)
    post_op = activation
    if activation == 'swish' and groups > 1 and kernel.shape[-1] <= _SWISH_IN_XLA_MAX_CHANNELS:
      post_op = None  # Applied below, in XLA, to the call's output.
    post_act = activate(post_op)

    def reference(x, w, b):  # What the oneDNN call computes, in plain JAX.
      y = lax.conv_general_dilated(x, w, window, 'SAME', dimension_numbers=(
          'NHWC', 'HWIO', 'NHWC'), preferred_element_type=jnp.float32, **conv_args)
      return post_act(y + b).astype(x.dtype)
    y = onednn.conv_bias_act(x.astype(operand), w, b, post_op, window, 'SAME',
                             conv_args['rhs_dilation'], groups, reference)
    if post_op != activation:
      y = act(y.astype(jnp.float32))
    return y.astype(dtype)

  return lax.platform_dependent(x, kernel, cpu=folded, default=unfused)


def fuses_inference(unit: nn.Module, train: bool) -> bool:
  """Whether `unit` (a ConvNormAct, or a unit with its fields and its
  Conv_0 / BatchNorm_0 variables) runs this call as one oneDNN call."""
  return (not train and unit.norm == 'batch' and _FUSE_INFERENCE.get()
          and not unit.is_initializing() and runs_onednn_on_cpu(conv_function(unit.conv_impl)))


def fused_inference_call(unit: nn.Module, x, *, strides: int = 1, dilation: int = 1,
                         groups: int = 1):
  """`conv_bn_act_inference` on `unit`'s own variables (see `fuses_inference`)."""
  params, stats = unit.variables['params'], unit.variables['batch_stats']['BatchNorm_0']
  bn = params['BatchNorm_0']
  return conv_bn_act_inference(
      x, params['Conv_0']['kernel'], bn['scale'], bn['bias'], stats['mean'], stats['var'],
      activation=unit.activation, strides=strides, dilation=dilation, groups=groups,
      conv_impl=unit.conv_impl, conv_dtype=unit.conv_dtype, dtype=unit.dtype)


class ConvNormAct(nn.Module):
  """conv -> norm -> activation, the unit every model here repeats.

  In inference with BatchNorm, where the convs run oneDNN on CPU, one oneDNN
  call computes all three (`conv_bn_act_inference`); in training, a layer of
  15 channels or fewer takes `BatchNormAct`. Same parameters either way.
  """
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: int = 1
  dilation: int = 1
  groups: int = 1
  norm: str = 'batch'
  activation: str | None = 'relu'
  conv_impl: str = 'auto'
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    if fuses_inference(self, train):
      return fused_inference_call(self, x, strides=self.strides, dilation=self.dilation,
                                  groups=self.groups)
    x = Conv(self.features, self.kernel_size, strides=self.strides,
             kernel_dilation=self.dilation, padding='SAME',
             feature_group_count=self.groups, use_bias=self.norm == 'none',
             dtype=self.dtype, conv_impl=self.conv_impl, conv_dtype=self.conv_dtype,
             name='Conv_0')(x)
    if train and self.norm == 'batch' and self.features <= _WIDE_BATCH_NORM_MAX_CHANNELS:
      return BatchNormAct(self.activation, self.dtype, name='BatchNorm_0')(x)
    x = norm_layer(self.norm, train, self.dtype)()(x)
    if self.activation is not None:
      x = activation_fn(self.activation)(x)
    return x


class SeparableConv(nn.Module):
  """Depthwise k x k conv then pointwise 1 x 1 conv, each with norm + act.

  With `separable=False` it is the standard-conv twin: one full k x k conv to
  the same output width, for the efficiency comparison of seeds 001/003.
  """
  features: int
  kernel_size: int = 3
  dilation: int = 1
  separable: bool = True
  norm: str = 'batch'
  activation: str = 'relu'
  conv_impl: str = 'auto'
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    k = (self.kernel_size, self.kernel_size)
    common = dict(norm=self.norm, activation=self.activation,
                  conv_impl=self.conv_impl, conv_dtype=self.conv_dtype, dtype=self.dtype)
    if not self.separable:
      return ConvNormAct(self.features, k, dilation=self.dilation,
                         **common)(x, train)
    channels = x.shape[-1]
    x = ConvNormAct(channels, k, dilation=self.dilation, groups=channels,
                    name='depthwise', **common)(x, train)
    return ConvNormAct(self.features, (1, 1), name='pointwise',
                       **common)(x, train)
