"""2-D convolutions by oneDNN on CPU, through XLA's FFI (`model.conv_impl='onednn'`).

XLA:CPU runs convolutions with its own generic kernels and computes bfloat16
ones in float32; oneDNN, which PyTorch uses on CPU, has kernels for each
instruction set (AVX-512, AVX512-BF16, AMX). `conv.cc` is one FFI handler
for the forward pass, the input gradient and the kernel gradient of an NHWC
x HWIO convolution (float32 or bfloat16; strides, dilation, explicit padding,
groups); `conv_general_dilated` here has lax's signature, so it plugs into
`flax.linen.Conv(conv_general_dilated=...)`, and a custom VJP sends both
gradients to oneDNN too.

`pip install -e .` builds `conv.cc` (setup.py) against oneDNN from PyPI
(onednn-cpu-gomp) and jax's FFI headers. Where it could not build or load,
`available()` is False, `unavailable_reason()` says why, and 'auto' keeps the
pure-JAX convolutions. ISOVOLNET_NO_ONEDNN=1 turns the extension off.

Sharding: XLA cannot split a custom call by itself, so each call is wrapped
in `custom_partitioning`: a batch-sharded convolution runs per device on its
rows, and the kernel gradient is summed over the devices that split the
batch (the all-reduce jit would otherwise insert after a lax convolution).

Threads: XLA may run several calls at once (one per CPU device, and the
backward pass's input and kernel gradients side by side), each on one of its
worker threads, whose OpenMP state a call leaves as it found it. How many
threads a call gets is chosen per call by ISOVOLNET_ONEDNN_THREADS, read by
`conv.cc` at every call (an A/B needs no rebuild and no retrace):
  budget: the process shares one pool of
    `cpu_devices.physical_cores()` threads; a call takes what is free (all of
    it when it runs alone; else the largest power of two free; at least 1,
    its own thread) and gives it back when done, so concurrent calls neither
    leave cores idle nor pile threads onto them;
  fixed (the default, unset or ''): `threads_per_call()`, the physical cores
    divided among the CPU devices, whatever else runs. As fast as budget with
    one CPU device, faster with one per core (the default), where budget lets
    one device's call take every core and the other's still run: measured by
    results/onednn/threads/run.sh.
`thread_policy()` reads it here; `thread_budget()` shows the pool. The
thread count is part of the primitive cache's key (oneDNN builds a primitive
for the thread count current when it is created).
"""

import ctypes
import functools
import glob
import hashlib
import importlib.metadata
import os
import platform
import site
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec as P

from isovolnet_jax import cpu_devices

TARGET = 'isovolnet_onednn_conv'
TARGET_BIAS_ACT = 'isovolnet_onednn_conv_bias_act'
_FORWARD, _BACKWARD_DATA, _BACKWARD_WEIGHTS, _BIAS_ACT = 0, 1, 2, 3
_NHWC = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1),
                                   ('NHWC', 'HWIO', 'NHWC'))


def _find_libdnnl() -> str | None:
  """libdnnl.so.3 wherever pip put onednn-cpu-gomp (a venv, --user, the
  system: its RECORD names the files), else in <prefix>/lib."""
  names = ('libdnnl.so.3', 'libdnnl.so')
  try:
    dist = importlib.metadata.distribution('onednn-cpu-gomp')
    files = {f.name: f for f in dist.files or () if f.name in names}
    for name in names:
      if name in files:
        path = os.path.realpath(dist.locate_file(files[name]))
        if os.path.exists(path):
          return path
  except importlib.metadata.PackageNotFoundError:
    pass
  prefixes = dict.fromkeys([sys.prefix, sys.base_prefix, sys.exec_prefix,
                            site.getuserbase()])
  for prefix in prefixes:
    for name in names:
      path = os.path.join(prefix, 'lib', name)
      if os.path.exists(path):
        return path
  return None


REBUILD = ('pip install --no-build-isolation -e . (or python setup.py build_ext '
           '--inplace) in the repository')


def source_hash(path: str | None = None) -> str:
  """What setup.py compiles into the extension: SHA-256 of conv.cc, 16 hex."""
  path = path or os.path.join(os.path.dirname(__file__), 'conv.cc')
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()[:16]


