r"""CIFAR-10 to 85% on 2 CPU cores in under 10 minutes: FastCNN, 177k params.

  LD_PRELOAD=libtcmalloc.so.4 python -m isovolnet_jax.main \
    --config=configs/cifar10_fast_cpu.py --workdir=runs/fast_cpu \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg

(`apt install libgoogle-perftools4` gives libtcmalloc.so.4; without it the
run is ~15% slower.) README, "Fast on CPU", has the measured minutes and
accuracies over seeds and the command that re-measures them.
"""

from isovolnet_jax import config_defaults


def get_config():
  config = config_defaults.get_base_config()
  # The issue-8 reference net: plain 3x3 convs (XLA's CPU depthwise convs are
  # slow), 177,314 params.
  config.model.update(name='fast_cnn', widths=(24, 32, 32, 64, 64, 80, 80),
                      pool_after=(1, 3, 5), norm='batch', activation='relu')
  # All 50,000 training images: no held-out validation split to evaluate
  # during the run; the test accuracy is reported at the end.
  config.data.val_size = 0
  # Batch 128: on 2 CPU devices it trains at ~790 img/s against ~740 for 256
  # (smaller activations stay in cache), and takes more steps per epoch.
  config.batch_size = 128
  config.num_epochs = 8
  # Nesterov SGD with a one-cycle schedule (25% warmup, cosine decay to 0).
  config.optimizer.update(name='sgd', learning_rate=0.2, momentum=0.9, nesterov=True,
                          weight_decay=5e-4, schedule='onecycle', pct_start=0.25)
  config.label_smoothing = 0.2      # airbench's value.
  config.eval_flip = True           # Mirror test-time augmentation.
  config.log_every_steps = 100
  config.eval_every_epochs = 1.0    # No validation split: nothing to evaluate mid-run.
  config.checkpoint_every_steps = 1000
  return config
