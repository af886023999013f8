"""Reads the probe's metrics.jsonl, prints the epochs that fit the time left."""
import json, sys, math
metrics, seconds_left, n_train, emax = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ips = [json.loads(l) for l in open(metrics)]
ips = [r['images_per_sec'] for r in ips if 'images_per_sec' in r]
rate = sorted(ips[1:])[len(ips[1:]) // 2] if len(ips) > 1 else ips[-1]  # First window holds compilation.
fit = int(seconds_left * rate / n_train)
print(max(1, min(emax, fit)), int(rate))