def _stale(lib) -> str:
  """Why the loaded extension must not run (built from another conv.cc or
  against another jaxlib's FFI headers), or ''."""
  lib.isovolnet_onednn_source_hash.restype = ctypes.c_char_p
  lib.isovolnet_onednn_jaxlib_version.restype = ctypes.c_char_p
  built = lib.isovolnet_onednn_source_hash().decode()
  source = os.path.join(os.path.dirname(__file__), 'conv.cc')
  if os.path.exists(source) and built != source_hash(source):
    return (f'the extension is stale: built from conv.cc {built}, the source is '
            f'{source_hash(source)}; rebuild: {REBUILD}')
  import jaxlib  # pylint: disable=import-outside-toplevel
  against = lib.isovolnet_onednn_jaxlib_version().decode()
  if against != jaxlib.__version__:
    return (f'the extension was built against jaxlib {against}\'s FFI headers, '
            f'jaxlib {jaxlib.__version__} runs; rebuild: {REBUILD}')
  return ''


_PROBED = {'float32': 0, 'bfloat16': 1}


@functools.cache
def _load_and_probe() -> tuple[ctypes.CDLL | None, str, dict[str, str]]:
  """(the extension, '', {dtype: '' or why its probe failed}) once registered
  with XLA, or (None, why not, {})."""
  if os.environ.get('ISOVOLNET_NO_ONEDNN', '') not in ('', '0'):
    return None, 'ISOVOLNET_NO_ONEDNN is set', {}
  if platform.machine().lower() not in ('x86_64', 'amd64'):
    return None, f'oneDNN kernels are built for x86-64 only, not {platform.machine()}', {}
  here = os.path.dirname(__file__)
  built = sorted(glob.glob(os.path.join(here, '_conv*.so')))
  if not built:
    return None, ('the extension was not built (pip install -e . builds it; '
                  'it needs g++ and the onednn-devel-cpu-gomp package)'), {}
  dnnl = _find_libdnnl()
  if dnnl is None:
    return None, 'libdnnl.so.3 not found (pip install onednn-cpu-gomp)', {}
  try:
    # Loaded first and globally, so that the extension's NEEDED entry resolves
    # to it whatever its rpath says.
    ctypes.CDLL(dnnl, mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(built[-1])
    stale = _stale(lib)
  except (OSError, AttributeError) as e:
    return None, f'the extension did not load: {e} (rebuild: {REBUILD})', {}
  if stale:
    return None, stale, {}
  lib.isovolnet_onednn_isa.restype = ctypes.c_char_p
  lib.isovolnet_onednn_builds.restype = ctypes.c_int64
  lib.isovolnet_onednn_calls.restype = ctypes.c_int64
  lib.isovolnet_onednn_calls.argtypes = [ctypes.c_int64]
  lib.isovolnet_onednn_probe.restype = ctypes.c_char_p
  lib.isovolnet_onednn_probe.argtypes = [ctypes.c_int64, ctypes.c_int64]
  for name in ('cache_size', 'cache_capacity', 'scratch_capacity', 'thread_budget',
               'threads_free', 'omp_max_threads'):
    getattr(lib, f'isovolnet_onednn_{name}').restype = ctypes.c_int64
  for name in ('set_cache_capacity', 'take_threads'):
    getattr(lib, f'isovolnet_onednn_{name}').restype = ctypes.c_int64
    getattr(lib, f'isovolnet_onednn_{name}').argtypes = [ctypes.c_int64]
  for name in ('set_thread_budget', 'give_threads', 'omp_set_num_threads'):
    getattr(lib, f'isovolnet_onednn_{name}').restype = None
    getattr(lib, f'isovolnet_onednn_{name}').argtypes = [ctypes.c_int64]
  # The budget policy's pool: one thread per physical core this process may use.
  lib.isovolnet_onednn_set_thread_budget(cpu_devices.physical_cores())
  # A tiny conv of each kind in each dtype, against a direct loop: a CPU
  # without AVX-512 (no bfloat16 kernels) says so here, not mid-step.
  probes = {name: lib.isovolnet_onednn_probe(code, 0).decode()
            for name, code in _PROBED.items()}
  if all(probes.values()):
    return None, 'no dtype passed the start-up probe: ' + '; '.join(
        f'{k}: {v}' for k, v in probes.items()), {}
  jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.IsovolnetOnednnConv),
                              platform='cpu')
  jax.ffi.register_ffi_target(TARGET_BIAS_ACT,
                              jax.ffi.pycapsule(lib.IsovolnetOnednnConvBiasAct),
                              platform='cpu')
  return lib, '', probes


