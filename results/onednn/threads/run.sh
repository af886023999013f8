#!/usr/bin/env bash
# oneDNN thread policies (ISOVOLNET_ONEDNN_THREADS=fixed|budget), A/B on the
# same build: bench.benchmark's training step and inference, float32 and
# bfloat16 with oneDNN, for two configs, under 1 CPU device (fixed: all the
# physical cores per call) and 2 CPU devices (fixed: cores/2 per call), the
# two policies interleaved, two rounds. Run from the repository root, with the
# extension built and nothing else running on the machine:
#   bash results/onednn/threads/run.sh
# STEPS overrides the benchmark's step counts (e.g. STEPS='--steps=2
# --warmup=1 --repeats=1' for a quick end-to-end try whose figures mean
# nothing). Raw output beside this script: CONFIG-dDEVICES-POLICY-ROUND.txt
# (the benchmark's stdout, JSON on its last line), run.log (stderr), and
# summary.txt (one line per run, from the JSON); OUT=DIR writes them there,
# ROUNDS=N runs N rounds instead of 2.
set -euo pipefail
out=${OUT:-$(pwd)/results/onednn/threads}
steps=(${STEPS:---steps=20 --warmup=3 --repeats=3})
: > "$out/run.log"
start=$SECONDS
for round in $(seq "${ROUNDS:-2}"); do
  for config in cifar10 cifar10_fast_cpu; do
    for devices in 1 2; do
      for policy in fixed budget; do
        name=$config-d$devices-$policy-$round
        echo "== $name ($((SECONDS - start)) s)" | tee -a "$out/run.log"
        ISOVOLNET_ONEDNN_THREADS=$policy python -m isovolnet_jax.bench.benchmark \
          --config="configs/$config.py" --cpu_devices=$devices --skip_torch --json \
          --loop_steps=0 --jax_variants=float32:onednn,bfloat16:onednn "${steps[@]}" \
          > "$out/$name.txt" 2>> "$out/run.log"
      done
    done
  done
done
echo "total $((SECONDS - start)) s" | tee -a "$out/run.log"
python - "$out" <<'PY' | tee "$out/summary.txt"
import glob, json, os, sys
out = sys.argv[1]
print(f'{"run":36s} {"dev":>3s} {"variant":18s} {"train img/s":>12s} {"infer img/s":>12s}')
for path in sorted(glob.glob(os.path.join(out, '*-d*-*-*.txt'))):
  name = os.path.basename(path)[:-4]
  lines = [l for l in open(path).read().splitlines() if l.startswith('{')]
  if not lines:
    print(f'{name:36s} no JSON (see run.log)')
    continue
  r = json.loads(lines[-1])
  for variant, v in r['jax_variants'].items():
    print(f'{name:36s} {r["jax_devices"]:3d} {variant:18s} {v["train"]:12,.0f} '
          f'{v["infer"]:12,.0f}')
PY
