r"""Per-layer profile: XLA's CPU convolutions and oneDNN's (ours and PyTorch's).

  pip install -e '.[bench]'
  python -m isovolnet_jax.bench.conv_layers [--batch=64] [--cores=1]

For every 3x3 conv of FastCNN (configs/cifar10_fast_cpu.py), on `--cores`
cores (the process is pinned to them, so both frameworks get the same), it
times the forward pass, the input gradient and the kernel gradient, in JAX
(`lax.conv_general_dilated`, NHWC, jitted: XLA's kernels), in JAX with
`model.conv_impl='onednn'` (`isovolnet_jax.onednn`, `--dtype` float32 or
bfloat16) and in PyTorch (channels_last Conv2d; bfloat16 under autocast), and
prints ms and GFLOP/s for each: each pass is 2 FLOPs per multiply-add of the
layer's forward. Batch 64 on one core is
one of the two CPU devices of a batch-128 training step.
"""

import os
import time

from isovolnet_jax import cli

if __name__ == '__main__':
  cli.use_tcmalloc()  # Before JAX starts.

from absl import app
from absl import flags

FLAGS = flags.FLAGS


def _median_ms(fn, repeats=15):
  fn()
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return 1e3 * sorted(times)[len(times) // 2]


def layers(widths=(24, 32, 32, 64, 64, 80, 80), pool_after=(1, 3, 5), size=32):
  """(H, C_in, C_out) of each conv of a FastCNN."""
  out, c = [], 3
  for i, w in enumerate(widths):
    out.append((size, c, w))
    c = w
    if i in pool_after:
      size //= 2
  return out


def define_flags():
  flags.DEFINE_integer('batch', 64, 'Batch of the timed convs.')
  flags.DEFINE_integer('cores', 1, 'Cores the process is pinned to (both frameworks).')
  flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'], 'Compute dtype.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  args = FLAGS
  os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:args.cores]))

  import contextlib

  import jax
  import jax.numpy as jnp
  import torch

  from isovolnet_jax import onednn

  torch.set_num_threads(args.cores)
  dtype = jnp.dtype(args.dtype)
  autocast = ((lambda: torch.autocast('cpu', dtype=torch.bfloat16))
              if args.dtype == 'bfloat16' else contextlib.nullcontext)
  dims = ('NHWC', 'HWIO', 'NHWC')

  def passes(conv_fn):
    conv = lambda x, k: conv_fn(x, k, (1, 1), 'SAME', dimension_numbers=dims)
    return (jax.jit(conv),
            jax.jit(lambda x, k, g: jax.vjp(lambda x: conv(x, k), x)[1](g)[0]),
            jax.jit(lambda x, k, g: jax.vjp(lambda k: conv(x, k), k)[1](g)[0]))

  impls = {'xla': passes(jax.lax.conv_general_dilated)}
  if onednn.available():
    impls['onednn'] = passes(onednn.conv_general_dilated)
  names = [f'{i} {p}' for i in impls for p in ('fwd', 'dx', 'dk')] + [
      'torch fwd', 'torch dx+dk']
  print(f'{args.cores} core(s), batch {args.batch}, {args.dtype}: ms (GFLOP/s); '
        f'oneDNN: {onednn.isa() if onednn.available() else onednn.unavailable_reason()}')
  print(f'{"layer":<16}' + ''.join(f'{n:>16}' for n in names))
  totals = [0.0] * len(names)
  for h, ci, co in layers():
    b = args.batch
    gflop = 2 * b * h * h * 9 * ci * co / 1e9
    x = jax.random.normal(jax.random.key(0), (b, h, h, ci), dtype)
    k = jax.random.normal(jax.random.key(1), (3, 3, ci, co), dtype)
    g = jax.random.normal(jax.random.key(2), (b, h, h, co), dtype)
    run = lambda f, *a: (lambda: jax.block_until_ready(f(*a)))
    tx = torch.randn(b, ci, h, h).contiguous(memory_format=torch.channels_last)
    tx.requires_grad_(True)
    tconv = torch.nn.Conv2d(ci, co, 3, padding=1, bias=False).to(
        memory_format=torch.channels_last)
    tg = torch.randn(b, co, h, h).contiguous(memory_format=torch.channels_last)
    def torch_fwd():
      with torch.no_grad(), autocast():
        tconv(tx)
    with autocast():
      ty = tconv(tx)
    tg = tg.to(ty.dtype)
    def torch_bwd():  # Input and weight gradients, as one backward call.
      torch.autograd.grad(ty, (tx, tconv.weight), tg, retain_graph=True)
    ms = []
    for fwd, dx, dk in impls.values():
      ms += [_median_ms(run(fwd, x, k)), _median_ms(run(dx, x, k, g)),
             _median_ms(run(dk, x, k, g))]
    ms += [_median_ms(torch_fwd), _median_ms(torch_bwd)]
    totals = [t + m for t, m in zip(totals, ms)]
    flops = [gflop] * (len(names) - 1) + [2 * gflop]
    cells = ''.join(f'{m:7.2f} ({f / m * 1e3:5.0f})' for m, f in zip(ms, flops))
    print(f'{f"{h}x{h} {ci}->{co}":<16}{cells}')
  print(f'{"total ms":<16}' + ''.join(f'{t:16.2f}' for t in totals))


if __name__ == '__main__':
  define_flags()
  cli.run(main)