def _load() -> tuple[ctypes.CDLL | None, str]:
  """(the extension, '') once registered with XLA, or (None, why not)."""
  lib, reason, _ = _load_and_probe()
  return lib, reason


def available() -> bool:
  return _load()[0] is not None


def unavailable_reason() -> str:
  return _load()[1]


def probe_results() -> dict[str, str]:
  """{'float32': '', 'bfloat16': why not, ...}: '' where the start-up probe
  passed; {} where the extension is unavailable."""
  return dict(_load_and_probe()[2]) if available() else {}


def supported_dtypes() -> tuple[str, ...]:
  """The dtypes oneDNN runs here (its probe passed); others go to the fallback."""
  return tuple(k for k, v in probe_results().items() if not v)


def isa() -> str:
  """The instruction set oneDNN dispatches to here, e.g. 'avx512_core_bf16'."""
  lib = _load()[0]
  return lib.isovolnet_onednn_isa().decode() if lib else 'none'


def primitives_built() -> int:
  """How many oneDNN primitives this process built (the cache's misses)."""
  lib = _load()[0]
  return lib.isovolnet_onednn_builds() if lib else 0


def calls() -> tuple[int, int, int]:
  """How many (forward, input-gradient, kernel-gradient) calls ran in oneDNN
  in this process (the start-up probe's included)."""
  lib = _load()[0]
  return tuple(lib.isovolnet_onednn_calls(k) for k in range(3)) if lib else (0, 0, 0)


def bias_act_calls() -> int:
  """How many inference calls of conv + bias + activation (`conv_bias_act`)
  ran in oneDNN in this process (the start-up probe's included)."""
  lib = _load()[0]
  return lib.isovolnet_onednn_calls(_BIAS_ACT) if lib else 0


def cache_info() -> dict[str, int]:
  """The primitive cache's entries and bound, and this thread's scratch bytes."""
  lib = _load()[0]
  if not lib:
    return {}
  return {name: getattr(lib, f'isovolnet_onednn_{name}')()
          for name in ('cache_size', 'cache_capacity', 'scratch_capacity')}


def threads_per_call() -> int:
  """oneDNN threads per call under policy 'fixed': the physical cores shared
  out among the CPU devices, which XLA runs concurrently."""
  cores = cpu_devices.physical_cores()
  return max(1, cores // max(1, jax.local_device_count('cpu')))


THREAD_POLICIES = ('fixed', 'budget')  # The first is the default.
THREADS_ENV = 'ISOVOLNET_ONEDNN_THREADS'


def thread_policy() -> str:
  """ISOVOLNET_ONEDNN_THREADS now ('fixed' when unset or empty), as `conv.cc`
  reads it at every call; ValueError for anything else."""
  policy = os.environ.get(THREADS_ENV, '') or THREAD_POLICIES[0]
  if policy not in THREAD_POLICIES:
    raise ValueError(f'{THREADS_ENV}={policy!r}: choose one of {THREAD_POLICIES}')
  return policy


def thread_budget() -> dict[str, int]:
  """The budget policy's pool: {'total': threads, 'free': not taken now}
  (free == total whenever no call runs); {} where the extension is unavailable."""
  lib = _load()[0]
  if not lib:
    return {}
  return {'total': lib.isovolnet_onednn_thread_budget(),
          'free': lib.isovolnet_onednn_threads_free()}


def threads_description() -> str:
  """How many threads a call gets under the current policy, in words."""
  policy = thread_policy()
  if policy == 'fixed':
    return f'{threads_per_call()} thread(s) per call (fixed)'
  return f'up to {cpu_devices.physical_cores()} thread(s) per call (budget)'


def _ffi(kind, operands, out_shape, out_dtype, geometry, act=None):
  """One FFI call: `operands` (a, b) of `kind`, or (x, kernel, bias) of
  _BIAS_ACT with `act` = (code, alpha, beta)."""
  strides, dilation, padding, groups = geometry
  thread_policy()  # An unknown policy fails here, when traced, not in a step.
  attrs = dict(strides=np.array(strides, np.int64), dilation=np.array(dilation, np.int64),
               padding=np.array(padding, np.int64), groups=np.int64(groups),
               threads=np.int64(threads_per_call()))
  if kind == _BIAS_ACT:
    code, alpha, beta = act
    target = TARGET_BIAS_ACT
    attrs.update(act=np.int64(code), alpha=np.float32(alpha), beta=np.float32(beta))
  else:
    target = TARGET
    attrs.update(kind=np.int64(kind))
  return jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(out_shape, out_dtype),
                          vmap_method='sequential')(*operands, **attrs)


