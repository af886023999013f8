r"""airbench94's tricks, each turned off alone, at a reduced CPU budget.

  python -m isovolnet_jax.tools.sweep \
    --config=configs/cifar10_airbench94.py --sweep=configs/sweeps/airbench_ablation.py \
    --workdir=runs/sweeps/airbench_ablation --results=results/airbench/ablation \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.dtype=bfloat16 --config.num_train_steps=96 \
    --config.optimizer.lookahead_start_epochs=0.6 \
    --config.optimizer.whiten_bias_epochs=0.6 --config.periodic_eval=val

96 steps of 1,024 = 2 epochs (airbench94: 476 = 9.9); lookahead and the
whitening bias's freeze keep their place in the schedule (3 of 9.9 epochs ~
0.3 of the run); no evaluation until the end (the 6-view test accuracy). The
test-time augmentation is not a training trick: its arm is the baseline's
runs evaluated without it (`python -m isovolnet_jax.evaluate
--config.eval_tta=none`), not another training. Seeds 0, 1, 2, seed-major.
"""

SEEDS = (0, 1, 2)
ARMS = (
    {'name': 'airbench94'},
    # The 2x2 stem trains from the default init like any conv, bias included.
    {'name': 'no_whitening', 'whiten_images': 0, 'optimizer.freeze_whiten_kernel': False,
     'optimizer.whiten_bias_epochs': -1.0},
    {'name': 'no_dirac_init', 'model.dirac_init': False},
    {'name': 'no_lookahead', 'optimizer.lookahead_every': 0},
    {'name': 'no_label_smoothing', 'label_smoothing': 0.0},
    # Random flips (a fair coin per image and step) in place of alternating ones.
    {'name': 'random_flip', 'augment.alternating_flip': False, 'augment.flip': True},
    {'name': 'no_translate', 'augment.translate': 0},
    {'name': 'bn_bias_at_1x_rate', 'optimizer.bn_bias_lr_scale': 1.0},
)


def get_sweep():
  # Each point names its config file: the knobs are airbench94's, whatever --config says.
  return [{'config': 'configs/cifar10_airbench94.py', **a, 'seed': s}
          for s in SEEDS for a in ARMS]
