"""Depthwise and grouped 2-D convolutions as shifted slices, for XLA:CPU.

XLA's CPU backend runs `lax.conv_general_dilated` with `feature_group_count
> 1` as one small im2col + GEMM per group, and JAX expresses the kernel
gradient as a `batch_group_count` convolution that XLA:CPU expands into a
dense C x C convolution plus a mask: C times the necessary work (jax-ml/jax
#23713). Written as k*k shifted slices of the padded input, each multiplied
by its tap's weights and summed, the same convolution is a handful of fused
elementwise loops (depthwise) or small einsums (grouped), and a custom VJP
keeps the backward pass in that form too:

  * input gradient: the same shift-and-add on the output gradient, dilated by
    the stride and padded so that each tap's slice lines up, kernel flipped;
  * kernel gradient: for each tap, the sum over (N, H, W) of shifted input x
    output gradient.

`conv_general_dilated` has lax's signature, so it plugs into
`flax.linen.Conv(conv_general_dilated=...)`: parameters, names and
initialisation stay those of nn.Conv. 1x1 convs (pointwise, 8 or more input
channels) become matmuls. Whatever it cannot do (lhs dilation, batch groups,
layouts other than NHWC/HWIO) it hands to lax unchanged, and plain k x k
convolutions stay on lax on purpose: the same rewrite was slower than XLA
for them (docs/performance.md, "Figures behind code choices", has this
module's measurements).
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1),
                                   ('NHWC', 'HWIO', 'NHWC'))


def _acc_dtype(dtype):
  """Sums in at least float32 (bfloat16 taps are added in float32)."""
  return jnp.promote_types(dtype, jnp.float32)


def _taps(x_pad, kernel_hw, dilation, strides, out_hw):
  """(i, j, slice) per tap: x_pad's window that tap (i, j) multiplies."""
  n, _, _, c = x_pad.shape
  (kh, kw), (dh, dw), (sh, sw), (ho, wo) = kernel_hw, dilation, strides, out_hw
  for i in range(kh):
    for j in range(kw):
      start = (0, i * dh, j * dw, 0)
      limit = (n, i * dh + (ho - 1) * sh + 1, j * dw + (wo - 1) * sw + 1, c)
      yield i, j, lax.slice(x_pad, start, limit, (1, sh, sw, 1))


# Grouped convs with at most this many input x output channels per group are
# written as broadcast multiply-adds rather than einsums: a batched einsum
# over tiny groups (e.g. the dilated DS residual net's 32 groups of 2 -> 4
# channels) is many tiny matmuls per pixel, far slower on CPU.
_MAX_ELEMENTWISE_GROUP = 64


def _elementwise(gi, go):
  return gi * go <= _MAX_ELEMENTWISE_GROUP


def _apply_tap(patch, k_tap, groups, acc):
  """One tap's contribution: patch (N,H,W,Cin) x k_tap (Cin/G, Cout)."""
  gi, cout = k_tap.shape
  go = cout // groups
  lead = patch.shape[:3]
  if gi == 1 and go == 1:  # Depthwise: a per-channel scale.
    return patch.astype(acc) * k_tap[0].astype(acc)
  w = k_tap.reshape(gi, groups, go).astype(acc)
  p = patch.reshape(*lead, groups, gi).astype(acc)
  if _elementwise(gi, go):  # Sum over the group's inputs of input x weights.
    y = sum(p[..., c, None] * w[c] for c in range(gi))
  else:
    y = jnp.einsum('nhwgc,cgo->nhwgo', p, w, preferred_element_type=acc)
  return y.reshape(*lead, cout)


def _transpose_tap(g, k_tap, groups, acc):
  """The adjoint of `_apply_tap` in the patch: g (N,H,W,Cout) -> (N,H,W,Cin).

  It is `_apply_tap` itself with each group's kernel transposed (Cout/G
  inputs, Cin/G outputs): multiply-adds, no reduction over a short minor
  axis (slow on CPU for narrow groups such as 2 -> 4 channels).
  """
  gi, cout = k_tap.shape
  go = cout // groups
  k_t = k_tap.reshape(gi, groups, go).transpose(2, 1, 0).reshape(go, groups * gi)
  return _apply_tap(g, k_t, groups, acc)


def channel_sum(x, acc=jnp.float32):
  """Sum over all axes but the last, in `acc`.

  Reduces the batch axis first, over a wide (H*W*C) minor dimension, then the
  small rest: XLA:CPU vectorises a reduction along the minor axis poorly when
  C is a handful of channels, which made these sums cost several times their
  bytes in the backward pass of the 3- and 12-channel layers.
  """
  c = x.shape[-1]
  x = x.astype(acc).reshape(x.shape[0], -1).sum(0)
  return x.reshape(-1, c).sum(0)