# --- Sharding: a batch-sharded call runs per device. -----------------------

def _batch_axes(sharding):
  """The mesh axes that split dimension 0 of an operand (None: unsharded)."""
  if not isinstance(sharding, NamedSharding) or not sharding.spec:
    return None
  return sharding.spec[0]


def _as_tuple(axes):
  return () if axes is None else (axes if isinstance(axes, tuple) else (axes,))


def _partitioned(kind, out_shape, out_dtype, geometry, act=None):
  """The FFI call for one `kind`, wrapped so that GSPMD/Shardy split it by batch."""

  @custom_partitioning
  def call(*operands):
    return _ffi(kind, operands, out_shape, out_dtype, geometry, act)

  def specs(mesh, arg_shapes):
    batch = _batch_axes(arg_shapes[0].sharding)
    batch_spec = P(batch, None, None, None)
    whole = P(None, None, None, None)
    if kind == _BACKWARD_WEIGHTS:
      args = (batch_spec, batch_spec)
      out = whole
    else:
      args, out = (batch_spec, whole), batch_spec
    if kind == _BIAS_ACT:
      args += (P(None),)
    return batch, [NamedSharding(mesh, s) for s in args], NamedSharding(mesh, out)

  def infer(mesh, arg_shapes, result_shape):
    return specs(mesh, arg_shapes)[2]

  def partition(mesh, arg_shapes, result_shape):
    batch, arg_shardings, out_sharding = specs(mesh, arg_shapes)

    def lower(*operands):
      # Sized from the shard this device holds: its rows of `a` (x or dy).
      a = operands[0]
      shape = out_shape if kind == _BACKWARD_WEIGHTS else (a.shape[0], *out_shape[1:])
      y = _ffi(kind, operands, shape, out_dtype, geometry, act)
      if kind == _BACKWARD_WEIGHTS and _as_tuple(batch):
        y = lax.psum(y, _as_tuple(batch))
      return y
    return mesh, lower, out_sharding, tuple(arg_shardings)

  if kind == _BACKWARD_WEIGHTS:
    rule = 'n h w c, n p q o -> i j k l'
  elif kind == _BIAS_ACT:
    rule = 'n h w c, i j k l, m -> n p q o'
  else:
    rule = 'n h w c, i j k l -> n p q o'
  call.def_partition(infer_sharding_from_operands=infer, partition=partition,
                     sharding_rule=rule)
  return call


def _run(kind, a, b, out_shape, out_dtype, geometry, bias=None, act=None):
  """One FFI call, split by batch under sharding; under vmap, one call per
  vmapped element (custom_partitioning has no batching rule of its own).
  `bias` and `act`: _BIAS_ACT's."""
  operands = (a, b) if bias is None else (a, b, bias)

  @jax.custom_batching.custom_vmap
  def call(*operands):
    return _partitioned(kind, tuple(out_shape), out_dtype, geometry, act)(*operands)

  @call.def_vmap
  def _vmapped(axis_size, in_batched, *operands):
    operands = tuple(x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
                     for batched, x in zip(in_batched, operands))
    one = lambda ops: _run(kind, ops[0], ops[1], out_shape, out_dtype, geometry,
                           *ops[2:], act=act)
    return lax.map(one, operands), True

  return call(*operands)


# --- The differentiable convolution. ---------------------------------------

@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv(x, kernel, out_shape, geometry):
  return _run(_FORWARD, x, kernel, out_shape, x.dtype, geometry)


def _conv_fwd(x, kernel, out_shape, geometry):
  return _conv(x, kernel, out_shape, geometry), (x, kernel)


