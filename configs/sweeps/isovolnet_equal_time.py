r"""Seed 000's question: does keeping H*W*C constant help? Equal training time.

  LD_PRELOAD=libtcmalloc.so.4 python -m isovolnet_jax.tools.sweep \
    --config=configs/cifar10_isovolnet_seed.py --sweep=configs/sweeps/isovolnet_equal_time.py \
    --workdir=runs/sweeps/isovolnet_equal_time --results=results/isovolnet_equal_time \
    --reuse=results/isovolnet_variants \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg

Every arm gets the same training time on this machine's 2 CPU cores: the time
IsoVolNet (the seed's design) takes for 10 epochs of the 45,000-image training
split. Each arm's steps = that time x its bare training step's img/s / its
batch (`python -m isovolnet_jax.bench.benchmark --skip_torch --json
--config=...`, measured alone with tcmalloc); evaluation and compilation are
not counted. Each arm keeps its config's recipe, its schedule spread over its
steps, and all are evaluated alike, without test-time flips. Seeds 0, 1, 2,
seed-major; then the equal-epoch point for the doubling net, the budget x3
points (seed 0), and the same question at the default's size and knobs (4
blocks, average pooling, swish; the default's points reused from
isovolnet_variants).

The measured img/s, the steps computed from them and the results:
results/isovolnet_equal_time/README.md.
"""

SEEDS = (0, 1, 2)
# Each arm is named (its folder: e.g. iso4,seed=0; x3: three times the budget),
# as its steps are computed from the budget and say little.
ISO5 = {'name': 'iso5', 'num_train_steps': 1750}
DOUBLING = {'model.channel_multiplier': 2, 'model.stem_features': 61}
ARMS = (
    ISO5,
    {'name': 'doubling_s61', **DOUBLING, 'num_train_steps': 321},
    {'name': 'iso4', 'model.num_blocks': 4, 'num_train_steps': 3133},
    {'name': 'fast_cnn', 'config': 'configs/cifar10_fast_cpu.py', 'data.val_size': 5000,
     'eval_tta': '', 'num_train_steps': 4872},
    {'name': 'resnet20', 'config': 'configs/cifar10_resnet20.py', 'num_train_steps': 844},
)


def get_sweep():
  points = [{**a, 'seed': s} for s in SEEDS for a in ARMS]
  # Equal epochs (10) at equal parameters: the doubling net's 5.5x longer run.
  points.append({'name': 'doubling_s61_10ep', **DOUBLING, 'num_train_steps': 1750,
                 'seed': 0})
  # Three times the budget, seed 0: does the ranking change with more training?
  points += [{**a, 'name': f"{a['name']}_x3", 'num_train_steps': 3 * a['num_train_steps'],
              'seed': 0} for a in ARMS]
  # The same question at the default's size and knobs (4 blocks, avg, swish).
  knobs = {'model.num_blocks': 4, 'model.pool': 'avg', 'model.activation': 'swish'}
  small = ({'name': 'iso4_avg_swish', **knobs, 'num_train_steps': 2819},
           {'name': 'dbl4_s30_avg_swish', **knobs, 'model.channel_multiplier': 2,
            'model.stem_features': 30, 'num_train_steps': 713})
  points += [{**a, 'seed': s} for s in SEEDS for a in small]
  return points
