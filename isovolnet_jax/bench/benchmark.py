r"""JAX vs PyTorch on the same model: training and inference images/s.

  pip install -e '.[bench]'   # PyTorch 2.13 (CPU); never a runtime dependency.
  python -m isovolnet_jax.bench.benchmark --config=configs/cifar10_fast_cpu.py [--json]

One process times, on random images of the config's input shape:
- JAX: the training step (forward + backward + optimizer update;
  augmentation off, so both sides do the same work) as training runs it
  (`train.make_train_step`), on a mesh of `--cpu_devices` CPU devices (default:
  one per core), and the inference forward pass (`train.eval_logits`): first
  the config as it is, then each `--jax_variants` entry DTYPE:CONV_IMPL
  (float32 / bfloat16 x lax / unrolled / onednn);
- PyTorch: the twin of the same architecture (`torch_models`; equal parameter
  counts are asserted) with the same optimizer, loss and batch size, in NCHW
  and channels_last memory formats, `torch.compile` where it compiles, and
  bfloat16 autocast (channels_last, eager and compiled), with
  `torch.set_num_threads` = the cores JAX uses. The fastest of them, of any
  precision, is the reference.
The first lines name the CPU, its vector extensions (AVX-512, AVX512-BF16,
AMX) and the ISA that oneDNN and PyTorch dispatch to.
Each figure is the median of `--repeats` timed runs of `--steps` steps, after
`--warmup` untimed steps (compilation, allocator warm-up).

FLOP/s: per-image forward FLOPs from `summary` (conv and dense layers, 2 per
multiply-add); a training step counts 3x the forward (the backward pass
computes two products per forward one). The % column is against a measured
peak: a float32 2048x2048 matmul (`jnp.dot`, one JAX CPU device, which uses
every core). The nominal peak, cores x the clock /proc/cpuinfo reports x
FLOPs/cycle (64 fp32 on AVX-512: 2 FMA units x 16 lanes x 2; 32 on AVX2), is
printed beside it, labelled as such: /proc/cpuinfo gives the base clock,
while the cores run at turbo clocks, so the measured matmul can exceed it
(PyTorch inference once showed as 107% of it). With --json the last stdout
line is one JSON object.
"""

import json
import math
import os
import statistics
import time

from isovolnet_jax import cli

if __name__ == '__main__':
  cli.use_tcmalloc()  # Before JAX starts.

from absl import app
from absl import flags

from isovolnet_jax import cpu_devices

FLAGS = flags.FLAGS


def define_flags():
  """Only when run as a program: importing this module (tests) defines none."""
  cli.define_flags(devices=True)
  flags.DEFINE_bool('json', False, 'Print the results as JSON on the last line.')
  flags.DEFINE_integer('steps', 20, 'Timed steps per repeat.')
  flags.DEFINE_integer('warmup', 3, 'Untimed steps first (compilation).')
  flags.DEFINE_integer('repeats', 3, 'Timed repeats; the median is reported.')
  flags.DEFINE_integer('threads', 0, 'PyTorch threads; 0 = the cores JAX uses.')
  flags.DEFINE_list('torch_variants', list(TORCH_VARIANTS), 'PyTorch variants to time.')
  flags.DEFINE_list('jax_variants', list(JAX_VARIANTS),
                    'JAX variants DTYPE:CONV_IMPL to time besides the config as it is.')
  flags.DEFINE_bool('skip_torch', False, 'Time JAX only (no PyTorch needed).')

TORCH_VARIANTS = ('nchw', 'channels_last', 'compile', 'bf16', 'bf16_compile')
JAX_VARIANTS = tuple(f'{d}:{c}' for d in ('float32', 'bfloat16')
                     for c in ('lax', 'unrolled', 'onednn'))


