r"""docs/performance.md's before/after speed table, from saved `benchmark --json` outputs.

  python -m isovolnet_jax.bench.speed_table results/speed

reads, per config NAME, DIR/before_NAME.txt (the code before the
shifted-slice convs, JAX only), DIR/after_NAME.txt (JAX and PyTorch in one run) and, if present,
DIR/final_NAME.txt (a later JAX-only run that replaces after's JAX figures),
and prints one Markdown row per config: JAX train and inference img/s before
and after, PyTorch's best variant, and the JAX / PyTorch ratios.
`results/speed/README.md` says which code and command wrote each file.
"""

import json
from pathlib import Path

from absl import app


def last_json(path: Path) -> dict | None:
  if not path.exists():
    return None
  for line in reversed(path.read_text().splitlines()):
    if line.startswith('{'):
      return json.loads(line)
  return None


def main(folder: str):
  folder = Path(folder)
  print('| config | batch | JAX train img/s, before → after | JAX inference img/s, before → after '
        '| best PyTorch train / inference | JAX / PyTorch train | JAX / PyTorch inference |')
  print('|---|---|---|---|---|---|---|')
  for after_path in sorted(folder.glob('after_*.txt')):
    name = after_path.stem[len('after_'):]
    after = last_json(after_path)
    before = last_json(folder / f'before_{name}.txt')
    if after is None:
      continue
    final = last_json(folder / f'final_{name}.txt')
    if final:
      after = {**after, 'jax_train_img_s': final['jax_train_img_s'],
               'jax_infer_img_s': final['jax_infer_img_s']}
      after['train_ratio'] = after['jax_train_img_s'] / after['torch_train_img_s']
      after['infer_ratio'] = after['jax_infer_img_s'] / after['torch_infer_img_s']
    b_train = f'{before["jax_train_img_s"]:,.0f}' if before else '–'
    b_infer = f'{before["jax_infer_img_s"]:,.0f}' if before else '–'
    print(f'| {name} | {after["batch_size"]} '
          f'| {b_train} → **{after["jax_train_img_s"]:,.0f}** '
          f'| {b_infer} → **{after["jax_infer_img_s"]:,.0f}** '
          f'| {after["torch_train_img_s"]:,.0f} ({after["torch_train_best"]}) / '
          f'{after["torch_infer_img_s"]:,.0f} ({after["torch_infer_best"]}) '
          f'| {after["train_ratio"]:.2f}× | {after["infer_ratio"]:.2f}× |')


if __name__ == '__main__':
  app.run(lambda argv: main(argv[1] if len(argv) > 1 else 'results/speed'))
