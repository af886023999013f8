r"""JAX vs PyTorch on the same model: training and inference images/s.

  pip install -e '.[bench]'   # PyTorch 2.13 (CPU); never a runtime dependency.
  python -m isovolnet_jax.bench.benchmark --config=configs/cifar10_fast_cpu.py [--json]

One process times, on random images of the config's input shape:
- JAX, on the devices it finds (the first lines name their platform and
  kind, e.g. `JAX on 1 GPU device(s): NVIDIA H200`; on CPU a mesh of
  `--cpu_devices` CPU devices, default one per core): the training step
  (forward + backward + optimizer update; augmentation off, so both sides do
  the same work) as training runs it (`train.make_train_step`), and the
  inference forward pass (`train.eval_logits`): first the config as it is,
  then each `--jax_variants` entry DTYPE:CONV_IMPL (float32 / bfloat16 x lax /
  unrolled / onednn by default; DTYPE may also be mixed_bfloat16, float32
  with bfloat16 convolutions: e.g. `--jax_variants=mixed_bfloat16:onednn`);
- PyTorch: the twin of the same architecture (`torch_models`; equal parameter
  counts are asserted) with the same optimizer, loss and batch size, in NCHW
  and channels_last memory formats, `torch.compile` where it compiles, and
  bfloat16 autocast (channels_last, eager and compiled); on the GPU when JAX
  runs on one and PyTorch has CUDA (`torch_device`), else on the CPU with
  `torch.set_num_threads` = the cores JAX uses. The fastest of them, of any
  precision, is the reference;
- the loop: `--loop_steps` steps of the real training loop,
  `train.train_and_evaluate` (what `python -m isovolnet_jax.main` runs: the
  config's data pipeline, the step, logging, checkpoints), its images/s read
  from the run's metrics.jsonl, against the step alone with augmentation on,
  as `loop/step`; the config must have its data (`--config.data.source=folder
  --config.data.path=DIR`), else the line says why it did not run.
The CPU line names the host CPU, its vector extensions (AVX-512, AVX512-BF16,
AMX) and the ISA that oneDNN and PyTorch dispatch to. On an accelerator the
memory line gives `device.memory_stats()['peak_bytes_in_use']` after the
config's step and inference (and PyTorch's `max_memory_allocated`).
Each figure is the median of `--repeats` timed runs of `--steps` steps, after
`--warmup` untimed steps (compilation, allocator warm-up).

FLOP/s: per-image forward FLOPs from `summary` (conv and dense layers, 2 per
multiply-add); a training step counts 3x the forward (the backward pass
computes two products per forward one). The % column is against a measured
peak. On an accelerator: an 8192x8192 jitted `jnp.dot` on the device, in
float32 (JAX's default precision: TF32 on NVIDIA tensor cores) and bfloat16,
each row against its own dtype's, times the device count. On CPU: a float32
2048x2048 matmul (`jnp.dot`, one JAX CPU device, which uses every core). The
nominal CPU peak, cores x the clock /proc/cpuinfo reports x FLOPs/cycle (64
fp32 on AVX-512: 2 FMA units x 16 lanes x 2; 32 on AVX2), is printed beside
it, labelled as such: /proc/cpuinfo gives the base clock, while the cores run
at turbo clocks, so the measured matmul can exceed it (PyTorch inference once
showed as 107% of it). With --json the last stdout line is one JSON object.

The model, state and step are training's own (`train.build`: `_set_up`
without the data set, the workdir or the checkpoints), on random images; the
plan and schedule count the config's data set's training images
(`summary.default_num_train`).
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
  flags.DEFINE_integer('loop_steps', 200,
                       'Steps of the real training loop (train.train_and_evaluate on '
                       "the config's data) for the loop/step figure; 0 = none.")

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


def matmul_size(platform: str) -> int:
  """The matmul's side: 2048 on CPU (as measured since the start), 8192 on an
  accelerator (smaller ones leave a GPU's tensor cores idle part of the time)."""
  return 2048 if platform == 'cpu' else 8192


def matmul_flops(dtype: str = 'float32', device=None) -> float:
  """Measured FLOP/s of an n x n `jnp.dot` in `dtype` on `device` (default:
  the first CPU device), jitted, inputs on the device; n = `matmul_size`.
  float32 runs at JAX's default precision: on NVIDIA GPUs with tensor cores
  that is TF32, as the models' float32 convolutions and dots run too."""
  import jax
  import jax.numpy as jnp
  device = device or jax.devices('cpu')[0]
  n = matmul_size(device.platform)
  a = jax.device_put(jnp.ones((n, n), dtype), device)
  dot = jax.jit(jnp.dot)
  rate = throughput(lambda: dot(a, a).block_until_ready(), 1, 10, 2, 3)
  return rate * 2 * n ** 3


def device_info(device=None) -> dict:
  """What JAX runs on: platform ('cpu', 'gpu', 'tpu'), the device's kind
  (e.g. 'NVIDIA H200') and how many devices there are."""
  import jax
  device = device or jax.devices()[0]
  return {'platform': device.platform, 'device_kind': device.device_kind,
          'device_count': jax.device_count()}


def peak_bytes_in_use(device) -> int | None:
  """`device.memory_stats()['peak_bytes_in_use']`: the most memory this
  process has held on the device so far; None on CPU (no stats there)."""
  if device.platform == 'cpu':
    return None
  stats = device.memory_stats() or {}
  return stats.get('peak_bytes_in_use')


def torch_device(platform: str, cuda_available: bool) -> str:
  """Where the PyTorch twins run: 'cuda' when JAX runs on a GPU and PyTorch
  has CUDA (ROCm's PyTorch also calls it 'cuda'), else 'cpu' (as JAX on CPU,
  or PyTorch's CPU build beside a GPU JAX: said so in the table)."""
  return 'cuda' if platform == 'gpu' and cuda_available else 'cpu'


def dtype_of(variant: str) -> str:
  """A table row's convolutions' dtype (the peak its FLOP/s are against): JAX
  'bfloat16:lax' and 'mixed_bfloat16:lax' -> bfloat16, PyTorch 'bf16*' ->
  bfloat16, the rest float32."""
  return ('bfloat16' if variant.startswith(('bf16', 'bfloat16', 'mixed_bfloat16'))
          else 'float32')


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
  """DTYPE:CONV_IMPL as they run here ('auto' resolved for both)."""
  from isovolnet_jax import models
  from isovolnet_jax.models import layers
  impl = layers.resolve_conv_impl(config.model.get('conv_impl', 'auto'))
  return f'{models.resolve_dtype(config)}:{impl}'


def jax_training(config, image_shape, num_classes, augment: bool = False,
                 num_train: int | None = None) -> dict:
  """The config's training step as training runs it (augmentation off unless
  `augment`), its state (`train.build`, for `num_train` training images, by
  default the config's data set's: `summary.default_num_train`) and a random
  batch: what `time_jax` and `step_memory` measure."""
  import jax
  import numpy as np

  from isovolnet_jax import sharding, summary, train

  config = config.copy_and_resolve_references()
  if not augment:
    with config.unlocked():
      config.augment.crop_padding, config.augment.flip = 0, False
      config.augment.translate = 0
  if num_train is None:
    num_train = summary.default_num_train(config)
  built = train.build(config, num_classes, image_shape, num_train)
  bs = config.batch_size
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (bs, *image_shape), dtype=np.uint8)
  labels = rng.integers(0, num_classes, (bs,), dtype=np.int32)
  images, labels = sharding.to_global(built.mesh, images, labels)
  return {'model': built.model, 'state': built.state, 'images': images, 'labels': labels,
          'key': built.step_key, 'plan': built.plan,
          'step': train.make_train_step(config, num_classes, built.mesh)}


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
          'train': train_rate, 'infer': infer_rate,
          'peak_bytes': peak_bytes_in_use(jax.devices()[0])}