def throughput(step, batch_size: int, steps: int, warmup: int, repeats: int) -> float:
  """Median images/s of `step()` (which must block until its work is done)."""
  for _ in range(warmup):
    step()
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(steps):
      step()
    rates.append(steps * batch_size / (time.perf_counter() - start))
  return statistics.median(rates)


# ---------------------------------------------------------------- CPU peak

def cpu_peak_flops(cores: int) -> tuple[float, str]:
  """Nominal fp32 peak of `cores` cores at the /proc/cpuinfo clock, and how it
  was computed. That clock is not the one the cores run (turbo): a measured
  matmul can beat this figure, so the report's % column uses `matmul_flops`."""
  mhz, flags_ = 0.0, ''
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('cpu MHz') and not mhz:
          mhz = float(line.split(':')[1])
        elif line.startswith('flags') and not flags_:
          flags_ = line
  except OSError:
    return math.nan, 'unknown (no /proc/cpuinfo)'
  per_cycle = 64 if 'avx512f' in flags_ else 32 if 'avx2' in flags_ else 16
  isa = {64: 'AVX-512', 32: 'AVX2', 16: 'SSE'}[per_cycle]
  peak = cores * mhz * 1e6 * per_cycle
  return peak, (f'{cores} cores x {mhz / 1000:.2f} GHz (/proc/cpuinfo) x {per_cycle} '
                f'FLOPs/cycle ({isa}: 2 FMA units x {per_cycle // 4} lanes x 2)')


def matmul_flops() -> float:
  """Measured fp32 FLOP/s of a 2048x2048 matmul on one JAX CPU device."""
  import jax
  import jax.numpy as jnp
  n = 2048
  a = jax.device_put(jnp.ones((n, n), jnp.float32), jax.devices('cpu')[0])
  dot = jax.jit(jnp.dot)
  rate = throughput(lambda: dot(a, a).block_until_ready(), 1, 10, 2, 3)
  return rate * 2 * n ** 3


# ---------------------------------------------------------------- JAX

def cpu_description() -> str:
  """The CPU, its vector extensions and the ISA oneDNN and PyTorch dispatch to."""
  from isovolnet_jax import onednn
  model, cpu_flags = 'unknown CPU', set()
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name') and model == 'unknown CPU':
          model = line.split(':', 1)[1].strip()
        elif line.startswith('flags') and not cpu_flags:
          cpu_flags = set(line.split(':', 1)[1].split())
  except OSError:
    pass
  wanted = ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile')
  has = ' '.join(f for f in wanted if f in cpu_flags) or 'none of AVX2/AVX-512/AMX'
  line = f'CPU: {model}; {has}; oneDNN (JAX) dispatches {onednn.isa()}'
  try:
    import torch  # pylint: disable=import-outside-toplevel
    line += f', PyTorch {torch.__version__} {torch.backends.cpu.get_cpu_capability()}'
  except ImportError:
    pass
  return line


def variant_config(config, variant: str):
  """The config with DTYPE:CONV_IMPL applied ('' = as it is)."""
  config = config.copy_and_resolve_references()
  if variant:
    dtype, _, impl = variant.partition(':')
    with config.unlocked():
      config.dtype, config.model.conv_impl = dtype, impl
  return config


def variant_name(config) -> str:
  from isovolnet_jax.models import layers
  return f'{config.dtype}:{layers.resolve_conv_impl(config.model.get("conv_impl", "auto"))}'


