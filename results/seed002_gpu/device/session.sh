#!/bin/bash
# Runs on the device machine (carry .gpu, see ../README.md), 2026-11-26, second
# GPU session: seed 002's net for its 100 epochs (no probe: its speed is known),
# then seed 003's dense DS net, separable and standard convs, at equal epochs:
# as many as the time left affords both. PART=1: setup, seed 002, the dense
# probes; PART=2 (the next call, on the still-warm machine): the dense runs.
set -u
[ "${PART:-1}" = 1 ] && rm -rf /tmp/run_* /tmp/probe_* /tmp/jaxcache /tmp/site /tmp/cache
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 JAX_COMPILATION_CACHE_DIR=/tmp/jaxcache
T0=$(date +%s); BUDGET=${BUDGET:-560}
el() { echo $(( $(date +%s) - T0 )); }
nvidia-smi -L
if [ ! -d /tmp/cache ]; then
python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD
# clu's SummaryWriter imports TensorFlow, which this image lacks: use clu's PyTorch one.
sed -i 's/^from .tf.summary_writer import SummaryWriter/from .torch_tensorboard_writer import TorchTensorboardWriter as SummaryWriter/' /tmp/site/clu/metric_writers/summary_writer.py
python3 -c "import jax, flax, optax, orbax.checkpoint as o; print('versions', jax.__version__, flax.__version__, optax.__version__, o.__version__, jax.devices())" || exit 4
python3 .gpu/unpack.py .gpu/cifar10 /tmp/cifar10_jpeg /tmp/cache || exit 5
echo "data ready after $(el) s"
fi
export PYTHONPATH=/tmp/site:$PWD
D="--config.data.source=folder --config.data.path=/tmp/cifar10_jpeg --config.data.cache_dir=/tmp/cache --config.data.val_size=0"
save() {  # name: the run's logs, metrics and checkpoint-free workdir under $OUT/name
  mkdir -p $OUT/$1; cp /tmp/run_$1/metrics.jsonl /tmp/run_$1/*.json $OUT/$1/ 2>/dev/null
  cp -r /tmp/run_$1/eval $OUT/$1/ 2>/dev/null; true
}

if [ "${PART:-1}" = 1 ]; then
# 1. Seed 002: 100 epochs, capped so that the dense-DS probes keep their share.
CAP=$(python3 -c "print(($BUDGET - 100 - $(el)) / 60)")
python3 -m isovolnet_jax.main --config=configs/cifar10_dilated_ds.py $D --workdir=/tmp/run_seed002 \
  --config.num_epochs=${E002:-100} --config.log_every_steps=1950 --config.max_train_time_minutes=$CAP \
  > $OUT/seed002.log 2>&1
echo "seed002 rc $? after $(el) s"; grep -E "img/s|test at|Done" $OUT/seed002.log | tail -4
save seed002

# 2. Dense DS net, separable vs standard: probe each (80 steps; fills the
# compilation cache), then both at the epochs that fit the time left.
for conv in separable standard; do
  python3 -m isovolnet_jax.main --config=configs/cifar10_dense_ds.py $D --workdir=/tmp/probe_$conv \
    --config.model.conv=$conv --config.num_train_steps=80 --config.log_every_steps=20 \
    > $OUT/probe_$conv.log 2>&1 || { tail -20 $OUT/probe_$conv.log; exit 6; }
  read _ R < <(python3 .gpu/plan.py /tmp/probe_$conv/metrics.jsonl 1 50000 1)
  echo $R > /tmp/rate_$conv; echo "probe $conv: $R img/s after $(el) s"
done
exit 0
fi
LEFT=$(( BUDGET - $(el) - 70 ))
E=$(python3 -c "print(max(1, int($LEFT / (50000 / $(cat /tmp/rate_separable) + 50000 / $(cat /tmp/rate_standard)))))")
echo "$LEFT s left -> $E epochs each"
for conv in separable standard; do
  W=/tmp/run_dense_$conv
  python3 -m isovolnet_jax.main --config=configs/cifar10_dense_ds.py $D --workdir=$W \
    --config.model.conv=$conv --config.num_epochs=$E --config.log_every_steps=195 \
    > $OUT/dense_$conv.log 2>&1
  echo "dense $conv rc $? after $(el) s"; grep -E "img/s|test at" $OUT/dense_$conv.log | tail -2
  python3 -m isovolnet_jax.evaluate --workdir=$W $D > $OUT/dense_${conv}_eval.log 2>&1
  echo "eval rc $? after $(el) s"; tail -c 400 $OUT/dense_${conv}_eval.log; echo
  save dense_$conv
done
ls -la $OUT