def time_step(config, image_shape, num_classes, args) -> float:
  """Images/s of the train step alone as the loop runs it: augmentation as
  configured (in the step), random images; the loop/step figure's step."""
  import jax
  t = jax_training(config, image_shape, num_classes, augment=True)
  holder = [t['state']]
  def train_once():
    holder[0], metrics = t['step'](holder[0], t['images'], t['labels'], t['key'])
    jax.block_until_ready(metrics)
  return throughput(train_once, config.batch_size, args.steps, args.warmup, args.repeats)


def loop_images_per_sec(rows: list[dict]) -> float:
  """The loop's steady rate from a run's metrics.jsonl rows: the median of
  its train lines' `images_per_sec` (the loop's own StepTimer: compilation,
  evaluation and checkpoints left out), the first line left out when there
  are 3 or more (it follows the compiling step)."""
  rates = [r['images_per_sec'] for r in rows
           if r.get('split') == 'train' and 'images_per_sec' in r]
  if not rates:
    raise ValueError('no train lines with images_per_sec in metrics.jsonl')
  return statistics.median(rates[1:] if len(rates) >= 3 else rates)


def loop_config(config, steps: int):
  """The config for a short run of the real loop: `steps` steps, 4 log lines,
  no periodic evaluation or checkpoint before the end."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.num_train_steps = steps
    config.log_every_steps = max(1, steps // 4)
    config.eval_every_epochs = 1e9
    config.checkpoint_every_steps = 10 * steps
    config.max_train_time_minutes = 0.0
  return config


def time_loop(config, steps: int) -> dict:
  """The real training loop, `train.train_and_evaluate` (what
  `python -m isovolnet_jax.main` runs: data pipeline, step, logging,
  checkpoints), for `steps` steps in a temporary workdir; its images/s read
  from the run's metrics.jsonl."""
  import tempfile

  from isovolnet_jax import plots, train

  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    train.train_and_evaluate(loop_config(config, steps), workdir)
    seconds = time.perf_counter() - start
    rows = plots.read_metrics(workdir)
  return {'steps': steps, 'img_s': loop_images_per_sec(rows), 'seconds': seconds,
          'log_lines': sum(r['split'] == 'train' for r in rows)}


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