def jax_training(config, image_shape, num_classes) -> dict:
  """The config's training step as training runs it (augmentation off), its
  state and a random batch: what `time_jax` and `step_memory` measure."""
  import jax
  import numpy as np
  from jax.sharding import NamedSharding, PartitionSpec as P

  from isovolnet_jax import models, optim, sharding, train

  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.augment.crop_padding, config.augment.flip = 0, False
    config.augment.translate = 0
  bs = config.batch_size
  mesh = sharding.make_mesh(bs, config.get('mesh_shape', (-1,)),
                            config.get('mesh_axes', ('data',)),
                            config.get('grad_accum_steps', 1))
  model = models.create_model(config.model, num_classes, models.DTYPES[config.dtype])
  # CIFAR-10's epoch (what airbench's per-epoch knobs need); a constant rate.
  per_epoch = max(1, 50_000 // bs)
  tx = optim.create_optimizer(config.optimizer, config.optimizer.learning_rate,
                              batch_size=bs, steps_per_epoch=per_epoch,
                              total_steps=10 * per_epoch)
  state = train.create_train_state(model, image_shape, tx,
                                   jax.random.key(0), NamedSharding(mesh, P()))
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (bs, *image_shape), dtype=np.uint8)
  labels = rng.integers(0, num_classes, (bs,), dtype=np.int32)
  images, labels = sharding.to_global(mesh, images, labels)
  return {'model': model, 'state': state, 'images': images, 'labels': labels,
          'key': jax.random.key(1), 'step': train.make_train_step(config, num_classes, mesh)}


def time_jax(config, image_shape, num_classes, args) -> dict:
  import functools

  import jax

  from isovolnet_jax import train

  t = jax_training(config, image_shape, num_classes)
  params = sum(x.size for x in jax.tree.leaves(t['state'].params))
  step, images = t['step'], t['images']
  infer = jax.jit(functools.partial(train.eval_logits, t['model'].apply))

  holder = [t['state']]  # The step donates its input state: keep the newest.
  def train_once():
    holder[0], metrics = step(holder[0], images, t['labels'], t['key'])
    jax.block_until_ready(metrics)

  timing = (args.steps, args.warmup, args.repeats)
  train_rate = throughput(train_once, config.batch_size, *timing)
  variables = {'params': holder[0].params, 'batch_stats': holder[0].batch_stats}
  infer_rate = throughput(lambda: infer(variables, images).block_until_ready(),
                          config.batch_size, *timing)
  return {'params': int(params), 'devices': jax.device_count(),
          'train': train_rate, 'infer': infer_rate}


# ---------------------------------------------------------------- PyTorch

def _torch_optimizer(torch, params, opt):
  kind = opt.name
  if kind == 'sgd':
    return torch.optim.SGD(params, lr=opt.learning_rate, momentum=opt.momentum,
                           nesterov=opt.nesterov and opt.momentum > 0,
                           weight_decay=opt.weight_decay)
  if kind == 'adam':
    return torch.optim.Adam(params, lr=opt.learning_rate, betas=(opt.b1, opt.b2),
                            eps=opt.eps, weight_decay=opt.weight_decay)
  if kind == 'adamw':
    return torch.optim.AdamW(params, lr=opt.learning_rate, betas=(opt.b1, opt.b2),
                             eps=opt.eps, weight_decay=opt.weight_decay)
  return torch.optim.RMSprop(params, lr=opt.learning_rate, alpha=opt.decay,
                             eps=opt.eps, momentum=opt.momentum,
                             weight_decay=opt.weight_decay)


def torch_training(config, image_shape, num_classes, threads, variant) -> dict:
  """One PyTorch variant's training and inference calls on a random batch:
  'nchw', 'channels_last', 'compile' (channels_last), 'bf16' (bfloat16
  autocast, channels_last) or 'bf16_compile'."""
  import contextlib

  import torch

  from isovolnet_jax.bench import torch_models

  torch.manual_seed(0)
  torch.set_num_threads(threads)
  net = torch_models.build(config.model, num_classes, tuple(image_shape))
  params = torch_models.num_params(net)
  fmt = torch.contiguous_format if variant == 'nchw' else torch.channels_last
  net = net.to(memory_format=fmt)
  bs = config.batch_size
  h, w, c = image_shape
  x = (torch.rand(bs, c, h, w) * 2 - 1).contiguous(memory_format=fmt)
  y = torch.randint(0, num_classes, (bs,))
  loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
  opt = _torch_optimizer(torch, net.parameters(), config.optimizer)
  train_net = eval_net = net
  if variant.endswith('compile'):
    train_net = eval_net = torch.compile(net)
  precision = (lambda: torch.autocast('cpu', dtype=torch.bfloat16)) \
      if variant.startswith('bf16') else contextlib.nullcontext

  def grad_once():
    net.train()
    opt.zero_grad(set_to_none=True)
    with precision():
      loss = loss_fn(train_net(x), y)
    loss.backward()

  def train_once():
    grad_once()
    opt.step()

  def infer_once():
    net.eval()
    with torch.inference_mode(), precision():
      eval_net(x)

  return {'params': params, 'train_once': train_once, 'infer_once': infer_once,
          'grad_once': grad_once}


