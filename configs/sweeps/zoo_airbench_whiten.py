r"""airbench's whitening stem on IsoVolNet and FastCNN, at seed 000's equal training time.

  python -m isovolnet_jax.tools.sweep \
    --config=configs/cifar10.py --sweep=configs/sweeps/zoo_airbench_whiten.py \
    --workdir=runs/sweeps/zoo_airbench_whiten --results=results/airbench/zoo/whiten \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg

The last of airbench's tricks the zoo tries, and the one that costs step
time: the 2x2 whitening conv (3 -> 24, kernel from the patch covariance of
5,000 training images, frozen; bias trained for the first 30% of the run, as
airbench's 3 of 9.9 epochs), then GELU (model.whiten_stem). Each arm is
zoo_airbench_equal_time.py's tricks arm of the same net (label smoothing 0.2,
lookahead from 30% of the run, 6-view TTA) plus the stem, trained for the
same 315 s of training steps: its steps are that arm's times the ratio of the
two configs' bare-step img/s (mean of two rounds' ratios), measured alone one
after the other, twice (ratios, as the machine's speed drifts between runs).
The img/s, ratios and steps: results/airbench/zoo/README.md.

IsoVolNet keeps H*W*C constant from its first block's input, which the stem
makes 32x32x24, 8 times the image's volume: with the default 4 blocks the last
pointwise conv alone would be 1536 -> 6144 (9.4M parameters), so the stem
comes with 3 blocks (32x32x24 -> 4x4x1536) or 2 (-> 8x8x384). IsoVolNet's
AdamW freezes the whitening kernel and bias as SGD does (optim.py,
_with_whitening_freezes). The references are zoo_airbench_equal_time.py's
isovolnet_tricks and fast_cnn_tricks arms (results/airbench/zoo/equal_time/).
Seeds 0, 1, 2, seed-major.
"""

SEEDS = (0, 1, 2)
TRAIN_IMAGES = 45_000
ISO_STEPS, FAST_STEPS = 2819, 4872  # zoo_airbench_equal_time.py's.
# Steps at equal time: the reference's steps x the img/s ratio (docstring).
ISO_W3_STEPS, ISO_W2_STEPS, FAST_W_STEPS = 424, 758, 4085


def _at_30_percent(steps, batch):
  # lookahead_start_epochs and whiten_bias_epochs are in epochs of the training split.
  return round(0.3 * steps * batch / TRAIN_IMAGES, 2)


def _whitened(steps, batch):
  return {'num_train_steps': steps, 'model.whiten_stem': True, 'whiten_images': 5000,
          'optimizer.freeze_whiten_kernel': True,
          'optimizer.whiten_bias_epochs': _at_30_percent(steps, batch),
          'optimizer.lookahead_every': 5,
          'optimizer.lookahead_start_epochs': _at_30_percent(steps, batch),
          'label_smoothing': 0.2, 'eval_tta': 'airbench6'}


FAST = {'config': 'configs/cifar10_fast_cpu.py', 'data.val_size': 5000, 'eval_tta': ''}
ARMS = (
    {'name': 'isovolnet_whiten3', 'model.num_blocks': 3, **_whitened(ISO_W3_STEPS, 256)},
    {'name': 'isovolnet_whiten2', 'model.num_blocks': 2, **_whitened(ISO_W2_STEPS, 256)},
    {'name': 'fast_cnn_whiten', **FAST, **_whitened(FAST_W_STEPS, 64)},
)


def get_sweep():
  return [{**a, 'seed': s} for s in SEEDS for a in ARMS]