def _depthwise_kernel_grad(x_pad, g, kernel_hw, dilation, strides, acc):
  """Per-tap sums over (N, H, W) of x_pad's window x g: shape (kh, kw, C)."""
  kh, kw = kernel_hw
  rows = [[None] * kw for _ in range(kh)]
  for i, j, patch in _taps(x_pad, kernel_hw, dilation, strides, g.shape[1:3]):
    rows[i][j] = channel_sum(patch.astype(acc) * g.astype(acc), acc)
  return jnp.stack([jnp.stack(r) for r in rows])


# Images per step of the depthwise kernel-gradient loop: the k*k tap sums of
# a chunk of 4 images read it from cache instead of reading the whole batch
# from memory k*k times (on one CPU core, chunks of 4 beat no chunks and
# chunks of 16 or 32).
_DK_CHUNK = 4


def _kernel_grad(x_pad, g, kernel_hw, dilation, strides, groups, gi, acc):
  """All taps' kernel gradients, shape (kh, kw, Cin/G, Cout)."""
  kh, kw = kernel_hw
  n, cout = g.shape[0], g.shape[-1]
  go = cout // groups
  if not _elementwise(gi, go):
    out_hw = g.shape[1:3]
    lead = g.shape[:3]
    y = g.reshape(*lead, groups, go)
    rows = [[None] * kw for _ in range(kh)]
    for i, j, patch in _taps(x_pad, kernel_hw, dilation, strides, out_hw):
      p = patch.reshape(*lead, groups, gi)
      dk = jnp.einsum('nhwgc,nhwgo->cgo', p, y, preferred_element_type=acc)
      rows[i][j] = dk.reshape(gi, cout)
    return jnp.stack([jnp.stack(r) for r in rows])
  if gi > 1 or go > 1:
    # Input channel c of every group, repeated for the group's go outputs, is
    # laid out as g is: each (tap, c) is then a depthwise kernel gradient, all
    # multiply-adds and wide reductions. Reading the channels straight from
    # x_pad inside each tap's reduction (strided, broadcast) took twice as
    # long for the dilated DS residual net's 2 -> 4 groups.
    xs = x_pad.reshape(*x_pad.shape[:3], groups, gi)
    per_c = [jnp.repeat(xs[..., c], go, axis=-1) for c in range(gi)]
    dks = [_depthwise_kernel_grad(xc, g, kernel_hw, dilation, strides, acc)
           for xc in per_c]
    return jnp.stack(dks, axis=2)
  if n % _DK_CHUNK or n == _DK_CHUNK:
    return _depthwise_kernel_grad(x_pad, g, kernel_hw, dilation, strides, acc)[:, :, None]
  chunks = lambda a: a.reshape(n // _DK_CHUNK, _DK_CHUNK, *a.shape[1:])
  def body(total, xg):
    return total + _depthwise_kernel_grad(*xg, kernel_hw, dilation, strides, acc), None
  zero = jnp.zeros((kh, kw, cout), acc)
  return lax.scan(body, zero, (chunks(x_pad), chunks(g)))[0][:, :, None]


def _out_size(size, pads, k, d, s):
  return (size + pads[0] + pads[1] - (k - 1) * d - 1) // s + 1


def _forward(x, k, strides, pads, dilation, groups):
  kh, kw, _, _ = k.shape
  out_hw = tuple(_out_size(n, p, kk, d, s) for n, p, kk, d, s in
                 zip(x.shape[1:3], pads, (kh, kw), dilation, strides))
  acc = _acc_dtype(x.dtype)
  x_pad = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  y = None
  for i, j, patch in _taps(x_pad, (kh, kw), dilation, strides, out_hw):
    t = _apply_tap(patch, k[i, j], groups, acc)
    y = t if y is None else y + t
  return y.astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def grouped_conv(x, k, strides, pads, dilation, groups):
  """NHWC x HWIO grouped convolution; pads = ((top, bottom), (left, right))."""
  return _forward(x, k, strides, pads, dilation, groups)


def _grouped_conv_fwd(x, k, strides, pads, dilation, groups):
  return _forward(x, k, strides, pads, dilation, groups), (x, k)


def _grouped_conv_bwd(strides, pads, dilation, groups, res, g):
  x, k = res
  kh, kw, gi, _ = k.shape
  acc = _acc_dtype(x.dtype)
  h, w = x.shape[1:3]
  ho, wo = g.shape[1:3]
  # Input gradient: dilate g by the stride and pad it so that tap (i, j)'s
  # window of x lines up with the slice of g at ((kh-1-i)*dh, (kw-1-j)*dw).
  g_pads = [(0, 0, 0)]
  for n, out, (lo, _), kk, d, s in zip((h, w), (ho, wo), pads, (kh, kw),
                                       dilation, strides):
    before = (kk - 1) * d - lo
    after = n + (kk - 1) * d - ((out - 1) * s + 1) - before
    g_pads.append((before, after, s - 1))
  g_pads.append((0, 0, 0))
  g_pad = lax.pad(g, jnp.zeros((), g.dtype), g_pads)
  dx = None
  for i, j, patch in _taps(g_pad, (kh, kw), dilation, (1, 1), (h, w)):
    t = _transpose_tap(patch, k[kh - 1 - i, kw - 1 - j], groups, acc)
    dx = t if dx is None else dx + t
  # Kernel gradient: each tap's input window against g.
  x_pad = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  dk = _kernel_grad(x_pad, g, (kh, kw), dilation, strides, groups, gi, acc)
  return dx.astype(x.dtype), dk.astype(k.dtype)


grouped_conv.defvjp(_grouped_conv_fwd, _grouped_conv_bwd)


# Narrower inputs stay on lax: a 3 -> 12 channel 1x1 conv at 32x32 ran its
# forward pass 5x slower as a matmul (K = 3 is too short for the GEMM kernel).
_MIN_DOT_CHANNELS = 8


def _is_pointwise(lhs, rhs, padding, lhs_dilation, feature_group_count,
                  batch_group_count, preferred_element_type, dimension_numbers):
  """A 1x1 NHWC conv with no padding: a matmul over the channels."""
  no_padding = (padding in ('SAME', 'VALID') or
                all(tuple(p) == (0, 0) for p in padding))
  return (lhs.ndim == 4 and rhs.shape[:2] == (1, 1) and feature_group_count == 1
          and batch_group_count == 1 and no_padding
          and tuple(lhs_dilation or (1, 1)) == (1, 1)
          and preferred_element_type is None
          and lhs.shape[-1] >= _MIN_DOT_CHANNELS
          and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
          == _NHWC)


def pointwise_conv(x, k, strides=(1, 1)):
  """A 1x1 conv as a matmul: (N*H*W, Cin) @ (Cin, Cout).

  XLA:CPU's convolution emitter runs 1x1 convs' backward pass at about half
  the speed of the same products as dots (e.g. IsoVolNet's 768 -> 3072
  pointwise conv).
  """
  x = x[:, ::strides[0], ::strides[1]]
  return _pointwise(x, k)


@jax.custom_vjp
def _pointwise(x, k):
  return jnp.einsum('nhwc,co->nhwo', x, k[0, 0])


def _pointwise_fwd(x, k):
  return _pointwise(x, k), (x, k)


def _pointwise_bwd(res, g):
  x, k = res
  # XLA fuses the transpose that the kernel gradient's dot wants into the
  # producer of its operand, a loop that writes with a stride of C. Written
  # this way (custom VJP + barrier) that fusion went away for IsoVolNet's
  # last block, but not for the dilated DS residual net, where the fusions
  # that transpose x (re-running the grouped conv + BatchNorm + dropout
  # forward) are the largest item left in its profile (docs/performance.md,
  # "Where the time goes").
  g = lax.optimization_barrier(g)
  dx = jnp.einsum('nhwo,co->nhwc', g, k[0, 0])
  dk = jnp.einsum('nhwc,nhwo->co', x, g)[None, None]
  return dx, dk


_pointwise.defvjp(_pointwise_fwd, _pointwise_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
  """`lax.conv_general_dilated`, unrolled when it is a grouped 2-D NHWC conv."""
  args = (lhs, rhs, window_strides, padding)
  kwargs = dict(lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                dimension_numbers=dimension_numbers,
                feature_group_count=feature_group_count,
                batch_group_count=batch_group_count, precision=precision,
                preferred_element_type=preferred_element_type)
  dilation = tuple(rhs_dilation or (1, 1))
  if _is_pointwise(lhs, rhs, padding, lhs_dilation, feature_group_count,
                   batch_group_count, preferred_element_type, dimension_numbers):
    return pointwise_conv(lhs, rhs, tuple(window_strides))
  supported = (
      lhs.ndim == 4 and feature_group_count > 1 and batch_group_count == 1
      and tuple(lhs_dilation or (1, 1)) == (1, 1)
      and preferred_element_type is None
      and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
      == _NHWC)
  if not supported:  # Anything else: lax, unchanged.
    return lax.conv_general_dilated(*args, **kwargs)
  kh, kw = rhs.shape[:2]
  if isinstance(padding, str):
    eff = [(kk - 1) * d + 1 for kk, d in zip((kh, kw), dilation)]
    padding = lax.padtype_to_pads(lhs.shape[1:3], eff, window_strides, padding)
  pads = tuple(tuple(int(p) for p in pair) for pair in padding)
  return grouped_conv(lhs, rhs, tuple(window_strides), pads, dilation,
                      feature_group_count)