def torch_training(config, image_shape, num_classes, threads, variant,
                   device: str = 'cpu') -> dict:
  """One PyTorch variant's training and inference calls on a random batch:
  'nchw', 'channels_last', 'compile' (channels_last), 'bf16' (bfloat16
  autocast, channels_last) or 'bf16_compile', on `device` ('cpu' or
  'cuda'; on CUDA each call waits for the GPU: `torch.cuda.synchronize`)."""
  import contextlib

  import torch

  from isovolnet_jax.bench import torch_models

  torch.manual_seed(0)
  torch.set_num_threads(threads)
  net = torch_models.build(config.model, num_classes, tuple(image_shape))
  params = torch_models.num_params(net)
  fmt = torch.contiguous_format if variant == 'nchw' else torch.channels_last
  net = net.to(device=device, memory_format=fmt)
  bs = config.batch_size
  h, w, c = image_shape
  x = (torch.rand(bs, c, h, w, device=device) * 2 - 1).contiguous(memory_format=fmt)
  y = torch.randint(0, num_classes, (bs,), device=device)
  sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
  loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
  opt = _torch_optimizer(torch, net.parameters(), config.optimizer)
  train_net = eval_net = net
  if variant.endswith('compile'):
    train_net = eval_net = torch.compile(net)
  precision = (lambda: torch.autocast(device, dtype=torch.bfloat16)) \
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
    sync()

  def infer_once():
    net.eval()
    with torch.inference_mode(), precision():
      eval_net(x)
    sync()

  return {'params': params, 'train_once': train_once, 'infer_once': infer_once,
          'grad_once': grad_once}


def time_torch(config, image_shape, num_classes, threads, variant, args,
               device: str = 'cpu') -> dict:
  """Images/s of one PyTorch variant (`torch_training`) on `device`."""
  t = torch_training(config, image_shape, num_classes, threads, variant, device)
  timing = (args.steps, args.warmup, args.repeats)
  bs = config.batch_size
  return {'params': t['params'], 'train': throughput(t['train_once'], bs, *timing),
          'infer': throughput(t['infer_once'], bs, *timing)}


# ---------------------------------------------------------------- report