def _conv_bwd(out_shape, geometry, residuals, g):
  x, kernel = residuals
  g = g.astype(x.dtype)
  dx = _run(_BACKWARD_DATA, g, kernel, x.shape, x.dtype, geometry)
  dk = _run(_BACKWARD_WEIGHTS, x, g, kernel.shape, kernel.dtype, geometry)
  return dx, dk


_conv.defvjp(_conv_fwd, _conv_bwd)


def _normalise(x, kernel, out_shape, window_strides, padding, rhs_dilation,
               lhs_dilation, dimension_numbers, feature_group_count,
               batch_group_count):
  """(out_shape, geometry) if oneDNN can take this convolution, else None.

  Only called on a call lax accepted (`out_shape` is lax's, from
  jax.eval_shape); declines anything whose geometry it would not derive
  the same output shape from.
  """
  if x.ndim != 4 or kernel.ndim != 4 or batch_group_count != 1:
    return None
  if lhs_dilation is not None and tuple(lhs_dilation) != (1, 1):
    return None
  dn = lax.conv_dimension_numbers(x.shape, kernel.shape, dimension_numbers)
  if dn != _NHWC or x.dtype != kernel.dtype:
    return None
  if jnp.dtype(x.dtype).name not in supported_dtypes():
    return None  # Not float32/bfloat16, or its start-up probe failed on this CPU.
  if 0 in x.shape or 0 in kernel.shape or 0 in out_shape:
    return None
  groups = int(feature_group_count)
  n, h, w, c = x.shape
  kh, kw, i, o = kernel.shape
  if groups < 1 or i * groups != c or o % groups or out_shape[0] != n or out_shape[3] != o:
    return None
  strides = tuple(int(s) for s in window_strides)
  dilation = tuple(int(d) for d in (rhs_dilation or (1, 1)))
  if len(strides) != 2 or len(dilation) != 2 or min(strides + dilation) < 1:
    return None
  spatial, taps = (h, w), (kh, kw)
  extent = [(k - 1) * d + 1 for k, d in zip(taps, dilation)]
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(spatial, extent, strides, padding)
  pads = []
  for size, e, s, (lo, hi), want in zip(spatial, extent, strides, padding,
                                        out_shape[1:3]):
    out = (size + lo + hi - e) // s + 1
    # Padding past the last window is unused: trimmed to what it reaches
    # (0 where the input itself has rows past it, which oneDNN leaves out).
    hi = max((out - 1) * s + e - size - lo, 0)
    if lo < 0 or out != want:
      return None
    pads.append((int(lo), int(hi)))
  padding = (pads[0][0], pads[0][1], pads[1][0], pads[1][1])
  return tuple(int(d) for d in out_shape), (strides, dilation, padding, groups)


def with_lax_conv_signature(body):
  """A function with lax.conv_general_dilated's signature that calls
  `body(lhs, rhs, window_strides, padding, kwargs)`, `kwargs` holding lax's
  other (keyword) arguments, for `body` to hand on to lax-like functions.
  (Also models/layers.py's per-platform choice.)"""

  def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                           rhs_dilation=None, dimension_numbers=None,
                           feature_group_count=1, batch_group_count=1,
                           precision=None, preferred_element_type=None):
    return body(lhs, rhs, window_strides, padding,
                dict(lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                     dimension_numbers=dimension_numbers,
                     feature_group_count=feature_group_count,
                     batch_group_count=batch_group_count, precision=precision,
                     preferred_element_type=preferred_element_type))

  return conv_general_dilated


