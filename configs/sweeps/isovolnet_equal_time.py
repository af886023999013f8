r"""Seed 000's question: does keeping H*W*C constant help? Equal training time.

  LD_PRELOAD=libtcmalloc.so.4 python -m isovolnet_jax.tools.sweep \
    --config=configs/cifar10_isovolnet_seed.py --sweep=configs/sweeps/isovolnet_equal_time.py \
    --workdir=runs/sweeps/isovolnet_equal_time --results=results/isovolnet_equal_time \
    --reuse=results/isovolnet_variants \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg

Every arm gets the same training time on this machine's 2 CPU cores: the time
IsoVolNet (the seed's design) takes for 10 epochs of the 45,000-image training
split, 450,000 images / 1,430 img/s = 315 s of training steps. Each arm's
steps = 315 s x its img/s / its batch. The img/s are the bare training step's,
measured alone on the machine with tcmalloc (`python -m isovolnet_jax.bench.benchmark
--skip_torch --json --config=...`, raw output in results/isovolnet_equal_time/speed/,
2026-11-26); evaluation and compilation are not counted, so the budget is the
same whatever else shares the machine when the sweep runs.

| arm | params | batch | train img/s | steps | epochs |
|---|---|---|---|---|---|
| IsoVolNet, the seed's design (configs/cifar10_isovolnet_seed.py) | 2,566,747 | 256 | 1,430 | 1,750 | 10.0 |
| channel doubling widened to equal params (3x3 stem of 61) | 2,587,386 | 256 | 261 | 321 | 1.8 |
| IsoVolNet, 4 blocks (the zoo's small-net size) | 169,819 | 256 | 2,548 | 3,133 | 17.8 |
| FastCNN, its own recipe (configs/cifar10_fast_cpu.py) | 177,314 | 64 | 990 | 4,872 | 6.9 |
| ResNet-20, its own recipe (configs/cifar10_resnet20.py) | 269,722 | 128 | 343 | 844 | 2.4 |

Each arm keeps its config's recipe, its schedule spread over its steps. All
train on the same 45,000 images and are evaluated on the same 5,000-image
validation split (every epoch: the learning curves) and the 10,000 test
images, without test-time flips (FastCNN's config turns them on; off here so
every arm is evaluated alike). Seeds 0, 1, 2, seed-major: a sweep stopped
early has whole comparisons. Then the equal-epoch point for the doubling net
(10 epochs, 5.5x IsoVolNet's time) and the budget x3 points (seed 0) that show
whether the ranking holds with more training.

Last, the same question at the default's size and knobs (added 2026-11-26,
after the variant search, configs/sweeps/isovolnet_variants.py, made 4 blocks
with average pooling and swish the default): the default IsoVolNet against a
4-block channel-doubling net with the same knobs and its stem widened to about
the same parameters, 3 seeds each at the same 315 s. The default's points are
the variant sweep's, taken with --reuse=results/isovolnet_variants (in the
command above). The doubling net's steps are scaled like the variant's:
315 s at its img/s, against the default's img/s measured right after it
(speed/dbl4_s30_avg_swish.txt, speed/iso4_avg_swish_rerun_2026-11-26.txt,
alone), times the default's 2,819 steps: 2,819 x 534 / 2,112 = 713.

| arm | params | MFLOPs / image | train img/s | steps | epochs |
|---|---|---|---|---|---|
| IsoVolNet, 4 blocks, avg pooling, swish (configs/cifar10.py) | 169,819 | 6.5 | 2,112 | 2,819 | 16.0 |
| channel doubling, 4 blocks, stem 30, avg pooling, swish | 165,430 | 17.5 | 534 | 713 | 4.1 |
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
     'eval_flip': False, 'num_train_steps': 4872},
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
