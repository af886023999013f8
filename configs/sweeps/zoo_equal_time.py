r"""The rest of the zoo at seed 000's equal training time, for the zoo's Pareto plot.

  python -m isovolnet_jax.tools.sweep \
    --config=configs/cifar10.py --sweep=configs/sweeps/zoo_equal_time.py \
    --workdir=runs/sweeps/zoo_equal_time --results=results/zoo_equal_time \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg

The same budget as configs/sweeps/isovolnet_equal_time.py (whose arms are the
zoo's other CPU points): 315 s of training steps on this machine's 2 CPU
cores, steps = 315 s x the bare training step's img/s / batch, img/s measured
alone with tcmalloc (`python -m isovolnet_jax.bench.benchmark --skip_torch
--json --config=...`, raw output in results/zoo/speed/, 2026-11-26):

| model | params | batch | train img/s | steps | epochs |
|---|---|---|---|---|---|
| SimpleCNN (configs/cifar10_simple_cnn.py) | 405,898 | 256 | 616 | 758 | 4.3 |
| MobileNetV2 (configs/cifar10_mobilenet_v2.py) | 2,236,682 | 256 | 72 | 89 | 0.5 |

Left out: the dilated (seed 002) and dense (seed 003) DS nets train at 10 and
45 img/s here (12 and 55 steps in the budget), and IsoVolNet's standard-conv
twin at 4 img/s; their points come from the GPU runs (results/seed002_gpu,
results/dense_ds_gpu). Each model keeps its config's recipe, its schedule
spread over its steps; 45,000 training images, the 5,000-image validation
split, the 10,000 test images. Seeds 0, 1, 2, seed-major.
"""

SEEDS = (0, 1, 2)
ARMS = (  # Named by their config (folders: simple_cnn,seed=0, ...).
    {'name': 'simple_cnn', 'config': 'configs/cifar10_simple_cnn.py', 'num_train_steps': 758},
    {'name': 'mobilenet_v2', 'config': 'configs/cifar10_mobilenet_v2.py',
     'num_train_steps': 89},
)


def get_sweep():
  return [{**a, 'seed': s} for s in SEEDS for a in ARMS]
