r"""The zoo on one picture: test accuracy vs parameters and vs training time.

  python -m isovolnet_jax.tools.zoo_plot --out=results/zoo

Reads the committed results of every zoo model (each run's result.json, as
`sweep --results` writes them) listed in ZOO below, and writes OUT/zoo.md,
OUT/zoo.csv and OUT/zoo.png: one row (one marker) per model and training
budget, mean ± sample std of test accuracy over seeds. The time axis is
training time on this project's 2-core CPU, steps x batch / the model's bare
training step img/s measured there (`bench.benchmark`, `bench.efficiency`):
for runs trained on the CPU it is the budget they ran under; for runs trained
on a GPU (hollow markers) it is the time the same steps would take on the CPU.
Dashed lines: the Pareto front (no other point is both more accurate and
smaller, or faster). A model without results yet is listed in zoo.md, not drawn.
"""

import csv
import dataclasses
import glob
import json
from pathlib import Path

from absl import app
from absl import flags
import matplotlib
import ml_collections

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from isovolnet_jax import config_defaults
from isovolnet_jax import summary
from isovolnet_jax.bench import speed_table
from isovolnet_jax.errors import InputError
from isovolnet_jax.tools import sweep
from isovolnet_jax.tools import sweep_report


@dataclasses.dataclass(frozen=True)
class Model:
  label: str
  results: str  # Globs (space-separated) of run folders holding result.json, from the repo root.
  speed: str  # Bench output (last JSON line) or efficiency.csv#<conv>.
  trained_on: str = 'CPU'


ZOO = (
    Model('IsoVolNet, seed design', 'results/isovolnet_equal_time/iso5*',
          'results/isovolnet_equal_time/speed/iso5.txt'),
    Model('IsoVolNet, 4 blocks', 'results/isovolnet_equal_time/iso4,* results/isovolnet_equal_time/iso4_x3,*',
          'results/isovolnet_equal_time/speed/iso4.txt'),
    Model('IsoVolNet, 4 blocks, avg pool, swish, rate 2e-3',
          'results/isovolnet_variants/iso4_avg_swish,*',
          'results/isovolnet_variants/speed/iso4_avg_swish.txt'),
    Model('IsoVolNet, 4 blocks, avg pool, swish, rate 3.2e-2 (default)',
          'results/learning_rate/learning_rate=0.032,*',
          'results/isovolnet_variants/speed/iso4_avg_swish.txt'),
    Model('channel doubling, stem 61',
          'results/isovolnet_equal_time/doubling_s61*',
          'results/isovolnet_equal_time/speed/doubling_s61.txt'),
    Model('FastCNN', 'results/isovolnet_equal_time/fast_cnn*',
          'results/isovolnet_equal_time/speed/fast_cnn.txt'),
    Model('ResNet-20', 'results/isovolnet_equal_time/resnet20*',
          'results/isovolnet_equal_time/speed/resnet20.txt'),
    Model('SimpleCNN', 'results/zoo_equal_time/simple_cnn,*',
          'results/zoo/speed/simple_cnn.txt'),
    Model('MobileNetV2', 'results/zoo_equal_time/mobilenet_v2,*',
          'results/zoo/speed/mobilenet_v2.txt'),
    Model('dilated DS (seed 002)', 'results/seed002_gpu/unrolled_100_epochs',
          'results/speed/final_cifar10_dilated_ds.txt', trained_on='H200'),
    Model('dense DS, separable', 'results/dense_ds_gpu/separable',
          'results/efficiency_dense_ds/efficiency.csv#separable', trained_on='H200'),
    Model('dense DS, standard', 'results/dense_ds_gpu/standard',
          'results/efficiency_dense_ds/efficiency.csv#standard', trained_on='H200'),
)


def cpu_train_img_s(source: Path | str) -> float:
  """The training img/s a benchmark file records."""
  path, _, conv = str(source).partition('#')
  if not Path(path).exists():
    raise InputError(f'{path}: no such speed file; run the benchmark its ZOO entry names.')
  if conv:  # bench.efficiency's CSV: one row per conv variant.
    with open(path, newline='') as f:
      for row in csv.DictReader(f):
        if row['conv'] == conv:
          return float(row['train_img_s'])
    raise InputError(f'{path}: no row with conv={conv}.')
  record = speed_table.last_json(Path(path))
  if record is None:
    raise InputError(f'{path}: no JSON line; rerun bench.benchmark with --json.')
  return float(record['jax_train_img_s'])


def load_rows(model: Model, root: Path) -> list[dict]:
  """One row per (model, budget): mean ± std over the runs that differ by seed."""
  runs, num_train = [], {}
  for d in sorted({d for pattern in model.results.split()
                  for d in glob.glob(str(root / pattern))}):
    if (Path(d) / sweep.RESULT).exists():
      runs.append(json.loads((Path(d) / sweep.RESULT).read_text()))
      dataset = Path(d) / 'dataset.json'
      if dataset.exists():
        num_train[runs[-1]['name']] = json.loads(dataset.read_text())['num_train']
  if not runs:
    return []
  img_s = cpu_train_img_s(root / model.speed)
  rows = []
  for g in sweep_report.group_rows(runs):
    members = [r for r in runs if r['name'] in g['points']]
    batch = members[0]['config']['batch_size']
    steps = members[0]['step']
    # dataset.json where the run kept it; else what its config's data gives
    # (summary.default_num_train: the train split less the val split; keys
    # the result lacks take the schema's defaults).
    images = num_train.get(members[0]['name']) or summary.default_num_train(
        config_defaults.add_missing(ml_collections.ConfigDict(members[0]['config'])))
    rows.append({
        'model': model.label, 'trained_on': model.trained_on, 'params': int(g['params']),
        'steps': steps, 'epochs': steps * batch / images,
        'cpu_train_s': steps * batch / img_s, 'cpu_train_img_s': img_s,
        'test_accuracy': g['test_accuracy'], 'test_accuracy_std': g['test_accuracy_std'],
        'n': g['n'], 'results': model.results})
  return sorted(rows, key=lambda r: r['cpu_train_s'])