def time_torch(config, image_shape, num_classes, threads, variant, args) -> dict:
  """Images/s of one PyTorch variant (`torch_training`)."""
  t = torch_training(config, image_shape, num_classes, threads, variant)
  timing = (args.steps, args.warmup, args.repeats)
  bs = config.batch_size
  return {'params': t['params'], 'train': throughput(t['train_once'], bs, *timing),
          'infer': throughput(t['infer_once'], bs, *timing)}


# ---------------------------------------------------------------- report

def run(config, args) -> dict:
  """All figures; `args` has steps, warmup, repeats, threads, torch_variants,
  skip_torch (the flags, or a namespace in tests)."""
  from isovolnet_jax import summary

  image_shape = summary.default_input_shape(config)
  num_classes = summary.default_num_classes(config)
  fwd_flops = summary.summarize(config, image_shape, num_classes)['total_flops']
  own = variant_name(config)
  jax_variants = {own: time_jax(config, image_shape, num_classes, args)}
  for variant in getattr(args, 'jax_variants', ()):
    vconfig = variant_config(config, variant)
    if variant_name(vconfig) not in jax_variants:
      jax_variants[variant_name(vconfig)] = time_jax(vconfig, image_shape, num_classes,
                                                     args)
  jax_res = jax_variants[own]
  cores = cpu_devices.usable_cores()
  threads = args.threads or cores
  result = {
      'model': config.model.name, 'params': jax_res['params'],
      'batch_size': config.batch_size, 'image_shape': list(image_shape),
      'jax_devices': jax_res['devices'], 'torch_threads': threads,
      'tcmalloc': cli.tcmalloc_loaded(), 'cpu': cpu_description(),
      'forward_flops_per_image': fwd_flops,
      # The config as it is (its dtype, its conv_impl as 'auto' resolves it).
      'jax_variant': own,
      'jax_train_img_s': jax_res['train'], 'jax_infer_img_s': jax_res['infer'],
      'jax_variants': {k: {'train': v['train'], 'infer': v['infer']}
                       for k, v in jax_variants.items()},
  }
  result['jax_train_best'] = max(jax_variants, key=lambda k: jax_variants[k]['train'])
  result['jax_infer_best'] = max(jax_variants, key=lambda k: jax_variants[k]['infer'])
  if not args.skip_torch:
    variants = {}
    for variant in args.torch_variants:
      try:
        variants[variant] = time_torch(config, image_shape, num_classes, threads,
                                       variant, args)
      except Exception as e:  # pylint: disable=broad-except
        if variant != 'compile':
          raise
        # torch.compile needs a C++ toolchain and may fail offline: say why.
        variants[variant] = {'error': f'{type(e).__name__}: {str(e).splitlines()[0][:200]}'}
        continue
      if variants[variant]['params'] != jax_res['params']:
        raise AssertionError(
            f'parameter counts differ: JAX {jax_res["params"]:,} vs PyTorch '
            f'{variants[variant]["params"]:,}; the twin is not the same model')
    ok = {k: v for k, v in variants.items() if 'error' not in v}
    best_train = max(ok, key=lambda k: ok[k]['train'])
    best_infer = max(ok, key=lambda k: ok[k]['infer'])
    result.update({
        'torch_variants': variants,
        'torch_train_img_s': ok[best_train]['train'], 'torch_train_best': best_train,
        'torch_infer_img_s': ok[best_infer]['infer'], 'torch_infer_best': best_infer,
    })
    result['train_ratio'] = result['jax_train_img_s'] / result['torch_train_img_s']
    result['infer_ratio'] = result['jax_infer_img_s'] / result['torch_infer_img_s']
    result['best_train_ratio'] = (jax_variants[result['jax_train_best']]['train']
                                  / result['torch_train_img_s'])
    result['best_infer_ratio'] = (jax_variants[result['jax_infer_best']]['infer']
                                  / result['torch_infer_img_s'])
  peak, how = cpu_peak_flops(cores)
  result.update({'peak_flops': peak, 'peak_how': how, 'matmul_flops': matmul_flops()})
  return result


