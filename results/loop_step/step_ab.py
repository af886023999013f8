"""The device-resident train step against the plain one on CPU, interleaved (ms a step).

  python results/loop_step/step_ab.py CONFIG   # e.g. cifar10; one CPU device
"""
import sys, time, numpy as np, jax, jax.numpy as jnp
from isovolnet_jax import config_defaults, train, sharding, data
from isovolnet_jax.data import resident
cfg = config_defaults.load_config_file(f'configs/{sys.argv[1]}.py')
b = train.build(cfg, 10, (32, 32, 3), 45000)
mesh = b.mesh
imgs = np.random.default_rng(0).integers(0, 256, (45000, 32, 32, 3), dtype=np.uint8)
lab = np.random.default_rng(1).integers(0, 10, 45000).astype(np.int32)
split = resident.put(mesh, imgs, lab, 0, cfg.augment.alternating_flip)
rows = resident.epoch_rows(mesh, 0, 0, 45000, cfg.batch_size)
plain = train.make_train_step(cfg, 10, mesh)
res = train.make_resident_train_step(cfg, 10, mesh)
x, y = sharding.to_global(mesh, imgs[:cfg.batch_size], lab[:cfg.batch_size])
state = b.state
def run(kind, n):
  global state
  t = time.perf_counter()
  for _ in range(n):
    if kind == 'plain':
      state, m = plain(state, x, y, b.step_key)
    else:
      state, m = res(state, split, rows, b.step_key)
    jax.block_until_ready(m)
  return (time.perf_counter() - t) / n * 1000
run('plain', 3); run('res', 3)
out = {'plain': [], 'res': []}
for _ in range(4):
  for k in ('plain', 'res'):
    out[k].append(run(k, 20))
print(sys.argv[1], {k: [round(v, 1) for v in vs] for k, vs in out.items()},
      'devices', len(jax.devices()))
