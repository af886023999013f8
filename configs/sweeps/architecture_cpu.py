r"""IsoVolNet vs its channel-doubling baseline, on a 2-core CPU, at a short budget.

  python -m isovolnet_jax.tools.sweep --config=configs/cifar10_isovolnet_seed.py \
    --sweep=configs/sweeps/architecture_cpu.py --workdir=runs/sweeps/architecture_cpu \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.num_train_steps=120 --config.max_train_time_minutes=2

6 points (2 architectures x 3 seeds); 6 minutes on 2 CPU cores (2026-11-25).

architecture.py's third arm, the standard-conv twin, is left out here: on
this CPU it trains at 4 img/s and infers at 6 img/s (docs/performance.md), so
its final evaluation of 15,000 images alone would take about 40 minutes per
point. Run architecture.py on a GPU or TPU for the three-way comparison.
"""

SEEDS = (0, 1, 2)
ARCHITECTURES = (
    {'model.channel_multiplier': 4},  # IsoVolNet: H*W*C constant.
    {'model.channel_multiplier': 2},  # Channel doubling: the volume halves per block.
)


def get_sweep():
  return [{**a, 'seed': s} for s in SEEDS for a in ARCHITECTURES]