def format_table(r: dict) -> str:
  train_flops, infer_flops = 3 * r['forward_flops_per_image'], r['forward_flops_per_image']
  peak = r['matmul_flops']  # Measured: the nominal peak's clock is not the one run.

  def row(name, train, infer):
    def cell(rate, flops):
      if rate is None:
        return f'{"-":>12} {"":>15}'
      gf = rate * flops / 1e9
      return f'{rate:12,.0f} {gf:7.1f} ({100 * gf * 1e9 / peak:4.1f}%)'
    return f'{name:<26} {cell(train, train_flops)} {cell(infer, infer_flops)}'

  lines = [
      f'model {r["model"]}: {r["params"]:,} params, {r["forward_flops_per_image"] / 1e6:.1f} '
      f'MFLOPs/image forward, batch {r["batch_size"]}, input {tuple(r["image_shape"])}',
      f'JAX on {r["jax_devices"]} CPU device(s); PyTorch with {r["torch_threads"]} '
      f'thread(s); tcmalloc loaded: {r["tcmalloc"]}',
      r['cpu'],
      '',
      f'{"":<26} {"train img/s":>12} {"GFLOP/s (% mm)":>15} {"infer img/s":>12} '
      f'{"GFLOP/s (% mm)":>15}',
  ]
  for name, v in r['jax_variants'].items():
    label = f'jax {name}' + (' (config)' if name == r['jax_variant'] else '')
    lines.append(row(label, v['train'], v['infer']))
  for name, v in r.get('torch_variants', {}).items():
    if 'error' in v:
      lines.append(f'{"torch " + name:<26} failed: {v["error"]}')
    else:
      lines.append(row(f'torch {name}', v['train'], v['infer']))
  if 'train_ratio' in r:
    lines += ['', f'JAX ({r["jax_variant"]}) / best PyTorch: train {r["train_ratio"]:.2f}x '
              f'(vs {r["torch_train_best"]}), inference {r["infer_ratio"]:.2f}x '
              f'(vs {r["torch_infer_best"]})',
              f'best JAX / best PyTorch: train {r["best_train_ratio"]:.2f}x '
              f'({r["jax_train_best"]} vs {r["torch_train_best"]}), inference '
              f'{r["best_infer_ratio"]:.2f}x ({r["jax_infer_best"]} vs '
              f'{r["torch_infer_best"]})']
  lines += [f'% mm: of the measured peak, a 2048x2048 fp32 matmul (JAX, 1 device, '
            f'all cores): {peak / 1e9:.0f} GFLOP/s; nominal peak '
            f'{r["peak_flops"] / 1e9:.0f} GFLOP/s = {r["peak_how"]}, at the base '
            f'clock, not the turbo clock the cores run']
  return '\n'.join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli.setup_devices([FLAGS.config])  # Before JAX starts.
  result = run(FLAGS.config, FLAGS)
  print(format_table(result))
  if FLAGS.json:
    print(json.dumps(result))


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  define_flags()
  cli.run(main)
