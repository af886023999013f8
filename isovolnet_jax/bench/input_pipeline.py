r"""Does the streaming input path cost CIFAR-10 speed? memory vs stream.

  python -m isovolnet_jax.bench.input_pipeline --data_path=../shared/data/cifar10_jpeg \
    [--steps=40] [--batch_size=256] [--cpu_devices=-1]

(a) memory (data.pipeline='memory', the CIFAR default): uint8 arrays in RAM
    (decoded once, then read from the .npz cache), a host-side gather per
    step, random crop + flip inside the jitted train step;
(b) stream (data.pipeline='stream'): tf.data reads each JPEG, decodes it,
    random-resized crop + flip on host threads, batches, and the batches are
    put on the devices 2 steps ahead; the step's own augmentation is off.
Both train configs/cifar10_isovolnet_seed.py's model (docs/performance.md's figures)
through `train.make_train_step`, the step training runs. Prints the time to
the first batch, then images/s of the input alone (no training) and of
training, after 5 warm-up steps.

--grain (needs `pip install grain`): also times, input alone, the same
read + decode + random-resized crop + flip written for Grain (PIL and NumPy
in Python, as a Grain map runs), in threads and in 2 worker processes: the
measurement behind choosing tf.data for the stream path.
"""

import os
import time
from pathlib import Path

from isovolnet_jax import cli

if __name__ == '__main__':
  cli.use_tcmalloc()  # Before JAX starts.

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import flags

from isovolnet_jax import config_defaults
from isovolnet_jax import cpu_devices

FLAGS = flags.FLAGS


def define_flags():
  cli.define_flags(config=False, devices=True)
  flags.DEFINE_string('data_path', '../shared/data/cifar10_jpeg', 'Image folder.')
  flags.DEFINE_integer('steps', 40, 'Timed steps per path (after 5 warm-up steps).')
  flags.DEFINE_integer('batch_size', 256, 'Global batch size.')
  flags.DEFINE_bool('grain', False, 'Also time a Grain version of the stream input.')


CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'cifar10_isovolnet_seed.py'


def cifar10_config(pipeline):
  overrides = {'data.source': 'folder', 'data.path': FLAGS.data_path,
               'data.val_size': 0, 'data.pipeline': pipeline,
               'batch_size': FLAGS.batch_size}
  if pipeline == 'stream':
    overrides['data.image_size'] = 32
  return config_defaults.apply_overrides(config_defaults.load_config_file(CONFIG), overrides)


def training(config, dataset, mesh):
  """Training's state and step for `dataset` (`train.build` with its class
  count, image shape and training-split size): (`train.Built`, step)."""
  from isovolnet_jax import train  # pylint: disable=import-outside-toplevel
  built = train.build(config, dataset.num_classes, dataset.image_shape,
                      dataset.num_examples('train'), mesh)
  return built, train.make_train_step(config, dataset.num_classes, mesh)


def rate(it, steps):
  start = time.perf_counter()
  for _ in range(steps):
    x = next(it)
  _ = [a.block_until_ready() if hasattr(a, 'block_until_ready') else a for a in x[1:]]
  return steps * FLAGS.batch_size / (time.perf_counter() - start)


def grain_rates(records, size=32):
  """Images/s of Grain pipelines doing the stream path's host work."""
  import io  # pylint: disable=import-outside-toplevel
  import grain  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel

  def load(i, rng):
    with open(records.paths[i], 'rb') as f:
      image = Image.open(io.BytesIO(f.read())).convert('RGB')
    w, h = image.size
    for _ in range(10):  # Inception crop: area 8-100%, aspect 3/4-4/3.
      area = rng.uniform(0.08, 1.0) * w * h
      aspect = np.exp(rng.uniform(np.log(0.75), np.log(4 / 3)))
      cw, ch = round(np.sqrt(area * aspect)), round(np.sqrt(area / aspect))
      if 0 < cw <= w and 0 < ch <= h:
        break
    else:
      cw, ch = w, h
    x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    image = image.resize((size, size), Image.BILINEAR, box=(x, y, x + cw, y + ch))
    if rng.random() < 0.5:
      image = image.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(image), records.labels[i]

  base = (grain.MapDataset.range(len(records)).shuffle(seed=0).random_map(load, seed=0)
          .batch(FLAGS.batch_size, drop_remainder=True))
  out = {}
  for name, ds in (('grain, 2 threads', base.to_iter_dataset(grain.ReadOptions(num_threads=2))),
                   ('grain, 2 processes', base.to_iter_dataset().mp_prefetch(
                       grain.MultiprocessingOptions(num_workers=2)))):
    it = iter(ds)
    for _ in range(3):
      next(it)
    out[name] = rate(((None, *b) for b in it), FLAGS.steps)
  return out


def main(argv):
  del argv
  cpu_devices.configure(FLAGS.cpu_devices, FLAGS.batch_size)  # Before JAX starts.
  import jax  # pylint: disable=import-outside-toplevel
  from isovolnet_jax import data as data_lib, sharding  # pylint: disable=import-outside-toplevel
  mesh = sharding.make_mesh(FLAGS.batch_size)
  shard = sharding.DataShard(mesh)
  print(f'{jax.device_count()} devices, batch {FLAGS.batch_size}, {FLAGS.steps} timed steps')
  print(f'{"path":8s} {"first batch (s)":>16s} {"input img/s":>12s} {"train img/s":>12s}')
  results = {}
  for pipeline in ('memory', 'stream'):
    config = cifar10_config(pipeline)

    def batches(config=config):
      start = time.perf_counter()
      data = data_lib.dataset(config)
      it = data_lib.prefetch(((s, *shard.to_global(x, y)) for s, x, y in data.train_batches(
          seed=0, batch_size=config.batch_size, start_step=0)), data.device_prefetch)
      next(it)
      return data, it, time.perf_counter() - start

    data, it, first = batches()
    input_rate = rate(it, FLAGS.steps)
    built, step = training(config, data, mesh)
    _, it, _ = batches()

    def train_steps(state=built.state, it=it, step=step, key=built.step_key):
      while True:
        _, x, y = next(it)
        state, m = step(state, x, y, key)
        jax.block_until_ready(m)  # As train.py with several CPU devices.
        yield None, m['loss']
    steps = train_steps()
    for _ in range(5):  # Compile and warm up.
      next(steps)
    results[pipeline] = rate(steps, FLAGS.steps)
    print(f'{pipeline:8s} {first:16.1f} {input_rate:12,.0f} {results[pipeline]:12,.0f}',
          flush=True)
  print(f'stream / memory (training) = {results["stream"] / results["memory"]:.2f}')
  if FLAGS.grain:  # Host work only (no transfer to the devices), all three.
    host = data.train_batches(seed=0, batch_size=FLAGS.batch_size, start_step=0)
    for _ in range(3):
      next(host)
    rates = {'tf.data (stream)': rate(host, FLAGS.steps), **grain_rates(data.splits['train'])}
    for name, r in rates.items():
      print(f'{name:20s} host img/s {r:8,.0f}')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
