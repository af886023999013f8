#!/usr/bin/env bash
# float32 vs bfloat16 vs mixed_bfloat16 (float32 with bfloat16 convolutions),
# all with oneDNN (the configs' 'auto' on this CPU): training and inference
# img/s of configs/cifar10.py (IsoVolNet) and configs/cifar10_fast_cpu.py
# (FastCNN), JAX only (bench.benchmark --skip_torch, no data loop). One process
# per (config, dtype), two rounds, interleaved (round 2 runs the dtypes in the
# reverse order), so drift on the machine shows as a round-to-round spread
# instead of favouring one dtype. About 8-10 minutes on the 2-core EPYC.
# Run from the repository root with nothing else running:
#   bash results/onednn/mixed/run.sh
# Raw output: results/onednn/mixed/<config>-<dtype>-r<round>.txt, then the
# summary table (summary.txt). A quick check that it runs end to end:
#   OUT=/tmp/mixed STEPS='--steps=2 --warmup=1 --repeats=1' bash results/onednn/mixed/run.sh
# CONFIGS='cifar10_isovolnet_seed' runs only the configs named (the seed's
# IsoVolNet is timed for docs/defaults.md's precision rule: not in the default list).
set -euo pipefail
out=${OUT:-results/onednn/mixed}
read -r -a steps <<< "${STEPS:---steps=20 --warmup=3 --repeats=3}"
mkdir -p "$out"
dtypes=(float32 bfloat16 mixed_bfloat16)
read -r -a configs <<< "${CONFIGS:-cifar10 cifar10_fast_cpu}"
for round in 1 2; do
  order=("${dtypes[@]}")
  [ "$round" = 2 ] && order=(mixed_bfloat16 bfloat16 float32)
  for c in "${configs[@]}"; do
    for d in "${order[@]}"; do
      python -m isovolnet_jax.bench.benchmark --json --config="configs/$c.py" "${steps[@]}" \
        --skip_torch --loop_steps=0 --jax_variants= --config.dtype="$d" \
        > "$out/$c-$d-r$round.txt"
      grep -E '^(model|CPU|jax)' "$out/$c-$d-r$round.txt" | sed "s/^/[$c $d r$round] /"
    done
  done
done
python - "$out" <<'PY' | tee "$out/summary.txt"
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
print('img/s, median of the two rounds (each round: the median of the repeats); '
      'round 1 / round 2 in brackets; x = against float32')
print(f'{"config":<18}{"dtype":<16}{"train img/s":>28}{"x":>7}{"infer img/s":>28}{"x":>7}')
for c in sorted(f.name.split('-')[0] for f in out.glob('*-float32-r1.txt')):
  base = {}
  for d in ('float32', 'bfloat16', 'mixed_bfloat16'):
    runs = []
    for r in (1, 2):
      lines = (out / f'{c}-{d}-r{r}.txt').read_text().splitlines()
      runs.append(json.loads(next(l for l in reversed(lines) if l.startswith('{'))))
    assert all(run['jax_variant'].startswith(d + ':') for run in runs), runs
    cells = []
    for key in ('jax_train_img_s', 'jax_infer_img_s'):
      vals = [run[key] for run in runs]
      med = statistics.median(vals)
      base.setdefault(key, med)
      cells.append(f'{med:>10,.0f} ({vals[0]:,.0f} / {vals[1]:,.0f})'.rjust(28)
                   + f'{med / base[key]:>7.2f}')
    print(f'{c:<18}{d:<16}' + ''.join(cells))
PY
