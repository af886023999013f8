#!/usr/bin/env bash
# The real training loop against the jitted step alone, on CPU, one run per
# config and data path (split on the devices, the default, and host-fed),
# alone on the machine. From the repository root:
#   ROUND=1 LOOP=200 bash results/loop_step/run.sh   # airbench94: 40 steps
#   ROUND=2 LOOP=400 ONLY="cifar10_fast_cpu cifar10" bash results/loop_step/run.sh
set -euo pipefail
out=results/loop_step
round=${ROUND:-1}
data=(--config.data.source=folder --config.data.path=../shared/data/cifar10_jpeg)
run() {  # config loop_steps steps resident; a finished run is kept
  local name="$1-$4-$round"
  [ -s "$out/$name.txt" ] && return
  python -m isovolnet_jax.bench.benchmark --config="configs/$1.py" --skip_torch \
    --jax_variants= --json --loop_steps="$2" --steps="$3" \
    "${data[@]}" --config.data.device_resident="$4" > "$out/$name.txt" 2> "$out/$name.log"
}
for config in ${ONLY:-cifar10_airbench94 cifar10_fast_cpu cifar10}; do
  for resident in on off; do
    if [ "$config" = cifar10_airbench94 ]; then
      run "$config" 40 10 "$resident"
    else
      run "$config" "${LOOP:-200}" 20 "$resident"
    fi
  done
done
