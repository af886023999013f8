r"""Rewrites results/ once into the form that travels between machines.

  python -m isovolnet_jax.tools.rewrite_results [--dry_run]  # from the repository root

1. Every result.json and config.json under results/ names its data folder as
   sweep.data_ref does (relative to the repository when the folder is in it or
   beside it: `/work/shared/data/cifar10_jpeg` -> `../shared/data/cifar10_jpeg`),
   so that --reuse and the sweep's skip match on any checkout, and no cache
   folder (it does not change a result). The GPU runs
   read an unpacked copy of that folder on the device (/tmp/cifar10_jpeg,
   results/seed002_gpu/device/): it is named as the folder it was copied from.
2. Each sweep's point folders (results/<sweep>/ of configs/sweeps/<sweep>.py)
   are renamed from the old names (every override, computed steps included,
   cut with a hash past 120 characters) to sweep.point_names' (`git mv`); their
   result.json's name, overrides and reused_from follow, and the sweep's
   results.csv, results_grouped.csv and results.md are rewritten (not the
   plots: their content is unchanged).

Idempotent: a second run changes nothing. Run by hand, once; kept as the
record of how the committed results were changed.
"""

import argparse
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

from isovolnet_jax.tools import sweep
from isovolnet_jax.tools import sweep_report

ROOT = sweep.REPO_ROOT

# Folders the device runs read, and the repository's name of what they held.
DEVICE_COPIES = {'/tmp/cifar10_jpeg': '../shared/data/cifar10_jpeg'}


def old_point_name(overrides: dict) -> str:
  """sweep.point_name as it was: every key, sorted; hashed past 120 characters."""
  if not overrides:
    return 'base'
  name = ','.join(f'{k}={re.sub(r"[^A-Za-z0-9._+-]", "_", sweep_report.format_value(v))}'
                  for k, v in sorted(overrides.items()))
  if len(name) > 120:
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    name = f'{name[:109]}-{digest}'
  return name


def portable(config: dict) -> dict:
  data = config.get('data', {})
  if data.get('path') in DEVICE_COPIES:
    data['path'] = DEVICE_COPIES[data['path']]
  return sweep.portable_config(config, ROOT)


def renames() -> dict[str, dict[str, tuple[str, dict]]]:
  """{sweep: {old folder name: (new name, point)}} for every sweep with results."""
  out = {}
  for sweep_file in sorted((ROOT / 'configs' / 'sweeps').glob('*.py')):
    if not (ROOT / 'results' / sweep_file.stem).is_dir():
      continue
    points = sweep.load_sweep(sweep_file)
    out[sweep_file.stem] = {
        old_point_name({k: v for k, v in p.items() if k != sweep_report.LABEL}): (new, p)
        for p, new in zip(points, sweep.point_names(points))}
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--dry_run', action='store_true', help='Say what would change.')
  dry = parser.parse_args().dry_run
  results = ROOT / 'results'
  table = renames()
  changed = 0
  for name, moves in table.items():  # 2: rename the folders.
    for old, (new, _) in moves.items():
      if old != new and (results / name / old).is_dir():
        if (results / name / new).exists():
          raise SystemExit(f'error: both {name}/{old} and {name}/{new} exist')
        print(f'git mv results/{name}/{old} -> {new}')
        changed += 1
        if not dry:
          subprocess.run(['git', 'mv', str(results / name / old), str(results / name / new)],
                         check=True, cwd=ROOT)
  if dry:
    print(f'{changed} folders would be renamed')
    return
  new_names = {(s, old): new for s, moves in table.items() for old, (new, _) in moves.items()}
  points = {(s, new): p for s, moves in table.items() for new, p in moves.values()}
  for path in sorted(results.rglob('*.json')):  # 1, and 2's fields.
    if path.name not in (sweep.RESULT, 'config.json'):
      continue
    text = path.read_text()
    record = json.loads(text)
    if path.name == 'config.json':
      record = portable(record)
    elif 'config' in record:
      record['config'] = portable(record['config'])
      key = (path.parent.parent.name, path.parent.name)
      if key in points:
        record.update(name=key[1], overrides=points[key])
      if record.get('reused_from'):
        s, old = record['reused_from'].split('/', 1)
        record['reused_from'] = f'{s}/{new_names.get((s, old), old)}'
    new_text = json.dumps(record, indent=2) + ('\n' if text.endswith('\n') else '')
    if new_text != text:
      path.write_text(new_text)
      changed += 1
  for name, moves in table.items():  # 2: the tables, in the sweep file's order.
    rows = []
    for new, _ in moves.values():
      result = results / name / new / sweep.RESULT
      if result.exists():
        row = json.loads(result.read_text())
        row.pop('config', None)
        rows.append(row)
    sweep_report.write_tables(results / name, rows)
  stray = [p for p in results.rglob(sweep.RESULT) if '"/' in p.read_text().replace('"//', '')]
  print(f'{changed} folders and files changed; tables rewritten for {", ".join(table)}')
  for p in stray:
    print(f'still an absolute path: {p.relative_to(ROOT)}')


if __name__ == '__main__':
  main()