def pareto(points: list[tuple[float, float]]) -> list[int]:
  """Indices of the points no other point beats: less cost and more accuracy."""
  front, best = [], -np.inf
  for i in sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1])):
    if points[i][1] > best:
      front.append(i)
      best = points[i][1]
  return front


def best_per_model(rows: list[dict]) -> list[dict]:
  best = {}
  for r in rows:
    if r['model'] not in best or r['test_accuracy'] > best[r['model']]['test_accuracy']:
      best[r['model']] = r
  return list(best.values())


def plot(rows: list[dict], path: Path):
  models = list(dict.fromkeys(r['model'] for r in rows))
  colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(models)}
  fig, (ax_p, ax_t) = plt.subplots(1, 2, figsize=(13, 5.5))
  best = best_per_model(rows)
  for ax, subset, key in ((ax_p, best, 'params'), (ax_t, rows, 'cpu_train_s')):
    for r in subset:
      gpu = r['trained_on'] != 'CPU'
      ax.errorbar(r[key], 100 * r['test_accuracy'], yerr=100 * r['test_accuracy_std'],
                  fmt='o', color=colors[r['model']], mfc='none' if gpu else colors[r['model']],
                  capsize=3, label=r['model'])
      if ax is ax_p:  # Budgets differ between models: say each one's.
        ax.annotate(f"{r['epochs']:.1f} ep", (r[key], 100 * r['test_accuracy']),
                    textcoords='offset points', xytext=(5, 3), fontsize=7)
    front = [subset[i] for i in pareto([(r[key], r['test_accuracy']) for r in subset])]
    ax.plot([r[key] for r in front], [100 * r['test_accuracy'] for r in front], 'k--',
            lw=0.8, zorder=0)
    ax.set_xscale('log')
    ax.set_ylabel('test accuracy (%)')
    ax.grid(alpha=0.3, which='both')
  for m in models:  # Budgets of one model joined, cheapest first.
    mr = [r for r in rows if r['model'] == m]
    ax_t.plot([r['cpu_train_s'] for r in mr], [100 * r['test_accuracy'] for r in mr],
              color=colors[m], lw=0.8)
  ax_p.set_xlabel('parameters (each model at its best measured budget)')
  ax_t.set_xlabel('training time on the 2-core CPU (s)')
  handles, labels = ax_p.get_legend_handles_labels()
  fig.legend(handles, labels, fontsize=8, loc='lower center', ncol=5, frameon=False)
  fig.suptitle('The zoo on the JPEG copy of CIFAR-10: mean ± std over seeds; dashed: Pareto '
               'front; hollow: trained on a GPU,\nits CPU time = its steps at the img/s '
               'measured on the CPU', fontsize=10)
  fig.tight_layout(rect=(0, 0.09, 1, 1))
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write(rows: list[dict], missing: list[Model], out: Path):
  out.mkdir(parents=True, exist_ok=True)
  cols = ['model', 'trained_on', 'params', 'steps', 'epochs', 'cpu_train_s',
          'cpu_train_img_s', 'test_accuracy', 'test_accuracy_std', 'n', 'results']
  with (out / 'zoo.csv').open('w', newline='') as f:
    w = csv.DictWriter(f, cols)
    w.writeheader()
    w.writerows(rows)
  best = {id(r) for r in best_per_model(rows)}
  lines = ['| model | trained on | params | epochs | CPU training time (s) | '
           'test accuracy (%) | seeds |', '|---|---|---|---|---|---|---|']
  for r in rows:
    acc = f"{100 * r['test_accuracy']:.2f}"
    acc += f" ± {100 * r['test_accuracy_std']:.2f}" if r['n'] > 1 else ''
    acc = f'**{acc}**' if id(r) in best else acc
    lines.append(f"| {r['model']} | {r['trained_on']} | {r['params']:,} | {r['epochs']:.1f} | "
                 f"{r['cpu_train_s']:,.0f} | {acc} | {r['n']} |")
  text = '\n'.join(lines) + '\n\nBold: the model\'s best measured budget (the left panel).\n'
  if missing:
    text += '\nNo results yet: ' + ', '.join(f'{m.label} (`{m.results}`)' for m in missing) + '.\n'
  (out / 'zoo.md').write_text(text)
  if rows:
    plot(rows, out / 'zoo.png')


def make(out: Path, root: Path = Path('.'), zoo: tuple[Model, ...] = ZOO) -> list[dict]:
  rows, missing = [], []
  for model in zoo:
    model_rows = load_rows(model, root)
    rows += model_rows
    if not model_rows:
      missing.append(model)
  write(rows, missing, out)
  return rows


def main(argv):
  del argv
  rows = make(Path(flags.FLAGS.out))
  print((Path(flags.FLAGS.out) / 'zoo.md').read_text())
  print(f'{len(rows)} rows -> {flags.FLAGS.out}/zoo.{{md,csv,png}}')


if __name__ == '__main__':
  flags.DEFINE_string('out', 'results/zoo', 'Folder for zoo.md, zoo.csv and zoo.png.')
  app.run(main)
