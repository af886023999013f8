#!/bin/bash
# Runs on the device machine: CONFIG (default seed 002's net) on the JPEG copy of
# CIFAR-10, as many epochs as fit the call (at most EMAX). As run on 2026-11-26,
# except CONFIG and the rm below, added after a warm machine's old workdirs made
# a second call resume a finished run instead of training.
set -u
rm -rf /tmp/probe /tmp/run
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
T0=$(date +%s); BUDGET=${BUDGET:-560}
nvidia-smi -L
python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD${PYEXTRA:-}
# clu's SummaryWriter imports TensorFlow, which this image lacks: use clu's PyTorch one.
sed -i 's/^from .tf.summary_writer import SummaryWriter/from .torch_tensorboard_writer import TorchTensorboardWriter as SummaryWriter/' /tmp/site/clu/metric_writers/summary_writer.py
python3 -c "import jax, flax, optax, orbax.checkpoint as o, chex; print('versions', jax.__version__, flax.__version__, optax.__version__, o.__version__, jax.devices())" || exit 4
python3 .gpu/unpack.py .gpu/cifar10 /tmp/cifar10_jpeg /tmp/cache || exit 5
echo "data ready after $(( $(date +%s) - T0 )) s"
C="--config=${CONFIG:-configs/cifar10_dilated_ds.py} --config.data.source=folder --config.data.path=/tmp/cifar10_jpeg --config.data.cache_dir=/tmp/cache --config.data.val_size=0 ${EXTRA:-}"
python3 -m isovolnet_jax.main $C --workdir=/tmp/probe --config.num_train_steps=80 --config.log_every_steps=20 > $OUT/probe.log 2>&1 || { tail -30 $OUT/probe.log; exit 6; }
grep -E "img/s|accuracy" $OUT/probe.log | tail -6
LEFT=$(( BUDGET - ($(date +%s) - T0) - 45 ))
read E RATE < <(python3 .gpu/plan.py /tmp/probe/metrics.jsonl $LEFT 50000 ${EMAX:-100})
echo "probe: $RATE img/s; $LEFT s left -> $E epochs"
python3 -m isovolnet_jax.main $C --workdir=/tmp/run --config.num_epochs=$E --config.log_every_steps=195 \
  --config.max_train_time_minutes=$(python3 -c "print(($LEFT - 20) / 60)") > $OUT/run.log 2>&1
echo "run rc $? after $(( $(date +%s) - T0 )) s"
grep -E "img/s" $OUT/run.log | tail -3; grep -iE "test|final|error" $OUT/run.log | tail -8
cp /tmp/run/metrics.jsonl $OUT/ 2>/dev/null; cp /tmp/run/*.json $OUT/ 2>/dev/null
tar czf $OUT/run_workdir.tgz -C /tmp run --exclude='run/tensorboard*' 2>/dev/null; ls -la $OUT
