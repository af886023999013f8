r"""A tiny, fast config for tests and smoke runs (seconds on a CPU).

  python -m isovolnet_jax.main --config=configs/smoke.py --workdir=/tmp/smoke \
    --config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg
"""

from isovolnet_jax import config_defaults


def get_config():
  config = config_defaults.get_base_config()
  config.model.update(
      name='isovolnet', stem_features=0, num_blocks=3, convs_per_block=1,
      pool='max', norm='batch', activation='relu', dropout=0.0,
      conv='separable', channel_multiplier=4,
      conv_impl='auto')
  config.optimizer.update(name='adamw', learning_rate=2e-3, weight_decay=5e-2,
                          schedule='onecycle')
  config.data.val_size = 100
  config.num_epochs = 1
  config.num_train_steps = 20
  config.batch_size = 32
  config.eval_batch_size = 200
  config.log_every_steps = 5
  config.eval_every_epochs = 1.0
  config.checkpoint_every_steps = 10
  return config
