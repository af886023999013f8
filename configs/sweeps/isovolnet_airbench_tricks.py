r"""airbench's training tricks that cost no step time, on the default IsoVolNet.

  python -m isovolnet_jax.tools.sweep \
    --config=configs/cifar10.py --sweep=configs/sweeps/isovolnet_airbench_tricks.py \
    --workdir=runs/sweeps/isovolnet_airbench_tricks \
    --results=results/airbench/zoo/isovolnet \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.num_epochs=10 \
    --config.label_smoothing=0.1 --config.optimizer.lookahead_every=0 --config.eval_tta=  # the default before 2026-12-03

Label smoothing and lookahead add nothing to a step's cost (lookahead: one
tree update every 5 steps), so equal epochs are equal training time: 10
epochs of the 45,000-image split, as the default's earlier 10-epoch figures.
Lookahead as airbench94's (every 5 steps, from 30% of the run: its 3 of 9.9
epochs), around the default's AdamW; label smoothing 0.2 as airbench's. The
6-view test-time augmentation is not a training change: each arm's
checkpoint is evaluated with it afterwards (`python -m isovolnet_jax.evaluate
--config.eval_tta=airbench6`). Seeds 0, 1, 2, seed-major.
"""

SEEDS = (0, 1, 2)
LOOKAHEAD = {'optimizer.lookahead_every': 5, 'optimizer.lookahead_start_epochs': 3.0}
ARMS = (
    {'name': 'default'},
    {'name': 'label_smoothing', 'label_smoothing': 0.2},
    {'name': 'lookahead', **LOOKAHEAD},
    {'name': 'label_smoothing+lookahead', 'label_smoothing': 0.2, **LOOKAHEAD},
)


def get_sweep():
  return [{**a, 'seed': s} for s in SEEDS for a in ARMS]