def run(config, args) -> dict:
  """All figures; `args` has steps, warmup, repeats, threads, torch_variants,
  skip_torch, and optionally jax_variants and loop_steps (the flags, or a
  namespace in tests)."""
  import jax

  from isovolnet_jax import summary

  image_shape = summary.default_input_shape(config)
  num_classes = summary.default_num_classes(config)
  fwd_flops = summary.summarize(config, image_shape, num_classes)['total_flops']
  device = jax.devices()[0]
  info = device_info(device)
  on_cpu = info['platform'] == 'cpu'
  own = variant_name(config)
  jax_variants = {own: time_jax(config, image_shape, num_classes, args)}
  # The config's own step and inference: the most this process held on the
  # device by then (the larger variants and the matmul come later).
  peak_bytes = jax_variants[own].pop('peak_bytes', None)
  for variant in getattr(args, 'jax_variants', ()):
    vconfig = variant_config(config, variant)
    if variant_name(vconfig) not in jax_variants:
      jax_variants[variant_name(vconfig)] = time_jax(vconfig, image_shape, num_classes,
                                                     args)
      jax_variants[variant_name(vconfig)].pop('peak_bytes', None)
  jax_res = jax_variants[own]
  cores = cpu_devices.usable_cores()
  threads = args.threads or cores
  result = {
      'model': config.model.name, 'params': jax_res['params'],
      'batch_size': config.batch_size, 'image_shape': list(image_shape),
      'jax_devices': jax_res['devices'], 'torch_threads': threads,
      **info, 'jax_peak_bytes': peak_bytes,
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
  loop_steps = getattr(args, 'loop_steps', 0)
  if loop_steps:
    result['loop'] = loop_figures(config, image_shape, num_classes, args, loop_steps)
  if not args.skip_torch:
    result.update(run_torch(config, image_shape, num_classes, threads, args,
                            info['platform'], jax_res))
    _best_ratios(result)
  peak, how = cpu_peak_flops(cores)
  result.update({'peak_flops': peak, 'peak_how': how})
  if on_cpu:  # As measured since the start: float32, 2048 x 2048, a CPU device.
    result['matmul_flops'] = matmul_flops()
    result['matmul_flops_bf16'] = None
  else:
    result['matmul_flops'] = matmul_flops('float32', device)
    result['matmul_flops_bf16'] = matmul_flops('bfloat16', device)
  result['matmul_size'] = matmul_size(info['platform'])
  return result


def loop_figures(config, image_shape, num_classes, args, steps: int) -> dict:
  """The real loop's images/s (`time_loop`) against the step's alone
  (`time_step`, augmentation as trained) and their ratio; {'error': why} when
  the loop cannot run (e.g. the config's data is not here)."""
  try:
    loop = time_loop(config, steps)
  except Exception as e:  # pylint: disable=broad-except
    return {'steps': steps, 'error': f'{type(e).__name__}: {str(e).splitlines()[0][:300]}'
                                     if str(e) else type(e).__name__}
  loop['step_img_s'] = time_step(config, image_shape, num_classes, args)
  loop['ratio'] = loop['img_s'] / loop['step_img_s']
  return loop


def run_torch(config, image_shape, num_classes, threads, args, platform: str,
              jax_res: dict) -> dict:
  """The PyTorch twins' figures, on the GPU when JAX runs on one and PyTorch
  has CUDA (`torch_device`)."""
  import torch

  device = torch_device(platform, torch.cuda.is_available())
  variants = {}
  for variant in args.torch_variants:
    try:
      variants[variant] = time_torch(config, image_shape, num_classes, threads,
                                     variant, args, device)
    except Exception as e:  # pylint: disable=broad-except
      if not variant.endswith('compile'):
        raise
      # torch.compile needs a C++ toolchain (and Triton on CUDA) and may fail
      # offline: say why.
      variants[variant] = {'error': f'{type(e).__name__}: {str(e).splitlines()[0][:200]}'
                                    if str(e) else type(e).__name__}
      continue
    if variants[variant]['params'] != jax_res['params']:
      raise AssertionError(
          f'parameter counts differ: JAX {jax_res["params"]:,} vs PyTorch '
          f'{variants[variant]["params"]:,}; the twin is not the same model')
  ok = {k: v for k, v in variants.items() if 'error' not in v}
  best_train = max(ok, key=lambda k: ok[k]['train'])
  best_infer = max(ok, key=lambda k: ok[k]['infer'])
  out = {
      'torch_device': device,
      'torch_device_name': torch.cuda.get_device_name() if device == 'cuda' else 'cpu',
      'torch_peak_bytes': torch.cuda.max_memory_allocated() if device == 'cuda' else None,
      'torch_variants': variants,
      'torch_train_img_s': ok[best_train]['train'], 'torch_train_best': best_train,
      'torch_infer_img_s': ok[best_infer]['infer'], 'torch_infer_best': best_infer,
  }
  out['train_ratio'] = jax_res['train'] / out['torch_train_img_s']
  out['infer_ratio'] = jax_res['infer'] / out['torch_infer_img_s']
  return out


def _best_ratios(r: dict) -> None:
  r['best_train_ratio'] = (r['jax_variants'][r['jax_train_best']]['train']
                           / r['torch_train_img_s'])
  r['best_infer_ratio'] = (r['jax_variants'][r['jax_infer_best']]['infer']
                           / r['torch_infer_img_s'])


def _gib(n) -> str:
  return '-' if n is None else f'{n / 2 ** 30:.2f} GiB'


def format_table(r: dict) -> str:
  train_flops, infer_flops = 3 * r['forward_flops_per_image'], r['forward_flops_per_image']
  platform = r.get('platform', 'cpu')
  on_cpu = platform == 'cpu'
  # Measured peaks: on CPU the float32 matmul for every row (the nominal
  # peak's clock is not the one run); on accelerators each row's own dtype,
  # one device's matmul times the devices the step runs on.
  n = r.get('device_count', r['jax_devices'])
  peaks = {'float32': r['matmul_flops'],
           'bfloat16': r['matmul_flops'] if on_cpu else r.get('matmul_flops_bf16')}
  if not on_cpu:
    peaks = {k: v and v * n for k, v in peaks.items()}

  def row(name, train, infer, dtype):
    peak = peaks[dtype] or math.nan
    def cell(rate, flops):
      if rate is None:
        return f'{"-":>12} {"":>15}'
      gf = rate * flops / 1e9
      return f'{rate:12,.0f} {gf:7.1f} ({100 * gf * 1e9 / peak:4.1f}%)'
    return f'{name:<26} {cell(train, train_flops)} {cell(infer, infer_flops)}'

  where = (f'JAX on {n} CPU device(s)' if on_cpu else
           f'JAX on {n} {platform.upper()} device(s): {r.get("device_kind", "?")}')
  torch_where = (f'PyTorch on {r["torch_device_name"]}' if r.get('torch_device') == 'cuda'
                 else f'PyTorch with {r["torch_threads"]} thread(s)'
                 + ('' if on_cpu or 'torch_device' not in r else ' on the host CPU'))
  lines = [
      f'model {r["model"]}: {r["params"]:,} params, {r["forward_flops_per_image"] / 1e6:.1f} '
      f'MFLOPs/image forward, batch {r["batch_size"]}, input {tuple(r["image_shape"])}',
      f'{where}; {torch_where}; tcmalloc loaded: {r["tcmalloc"]}',
      r['cpu'],
      '',
      f'{"":<26} {"train img/s":>12} {"GFLOP/s (% mm)":>15} {"infer img/s":>12} '
      f'{"GFLOP/s (% mm)":>15}',
  ]
  for name, v in r['jax_variants'].items():
    label = f'jax {name}' + (' (config)' if name == r['jax_variant'] else '')
    lines.append(row(label, v['train'], v['infer'], dtype_of(name)))
  for name, v in r.get('torch_variants', {}).items():
    if 'error' in v:
      lines.append(f'{"torch " + name:<26} failed: {v["error"]}')
    else:
      lines.append(row(f'torch {name}', v['train'], v['infer'], dtype_of(name)))
  if 'train_ratio' in r:
    lines += ['', f'JAX ({r["jax_variant"]}) / best PyTorch: train {r["train_ratio"]:.2f}x '
              f'(vs {r["torch_train_best"]}), inference {r["infer_ratio"]:.2f}x '
              f'(vs {r["torch_infer_best"]})',
              f'best JAX / best PyTorch: train {r["best_train_ratio"]:.2f}x '
              f'({r["jax_train_best"]} vs {r["torch_train_best"]}), inference '
              f'{r["best_infer_ratio"]:.2f}x ({r["jax_infer_best"]} vs '
              f'{r["torch_infer_best"]})']
  loop = r.get('loop')
  if loop and 'error' in loop:
    lines += ['', f'loop: failed: {loop["error"]} (give the config its data, e.g. '
              '--config.data.source=folder --config.data.path=DIR, or --loop_steps=0)']
  elif loop:
    lines += ['', f'loop ({loop["steps"]} steps of train.train_and_evaluate, images/s of its '
              f'metrics.jsonl): {loop["img_s"]:,.0f} img/s; the step alone (augmentation '
              f'on): {loop["step_img_s"]:,.0f} img/s; loop/step {loop["ratio"]:.2f}']
  if not on_cpu:
    lines.append(f'memory: peak {_gib(r.get("jax_peak_bytes"))} on the device for the '
                 f'config\'s step and inference (memory_stats peak_bytes_in_use)'
                 + (f'; PyTorch {_gib(r["torch_peak_bytes"])} (max_memory_allocated)'
                    if r.get('torch_peak_bytes') is not None else ''))
  size = r.get('matmul_size', 2048)
  if on_cpu:
    lines += [f'% mm: of the measured peak, a {size}x{size} fp32 matmul (JAX, 1 device, '
              f'all cores): {peaks["float32"] / 1e9:.0f} GFLOP/s; nominal peak '
              f'{r["peak_flops"] / 1e9:.0f} GFLOP/s = {r["peak_how"]}, at the base '
              f'clock, not the turbo clock the cores run']
  else:
    lines += [f'% mm: of the measured peak of one {r.get("device_kind", "?")}, a '
              f'{size}x{size} jitted jnp.dot: float32 (default precision) '
              f'{r["matmul_flops"] / 1e12:.1f} TFLOP/s, bfloat16 '
              f'{(r.get("matmul_flops_bf16") or math.nan) / 1e12:.1f} TFLOP/s; each row '
              f'against its dtype\'s, times {n} device(s)']
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
