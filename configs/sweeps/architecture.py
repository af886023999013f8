r"""Seed 003, architectures: IsoVolNet vs its channel-doubling baseline vs its standard-conv twin.

  python -m isovolnet_jax.tools.sweep --config=configs/cifar10_isovolnet_seed.py \
    --sweep=configs/sweeps/architecture.py --workdir=runs/sweeps/architecture \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg \
    --config.max_train_time_minutes=5

9 points (3 architectures x 3 seeds): at most 9 x 5 minutes of training, plus evaluation.

  model.channel_multiplier=4, conv=separable  IsoVolNet (configs/cifar10_isovolnet_seed.py, 2.57M)
  model.channel_multiplier=2, conv=separable  channel doubling, volume halves per block
                                              (configs/cifar10_isovolnet_doubling.py)
  model.channel_multiplier=4, conv=standard   standard 3x3 convs, same widths (22.7M
                                              params; configs/cifar10_isovolnet_standard.py)

The equal time budget is the comparison seed 003 asks for (accuracy against
computational cost): the standard-conv twin costs more per step and so trains
fewer epochs in the same 5 minutes. results.md lists each point's parameters
and steps.

Budget: every point trains for at most 5 minutes of wall time
(--config.max_train_time_minutes=5, equal compute on one machine) and stops
cleanly there with a checkpoint and a final val/test evaluation. Where 100
epochs do not fit in 5 minutes the onecycle schedule is cut where it stands;
for schedules that finish inside the budget add --config.num_epochs=N, with N
the epochs the slowest point trains in 5 minutes (images_per_sec is in each
point's metrics.jsonl).

Seeds 0, 1, 2 of every value, seed-major: a sweep stopped early has whole
comparisons. Rerunning the command skips finished points and resumes the
interrupted one; results: WORKDIR/results.{md,csv,png}.
"""

SEEDS = (0, 1, 2)
ARCHITECTURES = (
    {'model.channel_multiplier': 4, 'model.conv': 'separable'},
    {'model.channel_multiplier': 2, 'model.conv': 'separable'},
    {'model.channel_multiplier': 4, 'model.conv': 'standard'},
)


def get_sweep():
  return [{**a, 'seed': s} for s in SEEDS for a in ARCHITECTURES]