def make_conv_general_dilated(fallback):
  """lax.conv_general_dilated's signature: oneDNN where it can, else `fallback`.

  Every call is first shaped by lax (jax.eval_shape), so a call lax refuses
  raises lax's error when traced, whichever implementation would have run.
  "Where it can": a case `_normalise` takes, in a dtype whose start-up probe
  passed, in a computation lowered for CPU (`lax.platform_dependent`);
  lowered for any other platform it is `fallback`.
  """

  def conv_general_dilated(lhs, rhs, window_strides, padding, kwargs):
    lhs_dilation, rhs_dilation = kwargs['lhs_dilation'], kwargs['rhs_dilation']
    preferred_element_type = kwargs['preferred_element_type']
    out = jax.eval_shape(
        lambda l, r: lax.conv_general_dilated(l, r, window_strides, padding, **kwargs),
        jax.ShapeDtypeStruct(jnp.shape(lhs), jnp.result_type(lhs)),
        jax.ShapeDtypeStruct(jnp.shape(rhs), jnp.result_type(rhs)))
    plan = None
    if available() and (preferred_element_type is None or
                        jnp.dtype(preferred_element_type) == lhs.dtype):
      plan = _normalise(lhs, rhs, out.shape, window_strides, padding, rhs_dilation,
                        lhs_dilation, kwargs['dimension_numbers'],
                        kwargs['feature_group_count'], kwargs['batch_group_count'])
    run_fallback = lambda lhs, rhs: fallback(lhs, rhs, window_strides, padding, **kwargs)
    if plan is None:
      return run_fallback(lhs, rhs)
    # The handler is an XLA:CPU custom call: chosen when the computation is
    # lowered, so that one trace lowered for another platform (a GPU host
    # where the extension built, jax.export for 'cuda') runs `fallback`
    # there and holds no CPU custom call (tests/test_lowering.py).
    return lax.platform_dependent(lhs, rhs, cpu=lambda lhs, rhs: _conv(lhs, rhs, *plan),
                                  default=run_fallback)

  return with_lax_conv_signature(conv_general_dilated)


conv_general_dilated = make_conv_general_dilated(lax.conv_general_dilated)


# --- Inference: conv + bias + activation in one call. ----------------------

# The activations `conv_bias_act` applies as a oneDNN post-op: the name
# (models/layers.py's ACTIVATIONS; None = none) -> (conv.cc's `Act` code,
# alpha, beta), oneDNN's eltwise with the same values as the JAX function.
BIAS_ACT_ACTIVATIONS = {
    None: (0, 0.0, 0.0),
    'relu': (1, 0.0, 0.0),
    'leaky_relu': (1, 0.01, 0.0),  # nn.leaky_relu's slope.
    'swish': (2, 1.0, 0.0),        # x * sigmoid(1 * x).
    'relu6': (3, 0.0, 6.0),        # clip to [0, 6].
}


def conv_bias_act(x, kernel, bias, activation, window_strides, padding, rhs_dilation,
                  feature_group_count, reference):
  """act(conv(x, kernel) + bias) for inference: x NHWC and kernel HWIO in one
  dtype (float32 or bfloat16), bias float32 of the output's channels, the
  result in x's dtype, the activation applied to the float32 sum.

  oneDNN's convolution with the bias and `activation` (a key of
  BIAS_ACT_ACTIVATIONS) as post-ops, one pass over the output, where lowered
  for CPU and oneDNN can take the call (`_normalise`, this dtype's start-up
  probe); `reference(x, kernel, bias)` (plain JAX, the same function)
  everywhere else. Shaped by lax first, so a call lax refuses raises lax's
  error. Differentiable: its derivatives are `reference`'s.
  """
  dimension_numbers = ('NHWC', 'HWIO', 'NHWC')
  out = jax.eval_shape(
      lambda l, r: lax.conv_general_dilated(
          l, r, window_strides, padding, rhs_dilation=rhs_dilation,
          dimension_numbers=dimension_numbers, feature_group_count=feature_group_count),
      jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)),
      jax.ShapeDtypeStruct(jnp.shape(kernel), jnp.result_type(kernel)))
  plan = None
  if (available() and activation in BIAS_ACT_ACTIVATIONS
      and jnp.result_type(bias) == jnp.float32 and jnp.shape(bias) == (out.shape[-1],)):
    plan = _normalise(x, kernel, out.shape, window_strides, padding, rhs_dilation, None,
                      dimension_numbers, feature_group_count, 1)
  if plan is None:
    return reference(x, kernel, bias)
  out_shape, geometry = plan
  act = BIAS_ACT_ACTIVATIONS[activation]

  @jax.custom_jvp
  def fused(x, kernel, bias):
    return _run(_BIAS_ACT, x, kernel, out_shape, x.dtype, geometry, bias=bias, act=act)

  @fused.defjvp
  def _fused_jvp(primals, tangents):
    return fused(*primals), jax.jvp(reference, primals, tangents)[1]

  return lax.platform_dependent(x, kernel, bias, cpu=fused, default=reference)
