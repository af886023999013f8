"""Every results table, rendered from the committed run files.

    python -m isovolnet_jax.tools.results_tables           # rewrite the tables
    python -m isovolnet_jax.tools.results_tables --check   # exit 1 and print the diff
                                                           # where a table is stale

A generated table sits in a Markdown file between two markers,

    <!-- table:NAME begin -->
    ...
    <!-- table:NAME end -->

and everything outside the markers is hand-written prose. NAME is a key of
TABLES below; each entry reads the run files of its study (sweep points'
result.json, metrics.jsonl, the JSON last line of a benchmark's text output)
and returns the Markdown between the markers. Grouping and means are
`sweep_report.group_rows`'s (mean +- sample std over seeds, ddof=1).

A figure that has no committed run file has no place in a table; where the
prose once quoted one, the table says "no committed runs".
"""

import argparse
import difflib
import json
import math
import re
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from isovolnet_jax.tools import sweep_report

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r'(<!-- table:(?P<name>[\w.-]+) begin -->\n)(?P<body>.*?)'
                    r'(<!-- table:(?P=name) end -->)', re.S)
# The Markdown files that may hold tables, relative to the repository root.
DOCS = ('README.md', 'docs/*.md', 'results/**/README.md')

# Figures that are not this repository's runs, each with where it comes from.
PUBLISHED_AIRBENCH94 = 94.01  # Keller Jordan's airbench94: mean of 1,000 runs,
                              # official CIFAR-10, one A100, fp16.
ISSUE_AIRBENCH94_H200 = '90.64 ± 0.17% (6 runs)'  # The original airbench94
# script on this JPEG copy, one H200, reported in the issue tracker by a user:
# no committed run.
EQUAL_TIME_S = 315  # Seed 000's budget: configs/sweeps/isovolnet_equal_time.py.


# ---------------------------------------------------------------- reading


def _json_last_line(path: Path) -> dict:
  """The JSON object on the last line of a benchmark's text output."""
  return json.loads(path.read_text().strip().splitlines()[-1])


def sweep_rows(study: Path) -> list[dict]:
  """Every point of a sweep study: its result.json, with 'epochs' added."""
  rows = []
  for f in sorted(study.glob('*/result.json')):
    row = json.loads(f.read_text())
    dataset = f.parent / 'dataset.json'
    if dataset.exists() and row.get('step'):
      num_train = json.loads(dataset.read_text())['num_train']
      row['epochs'] = row['step'] * row['config']['batch_size'] / num_train
    rows.append(row)
  return rows


def sweep_groups(study: Path) -> dict[str, dict]:
  """A study's groups by name (sweep_report.group_rows), with mean epochs."""
  rows = sweep_rows(study)
  out = {}
  for g in sweep_report.group_rows(rows):
    eps = [r['epochs'] for r in rows if r['name'] in g['points'] and 'epochs' in r]
    g['epochs'] = float(np.mean(eps)) if eps else None
    out[g['name']] = g
  return out


def test_accuracy(metrics: Path) -> float:
  """The last test evaluation of a run's metrics.jsonl."""
  rows = [json.loads(l) for l in metrics.open()]
  return [r for r in rows if r['split'] == 'test'][-1]['accuracy']


# ---------------------------------------------------------------- formatting


def pct(x: float | None, digits: int = 1) -> str:
  return '' if x is None else f'{100 * x:.{digits}f}'


def pm(g: dict, key: str = 'test_accuracy', digits: int = 1) -> str:
  """'mean ± std' in percent; the mean alone for one seed."""
  if g.get(key) is None:
    return ''
  s = pct(g[key], digits)
  return s + (f' ± {pct(g[key + "_std"], digits)}' if g['n'] > 1 else '')


def stats(values) -> dict:
  v = np.asarray(values, float)
  return {'test_accuracy': float(v.mean()), 'n': len(v),
          'test_accuracy_std': float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def diff_se(a: dict, b: dict, key: str = 'test_accuracy') -> tuple[float, float]:
  """a - b and its standard error, sqrt(s_a^2/n_a + s_b^2/n_b), in points."""
  d = a[key] - b[key]
  se = math.sqrt(a[key + '_std'] ** 2 / a['n'] + b[key + '_std'] ** 2 / b['n'])
  return 100 * d, 100 * se


def bold(text: str, on: bool) -> str:
  return f'**{text}**' if on and text else text


def table(header: list[str], rows: list[list[str]]) -> str:
  return sweep_report._md_table(header, rows)  # pylint: disable=protected-access


def minutes(seconds: float | None) -> str:
  return 'never' if seconds is None else f'{seconds / 60:.1f} min'


def ratio(x: float) -> str:
  return f'{x:.2f}×'


# ---------------------------------------------------------------- sweep tables


def sweep_table(study: str, arms: list[tuple[str, str]], columns=('params', 'epochs',
                'seeds', 'test', 'val'), bold_best: str | None = None, root=ROOT,
                digits: int = 1, first: str = 'arm') -> str:
  """One row per (group, label) of a sweep study; bold_best: 'test' or 'val'.

  A group named 'OTHER_STUDY:GROUP' is read from another study (a shared base).
  """
  groups = sweep_groups(root / 'results' / study)
  for name, _ in arms:
    if ':' in name:
      other, group = name.split(':')
      groups[name] = sweep_groups(root / 'results' / other)[group]
  key = {'test': 'test_accuracy', 'val': 'val_accuracy'}
  best = None
  if bold_best:
    best = max(arms, key=lambda a: groups[a[0]][key[bold_best]])[0]
  head = {'params': 'params', 'epochs': f'epochs at {EQUAL_TIME_S} s', 'seeds': 'seeds',
          'test': 'test acc. (%)', 'val': 'val acc. (%)', 'epochs10': 'epochs'}
  out = []
  for name, label in arms:
    g = groups[name]
    cells = [label]
    for c in columns:
      if c == 'params':
        cells.append(f'{int(g["params"]):,}')
      elif c in ('epochs', 'epochs10'):
        cells.append(f'{g["epochs"]:.1f}')
      elif c == 'seeds':
        cells.append(str(g['n']))
      else:
        cells.append(bold(pm(g, key[c], digits), c == bold_best and name == best))
    out.append(cells)
  return table([first, *[head[c] for c in columns]], out)


# ---------------------------------------------------------------- seed 003's sweeps

SEED003 = dict(columns=('seeds', 'test', 'val'), bold_best='val')


def lr_table(root=ROOT) -> str:
  rates = sorted(float(n.split('=')[1]) for n in sweep_groups(root / 'results/learning_rate'))
  notes = {0.002: ' (base)', 0.032: ' (the default now)'}
  return sweep_table('learning_rate', [(f'learning_rate={r:g}', f'{r:g}{notes.get(r, "")}')
                                       for r in rates], root=root, first='peak rate', **SEED003)


def batch_table(root=ROOT) -> str:
  return sweep_table('batch_size', [(f'batch_size={b}', f'{b}{" (base)" * (b == 256)}')
                                    for b in (64, 128, 256, 512)],
                     root=root, first='batch size', **SEED003)


def dropout_table(root=ROOT) -> str:
  return sweep_table('dropout', [(f'dropout={d}', f'{d}{" (base)" * (d == "0.0")}')
                                 for d in ('0.0', '0.1', '0.3', '0.5')],
                     root=root, first='dropout', **SEED003)


def activation_table(root=ROOT) -> str:
  return sweep_table('activation', [('activation=relu', 'ReLU'),
                                    ('activation=leaky_relu', 'Leaky ReLU (0.01)'),
                                    ('activation=swish', 'swish (base)')],
                     root=root, first='activation', **SEED003)


def optimizer_table(root=ROOT) -> str:
  return sweep_table('optimizer', [
      ('learning_rate=0.05,name=sgd', 'SGD, Nesterov momentum 0.9, rate 0.05, L2 5e-4'),
      ('learning_rate=0.002,name=adam', 'Adam, rate 2e-3, L2 5e-4'),
      ('learning_rate=0.001,momentum=0.0,name=rmsprop', 'RMSprop, rate 1e-3, L2 5e-4')],
      root=root, first='optimizer', **SEED003)


def variants_table(root=ROOT) -> str:
  return sweep_table('isovolnet_variants', [
      ('isovolnet_equal_time:iso4', '4 blocks (the base: max pooling, ReLU)'),
      ('iso4_avg_swish', 'average pooling + swish'), ('iso4_avg', 'average pooling'),
      ('iso4_swish', 'swish'), ('stem8_b4', 'stem 8, 4 blocks'),
      ('stem16_b3', 'stem 16, 3 blocks'), ('iso4_cpb2', '2 DS convs per block')],
      bold_best='test', root=root)


def zoo_equal_time_table(root=ROOT) -> str:
  return sweep_table('zoo_equal_time', [
      ('simple_cnn', 'SimpleCNN (`configs/cifar10_simple_cnn.py`)'),
      ('mobilenet_v2', 'MobileNetV2 (`configs/cifar10_mobilenet_v2.py`)')],
      columns=('params', 'epochs', 'seeds', 'test'), root=root, first='model')


# ---------------------------------------------------------------- seed 000


def equal_time(root=ROOT) -> dict:
  """Seed 000's two comparisons, each as (difference, SE) in points."""
  g = sweep_groups(root / 'results/isovolnet_equal_time')
  return {'g': g,
          'params': diff_se(g['doubling_s61'], g['iso5']),  # doubling - IsoVolNet
          'default': diff_se(g['iso4_avg_swish'], g['dbl4_s30_avg_swish']),
          'default_val': diff_se(g['iso4_avg_swish'], g['dbl4_s30_avg_swish'],
                                 'val_accuracy')}


def equal_time_verdict(root=ROOT) -> str:
  e = equal_time(root)
  g = e['g']
  (d1, s1), (d2, s2), (d3, s3) = e['params'], e['default'], e['default_val']
  return (
      f'**The answer: no, at equal parameters; at the default\'s size, a small '
      f'lead.** At {EQUAL_TIME_S} s and equal parameters the channel-doubling net '
      f'leads the seed\'s IsoVolNet by {d1:.2f} points of test accuracy '
      f'({pm(g["doubling_s61"], digits=2)}% against {pm(g["iso5"], digits=2)}%, '
      f'{g["iso5"]["n"]} seeds each; standard error of the difference {s1:.2f}, '
      f'so {d1 / s1:.1f} SE). At the default\'s size and knobs (4 blocks, average '
      f'pooling, swish, about {g["iso4_avg_swish"]["params"] / 1e3:.0f}k '
      f'parameters) IsoVolNet leads by {d2:.2f} points '
      f'({pm(g["iso4_avg_swish"], digits=2)}% against '
      f'{pm(g["dbl4_s30_avg_swish"], digits=2)}%; SE {s2:.2f}, so {d2 / s2:.1f} SE) '
      f'and by {d3:.2f} points of validation accuracy ({d3 / s3:.1f} SE).\n')


def equal_time_main(root=ROOT) -> str:
  g = sweep_groups(root / 'results/isovolnet_equal_time')
  arms = [('iso5', 'IsoVolNet, the seed\'s design (5 blocks, no stem)'),
          ('doubling_s61', 'channel doubling, stem 61 (equal params)'),
          ('iso4', 'IsoVolNet, 4 blocks'),
          ('fast_cnn', 'FastCNN (own recipe)'),
          ('resnet20', 'ResNet-20 (own recipe)')]
  best3 = max(g[n + '_x3']['test_accuracy'] for n, _ in arms if n != 'fast_cnn')
  rows = []
  for n, label in arms:
    x3 = g[n + '_x3']
    rows.append([label, f'{int(g[n]["params"]):,}', f'{g[n]["epochs"]:.1f}',
                 pm(g[n]), pm(g[n], 'val_accuracy'),
                 bold(pct(x3['test_accuracy']), x3['test_accuracy'] == best3 and
                      n.startswith('iso')) + f' ({x3["epochs"]:.1f})'])
  ten = g['doubling_s61_10ep']
  rows.append(['channel doubling, stem 61, 10 epochs', f'{int(ten["params"]):,}',
               f'{ten["epochs"]:.1f}', pm(ten), pm(ten, 'val_accuracy'), ''])
  return table(['arm', 'params', f'epochs at {EQUAL_TIME_S} s',
                f'test acc., {EQUAL_TIME_S} s', f'val acc., {EQUAL_TIME_S} s',
                f'test acc., {3 * EQUAL_TIME_S} s (epochs)'], rows)


def equal_time_default(root=ROOT) -> str:
  return sweep_table('isovolnet_equal_time', [
      ('iso4_avg_swish', 'IsoVolNet, 4 blocks, avg pooling, swish (the default)'),
      ('dbl4_s30_avg_swish', 'channel doubling, 4 blocks, stem 30, avg pooling, swish')],
      root=root)


# ---------------------------------------------------------------- airbench


def airbench_runs(root=ROOT) -> dict:
  d = root / 'results/airbench/full_budget'
  bf0 = json.loads((d / 'airbench94_bf16_seed0.json').read_text())
  f32 = json.loads((d / 'airbench94_f32_seed0.json').read_text())
  seeds = [_json_last_line(d / f'time_to_accuracy_bf16_seed{s}.txt')['runs'][0]
           for s in (1, 2)]
  torch = _json_last_line(d / 'torch_reference_seed0.txt')
  bf16 = [bf0['final_test_accuracy_6view'], *[r['test_accuracy'] for r in seeds]]
  return {'bf0': bf0, 'f32': f32, 'seeds': seeds, 'torch': torch,
          'bf16': stats(bf16)}


def _img_s(run: dict, epochs: slice) -> float:
  return float(np.mean([r['images_per_sec'] for r in run['train_images_per_sec']][epochs]))


def airbench_full_budget(root=ROOT) -> str:
  a = airbench_runs(root)
  bf0, f32 = a['bf0'], a['f32']
  t = lambda run, k: run['seconds_to_test_accuracy'][k]
  rows = [['this port, bfloat16, seed 0', f'**{pct(bf0["final_test_accuracy_6view"], 2)}%**',
           minutes(bf0['launch_to_exit_seconds']) + '*', minutes(t(bf0, '0.8')),
           minutes(t(bf0, '0.85')), minutes(t(bf0, '0.9')) + '*',
           f'{_img_s(bf0, slice(0, 6)):.0f} (epochs 1-6)']]
  for r in a['seeds']:
    rows.append([f'this port, bfloat16, seed {r["seed"]} (`bench.time_to_accuracy`, alone)',
                 f'**{pct(r["test_accuracy"], 2)}%**', minutes(r['seconds']),
                 *[minutes(r['to_target_seconds'][k]) for k in ('0.8', '0.85', '0.9')],
                 ''])
  rows.append(['this port, float32, seed 0', f'**{pct(f32["final_test_accuracy_6view"], 2)}%**',
               minutes(f32['launch_to_exit_seconds']),
               *[minutes(t(f32, k)) for k in ('0.8', '0.85', '0.9')],
               f'{_img_s(f32, slice(0, 6)):.0f} (epochs 1-6)'])
  rows.append(['this repository\'s PyTorch rewrite (`bench.torch_airbench`, this '
               'repository\'s loader), float32, seed 0',
               f'**{pct(a["torch"]["tta_accuracy"], 2)}%**',
               f'({minutes(a["torch"]["seconds"])}*)', '', '', '', ''])
  rows.append(['the original airbench94 script, one H200 (reported in the issue '
               'tracker, no committed run)', ISSUE_AIRBENCH94_H200, '', '', '', '', ''])
  rows.append(['published (official CIFAR-10, A100, fp16)',
               f'{PUBLISHED_AIRBENCH94}% (mean of 1,000)', '', '', '', '', ''])
  mean = (f'\nbfloat16 over the {a["bf16"]["n"]} seeds: '
          f'**{pm(a["bf16"], digits=2)}%**; bfloat16 over float32 train img/s, epochs '
          f'1-6 of seed 0: '
          f'{_img_s(bf0, slice(0, 6)) / _img_s(f32, slice(0, 6)):.2f}×.\n')
  return table(['run', 'test accuracy, 6 views', 'launch to exit', 'to 80%', 'to 85%',
                'to 90%', 'train img/s'], rows) + '\n' + mean


def airbench_per_epoch(root=ROOT) -> str:
  a = airbench_runs(root)
  curve = lambda run: [pct(r['accuracy']) for r in run['test_per_epoch']]
  torch = a['torch']
  rows = [['port bf16, seed 0', *curve(a['bf0'])], ['port f32, seed 0', *curve(a['f32'])],
          ['PyTorch rewrite, seed 0', *[pct(x) for x in torch['curve'][:-1]],
           f'{pct(torch["curve"][-1])} (6 views: {pct(torch["tta_accuracy"])})']]
  return table(['epoch', *map(str, range(1, 10)), '9.9'], rows)


def airbench_ablation(root=ROOT) -> str:
  d = root / 'results/airbench/ablation'
  groups = sweep_groups(d)
  base = groups['airbench94']
  by_seed = lambda name: {r['overrides']['seed']: r['test_accuracy']
                          for r in sweep_rows(d) if r['name'].startswith(name + ',')}
  base_s = by_seed('airbench94')
  no_tta = {s: json.loads((d / f'no_tta,seed={s}.json').read_text()) for s in (0, 1, 2)}
  arms = [('no_dirac_init', 'no Dirac (identity) init'),
          ('no_whitening', 'no whitening stem (the 2×2 conv trains from its default init)'),
          ('no_label_smoothing', 'no label smoothing'),
          ('no_tta', 'no test-time augmentation (one view)'),
          ('bn_bias_at_1x_rate', 'BatchNorm biases at 1× the rate (not 64×)'),
          ('random_flip', 'random flip instead of alternating'),
          ('no_translate', 'no translation'), ('no_lookahead', 'no lookahead')]
  rows = [['airbench94, every trick on', pm(base, digits=2) + '%', '', '']]
  for name, label in arms:
    acc = {s: no_tta[s]['test_accuracy'] for s in no_tta} if name == 'no_tta' else by_seed(name)
    ch = [100 * (acc[s] - base_s[s]) for s in sorted(base_s)]
    g = stats([acc[s] for s in sorted(acc)])
    agree = all(c < 0 for c in ch) or all(c > 0 for c in ch)
    mean = f'{np.mean(ch):+.2f}'.replace('-', '−')
    rows.append([label, pm(g, digits=2) + '%',
                 ', '.join(f'{c:+.2f}'.replace('-', '−') for c in ch),
                 bold(mean, agree and abs(np.mean(ch)) > 100 * base['test_accuracy_std'])])
  return table(['arm (one change from airbench94)',
                f'test accuracy, mean ± std ({base["n"]} seeds)', 'change, seeds 0, 1, 2',
                'mean change'], rows)


# ---------------------------------------------------------------- airbench's tricks on the zoo


def zoo_evals(study: str, tta: str, arm: str, root=ROOT) -> list[dict]:
  """An arm's evaluations with the TTA it did not train with, by seed."""
  d = root / 'results/airbench/zoo' / study
  return [json.loads(f.read_text()) for f in sorted(d.glob(f'eval_{tta},{arm},seed=*.json'))]


def pm2(values) -> str:
  return pm(stats(values), digits=2) + '%'


def zoo_views(study: str, arm: str, ref_tta: str, root=ROOT) -> dict:
  """An arm's test (and val) accuracies per seed: as trained and with ref_tta."""
  rows = sorted((r for r in sweep_rows(root / 'results/airbench/zoo' / study)
                 if r['name'].startswith(arm + ',')), key=lambda r: r['overrides']['seed'])
  ev = zoo_evals(study, ref_tta, arm, root)
  return {'val': [r['val_accuracy'] for r in rows], 'test': [r['test_accuracy'] for r in rows],
          'other': [e[f'test_accuracy_{ref_tta}'] for e in ev], 'steps': rows[0]['step'],
          'params': rows[0]['params'], 'ev': ev}


def zoo_equal_time_tricks(root=ROOT) -> str:
  rows = []
  for ref, tricks, label in (('isovolnet', 'isovolnet_tricks', ('IsoVolNet, configs/cifar10.py '
                              'as it was (label smoothing 0.1)', 'IsoVolNet + label smoothing '
                              '0.2 + lookahead')), ('fast_cnn', 'fast_cnn_tricks', (
                              'FastCNN, its config (flip TTA off)', 'FastCNN + lookahead'))):
    a, b = zoo_views('equal_time', ref, 'airbench6', root), zoo_views('equal_time', tricks,
                                                                       'none', root)
    six = [a['other'], b['test']]
    best = max(range(2), key=lambda i: np.mean(six[i]))
    rows.append([label[0], pm2(a['val']) + ' (1 view)', pm2(a['test']),
                 bold(pm2(six[0]), best == 0)])
    rows.append([label[1], pm2(b['val']) + ' (6 views)', pm2(b['other']),
                 bold(pm2(six[1]), best == 1)])
  return table([f'arm (test accuracy, mean ± std, 3 seeds)', 'val, as trained',
                'test, one view', 'test, 6 views'], rows)


def zoo_whiten(root=ROOT) -> str:
  d = root / 'results/airbench/zoo'
  eg, wg = sweep_groups(d / 'equal_time'), sweep_groups(d / 'whiten')
  steps = {r['name'].split(',')[0]: r['step']
           for r in sweep_rows(d / 'equal_time') + sweep_rows(d / 'whiten')}
  out = []
  for net in ((eg, 'isovolnet_tricks', 'IsoVolNet + tricks (the default of 2026-12-03, from `equal_time/`)'),
              (wg, 'isovolnet_whiten3', '+ whitening stem, 3 blocks'),
              (wg, 'isovolnet_whiten2', '+ whitening stem, 2 blocks')), (
              (eg, 'fast_cnn_tricks', 'FastCNN + tricks (from `equal_time/`)'),
              (wg, 'fast_cnn_whiten', '+ whitening stem')):
    best = max(net, key=lambda a: a[0][a[1]]['test_accuracy'])[1]
    for groups, name, label in net:
      g = groups[name]
      out.append([label, f'{int(g["params"]):,}', f'{steps[name]:,} ({g["epochs"]:.1f})',
                  pm(g, 'val_accuracy', 2) + '%', bold(pm(g, digits=2) + '%', name == best)])
  return table(['arm', 'params', f'steps (epochs) at {EQUAL_TIME_S} s', 'val accuracy',
                'test accuracy'], out)


def zoo_dilated(root=ROOT) -> str:
  a = zoo_views('dilated', 'dilated', 'airbench6', root)
  b = zoo_views('dilated', 'dilated_tricks', 'none', root)
  return table(['arm', 'steps', 'val accuracy', 'test, one view', 'test, 6 views'], [
      ['dilated DS, its config', str(a['steps']), pm2(a['val']), pm2(a['test']),
       pm2(a['other'])],
      ['+ label smoothing 0.2, lookahead, TTA, whitening stem', str(b['steps']),
       pm2(b['val']), pm2(b['other']), pm2(b['test'])]])


def zoo_two_views(root=ROOT) -> str:
  rows = []
  for arm, label in (('fast_cnn', 'FastCNN'), ('isovolnet', 'IsoVolNet (label smoothing 0.1)')):
    v = zoo_views('equal_time', arm, 'airbench6', root)
    flip = zoo_evals('equal_time', 'flip', arm, root)
    val = lambda k: pm2([e[k] for e in flip]) if k in flip[0] else ''
    views = [('1', v['val'], v['test']),
             ('2 (flip)', [e.get('val_accuracy_flip') for e in flip],
              [e['test_accuracy_flip'] for e in flip]),
             ('6 (`airbench6`)', [e.get('val_accuracy_airbench6') for e in flip], v['other'])]
    for i, (n, va, te) in enumerate(views):
      last = i == len(views) - 1
      rows.append([label, n, bold(pm2(va), last) if None not in va else '',
                   bold(pm2(te), last)])
  return table(['arm', 'views', 'val accuracy', 'test accuracy'], rows)


def zoo_isovolnet(root=ROOT) -> str:
  d = root / 'results/airbench/zoo/isovolnet'
  rows = []
  for arm, label in (('default', 'default'), ('label_smoothing', '+ label smoothing 0.2'),
                     ('lookahead', '+ lookahead'), ('label_smoothing+lookahead', '+ both')):
    e = json.loads((d / f'tta_airbench6,{arm},seed=0.json').read_text())
    one, six = e['test_accuracy_one_view'], e['test_accuracy_airbench6']
    rows.append([label, f'{pct(one, 2)}%', f'{pct(six, 2)}%'])
  best = max(range(len(rows)), key=lambda i: float(rows[i][2][:-1]))
  rows[best][2] = bold(rows[best][2], True)
  return table(['arm', 'test accuracy, one view', 'test accuracy, 6 views (`airbench6`)'], rows)


def zoo_budget(arms: list[tuple[str, str, str, str, str]], root=ROOT) -> str:
  """Each arm's steps from the img/s ratio (whiten/speed/NAME_r{1,2}.txt) to its reference.

  arms: (label, speed file, reference's speed file, study, sweep arm).
  """
  d = root / 'results/airbench/zoo'
  img_s = lambda n: [_json_last_line(d / f'whiten/speed/{n}_r{r}.txt')['jax_train_img_s']
                     for r in (1, 2)]
  rows = []
  for label, name, ref, study, arm in arms:
    run = next(r for r in sweep_rows(d / study) if r['name'] == arm + ',seed=0')
    mine, theirs = img_s(name), img_s(ref)
    q = np.mean([m / t for m, t in zip(mine, theirs)])
    rows.append([label, f'{run["params"]:,}', ', '.join(f'{x:,.0f}' for x in mine),
                 '1' if name == ref else f'{q:#.3g}', f'{run["step"]:,}',
                 f'{run["epochs"]:.{1 if run["epochs"] >= 1 else 2}f}'])
  return rows


def zoo_budget_dilated(root=ROOT) -> str:
  return table(['arm', 'params', 'train img/s (round 1, 2)', 'ratio to IsoVolNet',
                'steps of 256', 'epochs'], zoo_budget([
      ('IsoVolNet (configs/cifar10.py)', 'iso', 'iso', 'equal_time', 'isovolnet_tricks'),
      ('dilated DS (configs/cifar10_dilated_ds.py)', 'dilated', 'iso', 'dilated', 'dilated'),
      ('+ whitening stem', 'dilated_w', 'iso', 'dilated', 'dilated_tricks')], root))


def zoo_budget_whiten(root=ROOT) -> str:
  return table(['arm', 'params', 'train img/s (round 1, 2)', 'ratio', 'steps', 'epochs'],
               zoo_budget([
      ('IsoVolNet (configs/cifar10.py)', 'iso', 'iso', 'equal_time', 'isovolnet_tricks'),
      ('+ whitening stem, 3 blocks', 'iso_w3', 'iso', 'whiten', 'isovolnet_whiten3'),
      ('+ whitening stem, 2 blocks', 'iso_w2', 'iso', 'whiten', 'isovolnet_whiten2'),
      ('FastCNN (configs/cifar10_fast_cpu.py)', 'fast', 'fast', 'equal_time', 'fast_cnn_tricks'),
      ('+ whitening stem', 'fast_w', 'fast', 'whiten', 'fast_cnn_whiten')], root))


# ---------------------------------------------------------------- onednn


ONEDNN = [('cifar10_fast_cpu', 'FastCNN'), ('resnet20', 'ResNet-20'),
          ('cifar10', 'IsoVolNet, 4 blocks'),
          ('isovolnet_seed', 'IsoVolNet, the seed\'s 5 blocks'),
          ('mobilenet_v2', 'MobileNetV2'), ('dilated_ds', 'dilated DS residual net, seed 002'),
          ('dense_ds', 'dense DS net, seed 003')]
TORCH_NAMES = {'nchw': 'f32 eager', 'channels_last': 'f32 channels_last',
               'compile': 'f32 compiled', 'bf16': 'bf16 eager',
               'bf16_compile': 'bf16 compiled'}


def onednn_run(root: Path, f: str) -> dict:
  """results/onednn/<f>.txt, with the 'before' (float32:unrolled) of
  <f>_before.txt where it was timed in a process of its own."""
  r = _json_last_line(root / f'results/onednn/{f}.txt')
  before = root / f'results/onednn/{f}_before.txt'
  if 'float32:unrolled' not in r['jax_variants'] and before.exists():
    r['jax_variants']['float32:unrolled'] = _json_last_line(before)['jax_variants'][
        'float32:unrolled']
  return r


def onednn_runs(root=ROOT) -> dict[str, dict]:
  return {f: onednn_run(root, f) for f, _ in ONEDNN}


def onednn_summary(root=ROOT) -> dict:
  """Per config: oneDNN's float32 speed-up, best JAX / best PyTorch, f32 leads."""
  out = {}
  for f, r in onednn_runs(root).items():
    v, tv = r['jax_variants'], r['torch_variants']
    before = v.get('float32:unrolled', {}).get('train')
    f32_torch = max(tv[k]['train'] for k in ('nchw', 'channels_last', 'compile'))
    out[f] = {'speedup': v['float32:onednn']['train'] / before if before else None,
              'train': r['best_train_ratio'], 'infer': r['best_infer_ratio'],
              'f32_ratio': v['float32:onednn']['train'] / f32_torch}
    again = second_onednn_run(root, f)
    if again:
      out[f]['train_again'] = again['best_train_ratio']
  return out


def second_onednn_run(root: Path, f: str) -> dict | None:
  """results/onednn/<f>_run2.txt: the same command run again minutes after
  the table's run, where one was (the table keeps the first; both are quoted)."""
  path = root / f'results/onednn/{f}_run2.txt'
  return _json_last_line(path) if path.exists() else None


def best_train_ratios(o: dict, f: str) -> str:
  """'1.54×' or, with a second run, '1.54× (1.14× in a second run)'."""
  again = o[f].get('train_again')
  return ratio(o[f]['train']) + (f' ({ratio(again)} in a second run)' if again else '')


def onednn_table(root=ROOT) -> str:
  rows = []
  for f, label in ONEDNN:
    r = onednn_run(root, f)
    v, tv = r['jax_variants'], r['torch_variants']
    fb = lambda x: f'{x:,.0f}'
    best = lambda k: max(v, key=lambda n: v[n][k])
    def cell(k):
      b = v.get('float32:unrolled', {}).get(k)
      after = ' / '.join(bold(fb(v[n][k]), best(k) == n) if n in v else '–'
                         for n in ('float32:onednn', 'bfloat16:onednn', 'mixed_bfloat16:onednn'))
      return f'{fb(b) if b else "not timed†"} → {after}'
    tt, ti = r['torch_train_best'], r['torch_infer_best']
    ratios = lambda train, infer: f'{bold(ratio(train), train >= 1)}, {ratio(infer)}'
    again = second_onednn_run(root, f)
    also = lambda a, b: (f' (a second run: {ratio(again[a])}, {ratio(again[b])})'
                         if again else '')
    rows.append([f'`{"cifar10_" if not f.startswith("cifar10") else ""}{f}` ({label})',
                 str(r['batch_size']), f'`{r["jax_variant"].split(":")[0]}`',
                 cell('train'), cell('infer'),
                 f'{tv[tt]["train"]:,.0f} ({TORCH_NAMES[tt]}) / '
                 f'{tv[ti]["infer"]:,.0f} ({TORCH_NAMES[ti]})',
                 ratios(r['train_ratio'], r['infer_ratio']) + also('train_ratio', 'infer_ratio'),
                 ratios(r['best_train_ratio'], r['best_infer_ratio'])
                 + also('best_train_ratio', 'best_infer_ratio')])
  s = onednn_summary(root)
  speed = ', '.join(f'{s[f]["speedup"]:.2f}× on {label}' for f, label in ONEDNN
                    if s[f]['speedup'])
  f32 = ', '.join(f'{label} {ratio(s[f]["f32_ratio"])}' for f, label in ONEDNN)
  return (table(['config', 'batch', 'default dtype',
                 'JAX train img/s: before → oneDNN float32 / bf16 / mixed',
                 'JAX infer img/s: before → float32 / bf16 / mixed',
                 'best PyTorch train / infer', 'the default / best PyTorch: train, infer',
                 'best JAX / best PyTorch: train, infer'], rows) +
          f'\n\noneDNN\'s float32 training step over the `\'unrolled\'` one: {speed}. '
          f'JAX float32 (oneDNN) over PyTorch\'s best float32 training (eager, '
          f'channels_last or compiled): {f32}.\n')


def onednn_threads(root=ROOT) -> str:
  rows = []
  for f, label in (('cifar10_fast_cpu', 'FastCNN'), ('cifar10', 'IsoVolNet, 4 blocks')):
    one = _json_last_line(root / f'results/onednn/{f}_1device.txt')['jax_variants']
    two = _json_last_line(root / f'results/onednn/{f}.txt')['jax_variants']
    for v in ('float32:onednn', 'bfloat16:onednn'):
      rows.append([label, v.split(':')[0], f'{one[v]["train"]:,.0f}', f'{two[v]["train"]:,.0f}'])
  return table(['config', 'dtype', 'train img/s, 1 device, 2 oneDNN threads',
                'train img/s, 2 devices, 1 thread each'], rows)


def _ms_by_kind(line: str) -> dict[str, float]:
  """'... by kind ...: Conv 12.9 ms, BatchNorm 20.3 ms' as {'Conv': 12.9, ...}."""
  return {k: float(v) for k, v in re.findall(r'([A-Za-z][\w ]*?) ([\d.]+) ms', line.split(': ', 1)[1])}


def _jax_profile(text: str) -> tuple[dict[str, float], str, str]:
  """A `bench.layer_profile` output's JAX side: ms by kind of layer, and the
  whole model's forward + backward and its rest (ms, as printed)."""
  kinds = _ms_by_kind(next(l for l in text.splitlines() if l.startswith('fwd+bwd by kind')))
  whole, rest = re.search(r'fwd\+bwd ([\d.]+) ms \(the rest.*?\+([\d.]+) ms', text).groups()
  return kinds, whole, rest


def onednn_profile(root=ROOT) -> str:
  """Per-op milliseconds of one training step (results/onednn/profile/*.txt)."""
  rows = []
  for f, label in (('cifar10_channels_last', 'IsoVolNet (`cifar10`), float32'),
                   ('cifar10_bf16', 'IsoVolNet, bfloat16 / bf16 autocast'),
                   ('cifar10_fast_cpu_channels_last', 'FastCNN (`cifar10_fast_cpu`), float32'),
                   ('cifar10_fast_cpu_bf16', 'FastCNN, bfloat16 / bf16 autocast')):
    text = (root / f'results/onednn/profile/profile_{f}.txt').read_text()
    line = lambda start: next(l for l in text.splitlines() if l.startswith(start))
    jax, whole, jax_rest = _jax_profile(text)
    torch = _ms_by_kind(line('PyTorch') if 'by kind' in line('PyTorch') else '')
    t_whole = re.search(r'PyTorch whole model fwd\+bwd ([\d.]+) ms', text)[1]
    rest = sum(torch.get(k, 0) for k in ('activation', 'pooling', 'rest'))
    rows.append([label, f'{jax["Conv"] + jax.get("Conv grouped", 0):.1f}',
                 f'{jax["BatchNorm"]:.1f}', jax_rest, f'**{whole}**',
                 f'{torch["Conv"]:.1f}', f'{torch["BatchNorm"]:.1f}', f'{rest:.1f}',
                 f'**{t_whole}**'])
  return table(['config, precision', 'JAX conv', 'JAX BatchNorm', 'JAX rest*',
                '**JAX whole**', 'PyTorch conv', 'PyTorch BatchNorm',
                'PyTorch activation + pooling + rest', '**PyTorch whole**'], rows)


def onednn_memory(root=ROOT) -> str:
  """A training step's memory, JAX against PyTorch (results/onednn/memory/*.txt)."""
  runs = [(f, _json_last_line(root / f'results/onednn/memory/{f}.txt'))
          for f in ('cifar10_fast_cpu', 'cifar10', 'isovolnet_seed', 'resnet20',
                    'mobilenet_v2', 'dense_ds', 'dilated_ds')]
  top = max(r['ratio'] for _, r in runs)
  label = {'cifar10_fast_cpu': ' (FastCNN)', 'cifar10': ' (IsoVolNet, 4 blocks)'}
  mib = lambda x: f'{x:,.0f} MiB'
  return table(['config', 'batch', 'layer outputs (f32)', 'JAX step (XLA\'s temporaries)',
                'PyTorch step', 'JAX / PyTorch'], [
      [f'`{"" if f.startswith("cifar10") else "cifar10_"}{f}`{label.get(f, "")}',
       str(r['batch_size']), mib(r['layer_outputs_mib']),
       f'{mib(r["jax"]["step_mib"])} ({r["jax"]["xla_temp_mib"]:,.0f})',
       mib(r['torch']['step_mib']), bold(ratio(r['ratio']), r['ratio'] == top)]
      for f, r in runs])


# ---------------------------------------------------------------- bf16


DTYPE_NAMES = {'float32': 'float32', 'bfloat16': 'bfloat16',
               'mixed_bfloat16': 'mixed (bfloat16 convs, float32 elementwise)'}


def tta_files(d: Path, stem: str) -> dict[str, dict]:
  """{dtype: a bench.time_to_accuracy output's JSON} for d/STEM_DTYPE.txt."""
  return {dt: _json_last_line(d / f'{stem}_{dt}.txt') for dt in DTYPE_NAMES
          if (d / f'{stem}_{dt}.txt').exists()}


def accuracies(result: dict) -> dict:
  return stats([r['test_accuracy'] for r in sorted(result['runs'], key=lambda r: r['seed'])])


# The nets whose precision was measured (results/bf16): `bf16_runs`' key, the
# config, its label in the tables.
BF16_NETS = (('fast', 'cifar10_fast_cpu', '`cifar10_fast_cpu` (FastCNN, 10 epochs)'),
             ('iso', 'cifar10', '`cifar10` (IsoVolNet, 4 blocks, 10 epochs)'),
             ('seed', 'cifar10_isovolnet_seed',
              "`cifar10_isovolnet_seed` (IsoVolNet, the seed's 5 blocks, 10 epochs)"),
             ('resnet', 'cifar10_resnet20', '`cifar10_resnet20` (ResNet-20, 10 epochs)'))


def bf16_runs(root=ROOT) -> dict:
  """Each net's runs by dtype (`BF16_NETS`' keys): FastCNN's are the timed
  ones of time_to_accuracy, the others results/bf16's own (10 epochs)."""
  return {key: tta_files(root / 'results/time_to_accuracy', 'fast_cpu') if key == 'fast'
          else tta_files(root / 'results/bf16', config) for key, config, _ in BF16_NETS}


def bf16_table(root=ROOT) -> str:
  b = bf16_runs(root)
  rows = []
  for key, _, cfg in BF16_NETS:
    for i, (dt, result) in enumerate(b[key].items()):
      accs = [r['test_accuracy'] for r in sorted(result['runs'], key=lambda r: r['seed'])]
      rows.append([cfg if i == 0 else '', DTYPE_NAMES[dt], *[pct(x, 2) for x in accs],
                   pm(stats(accs), digits=2), f'`{result["commit"]}`'])
  return table(['config', 'dtype', 'seed 0', 'seed 1', 'seed 2', 'mean ± sample std',
                'commit'], rows)


def time_to_accuracy_table(root=ROOT) -> str:
  """FastCNN's timed runs, launch to exit, by dtype."""
  rows = []
  for dt, result in tta_files(root / 'results/time_to_accuracy', 'fast_cpu').items():
    runs = sorted(result['runs'], key=lambda r: r['seed'])
    mins = stats([r['seconds'] / 60 for r in runs])
    rows.append([DTYPE_NAMES[dt],
                 ', '.join(f'{r["seconds"] / 60:.2f}' for r in runs),
                 f'**{mins["test_accuracy"]:.2f} ± {mins["test_accuracy_std"]:.2f}**',
                 ', '.join(pct(r['test_accuracy'], 2) for r in runs),
                 f'**{pm(accuracies(result), digits=2)}%**', f'`{result["commit"]}`',
                 result['date'].split()[0]])
  return table(['dtype', 'minutes, seeds 0-2', 'mean ± std (min)', 'test accuracy (%), seeds 0-2',
                'mean ± std', 'commit', 'date'], rows)


# ---------------------------------------------------------------- single runs


FULL_BUDGET_DEFAULT = 'default_2026-12-05'  # Today's default's runs.


def full_budget(root=ROOT, sub: str = '') -> dict:
  """isovolnet_full_budget's seeds (SUB: the folder of another default's)."""
  d = root / 'results/isovolnet_full_budget' / sub
  out = {'seeds': [], 'val': [], 'test': [], 'hours': []}
  for s in sorted(d.glob('seed=*')):
    rows = [json.loads(l) for l in (s / 'metrics.jsonl').open()]
    out['seeds'].append(s.name.split('=')[1])
    out['val'].append([r for r in rows if r['split'] == 'val'][-1]['accuracy'])
    out['test'].append([r for r in rows if r['split'] == 'test'][-1]['accuracy'])
    times = [r['unix_time'] for r in rows if 'unix_time' in r]
    out['hours'].append(times[-1] - times[0] if times else None)
  return out


def full_budget_table(root=ROOT, sub: str = '') -> str:
  f = full_budget(root, sub)
  rows = [[s, f'{pct(v, 2)}%', f'{pct(t, 2)}%'] for s, v, t in zip(f['seeds'], f['val'],
                                                                  f['test'])]
  rows.append(['mean ± std', pm(stats(f['val']), digits=2) + '%',
               f'**{pm(stats(f["test"]), digits=2)}%**'])
  return table(['seed', 'val accuracy, last epoch (6 views)', 'test accuracy (6 views)'],
               rows)


def full_budget_compare(root=ROOT) -> str:
  """Today's default at 100 epochs against the previous default's, seed by
  seed (test accuracy, 6 views)."""
  old, new = full_budget(root), full_budget(root, FULL_BUDGET_DEFAULT)
  old_by_seed = dict(zip(old['seeds'], old['test']))
  rows, diffs = [], []
  for seed, acc in zip(new['seeds'], new['test']):
    if seed in old_by_seed:
      diffs.append(acc - old_by_seed[seed])
      rows.append([seed, f'{pct(old_by_seed[seed], 2)}%', f'{pct(acc, 2)}%',
                   f'{100 * diffs[-1]:+.2f}'])
  rows.append(['mean', pm2(old['test']), pm2(new['test']),
               f'**{100 * np.mean(diffs):+.2f}**' if diffs else ''])
  return table(['seed', 'previous default (label smoothing 0.2, lookahead)',
                'today\'s default', 'difference (points)'], rows)


def full_budget_default_table(root=ROOT) -> str:
  """The default since 2026-12-05 (label smoothing 0.1, no lookahead)."""
  return full_budget_table(root, FULL_BUDGET_DEFAULT)


def gpu_runs(root=ROOT) -> dict:
  r = lambda p: json.loads((root / 'results' / p / 'result.json').read_text())
  return {'seed002': r('seed002_gpu/unrolled_100_epochs'),
          'separable': r('dense_ds_gpu/separable'), 'standard': r('dense_ds_gpu/standard')}


def zoo_equal_time(root=ROOT) -> dict:
  d = root / 'results/airbench/zoo'
  g = sweep_groups(d / 'equal_time')
  w = sweep_groups(d / 'whiten')
  def evals(tta, arm):
    return [json.loads((d / 'equal_time' / f'eval_{tta},{arm},seed={s}.json').read_text())
            for s in (0, 1, 2)]
  iso6 = stats([e['test_accuracy_airbench6'] for e in evals('airbench6', 'isovolnet')])
  fast6 = stats([e['test_accuracy_airbench6'] for e in evals('airbench6', 'fast_cnn')])
  return {'g': g, 'w': w, 'iso6': iso6, 'fast6': fast6}


def train_log(run: Path) -> dict:
  """A GPU run's metrics.jsonl or run.log: train img/s per log interval, steps, test."""
  if (run / 'metrics.jsonl').exists():
    rows = [json.loads(l) for l in (run / 'metrics.jsonl').open()]
    img_s = [r['images_per_sec'] for r in rows if r['split'] == 'train']
    test = [r for r in rows if r['split'] == 'test'][-1]
  else:  # run.log lines 'step S/N  loss L  accuracy A  X img/s'
    img_s = [float(x) for x in re.findall(r'step \d+/\d+ .*? ([\d.]+) img/s',
                                          (run / 'run.log').read_text())]
  if (run / 'test.json').exists():  # evaluate.py's, with per-class scores
    test = json.loads((run / 'test.json').read_text())
  steps = re.findall(r'step (\d+)/(\d+) ', (run / 'run.log').read_text())
  return {'img_s': img_s, 'step': int(steps[-1][0]), 'steps': int(steps[-1][1]),
          'test': test}


def img_s_range(img_s: list[float]) -> str:
  """min-max over the log intervals after the first (which holds the compilation)."""
  return f'{min(img_s[1:]):,.0f}–{max(img_s[1:]):,.0f}'


def seed002_table(root=ROOT) -> str:
  d = root / 'results/seed002_gpu'
  lax, probe, full = (train_log(d / n) for n in ('lax_11_epochs', 'unrolled_probe',
                                                   'unrolled_100_epochs'))
  res = gpu_runs(root)['seed002']
  per_epoch = lax['steps'] / json.loads((d / 'lax_11_epochs/config.json').read_text()
                                         )['num_epochs']  # every run: 195 steps an epoch
  acc = lambda r: f'**{pct(r["test"]["accuracy"], 2)}%** (loss {r["test"]["loss"]:.3f})'
  return table(['run', 'conv_impl', 'train img/s', 'epochs', 'test accuracy', 'files'], [
      ['full one-cycle schedule', 'lax (the then `\'auto\'` on GPU)', img_s_range(lax['img_s']),
       f'{lax["step"] / per_epoch:.0f}', acc(lax), '`lax_11_epochs/`'],
      ['speed probe', 'unrolled', img_s_range(probe['img_s']),
       f'{probe["step"] / per_epoch:.1f} of {probe["steps"] / per_epoch:.0f} (cut by the time '
       'cap)', f'{pct(probe["test"]["accuracy"], 2)}% at the cut', '`unrolled_probe/`'],
      ['**the seed\'s 100 epochs** (second GPU session, `device/session.sh`)',
       'unrolled (`\'auto\'`)', img_s_range(full['img_s']),
       f'{res["overrides"]["num_epochs"]} ({res["train_time_s"]:.0f} s of training)',
       acc(full), '`unrolled_100_epochs/`']])


def efficiency_table(root=ROOT) -> str:
  e = efficiency(root)
  sep, std = e['separable'], e['standard']
  cols = [('params', '{:,.0f}'), ('flops_analytic', '{:,.0f}'), ('flops_xla', '{:,.0f}'),
          ('latency_ms_b1', '{:.2f}'), ('infer_img_s', '{:.0f}'), ('train_img_s', '{:.0f}'),
          ('train_step_peak_mib', '{:.1f}'), ('rss_peak_mib', '{:.0f}')]
  rows = [['dense_ds', conv, *[fmt.format(e[conv][k]) for k, fmt in cols]]
          for conv in ('separable', 'standard')]
  return (table(['model', 'conv', *[k for k, _ in cols]], rows) +
          f'\n\nstandard / separable: params x{std["params"] / sep["params"]:.1f}, FLOPs '
          f'x{std["flops_analytic"] / sep["flops_analytic"]:.1f}, training throughput '
          f'x{std["train_img_s"] / sep["train_img_s"]:.2f}, batch-1 latency '
          f'x{std["latency_ms_b1"] / sep["latency_ms_b1"]:.2f}\n')


def dense_ds_gpu_table(root=ROOT) -> str:
  e = efficiency(root)
  runs = {c: train_log(root / 'results/dense_ds_gpu' / c) for c in ('separable', 'standard')}
  best = max(runs, key=lambda c: runs[c]['test']['accuracy'])
  rows = []
  for c, r in runs.items():
    t = r['test']
    rows.append([c, f'{e[c]["params"]:,.0f}', f'{e[c]["flops_analytic"] / 1e6:.0f} M',
                 bold(f'{pct(t["accuracy"], 2)}%', c == best),
                 *[f'{t[k]:.3f}' for k in ('macro_precision', 'macro_recall', 'macro_f1',
                                           'loss')],
                 f'{r["img_s"][-1]:,.0f}', f'{e[c]["train_img_s"]:.0f}',
                 f'{e[c]["infer_img_s"]:.0f}', f'{e[c]["train_step_peak_mib"]:,.0f} MiB'])
  return table(['conv', 'params', 'FLOPs / image', 'test accuracy', 'macro precision',
                'macro recall', 'macro F1', 'test loss', 'train img/s, H200 (last log)',
                'train img/s, 2-core CPU', 'inference img/s, CPU',
                'train-step peak memory, CPU'], rows)


# ---------------------------------------------------------------- headline


def mixed_runs(root: Path, config: str) -> dict[str, list[dict]]:
  """results/onednn/mixed: {dtype: its two rounds' benchmark JSON} of a config."""
  d = root / 'results/onednn/mixed'
  return {dt: [_json_last_line(d / f'{config}-{dt}-r{r}.txt') for r in (1, 2)]
          for dt in DTYPE_NAMES}


def vs_float32(runs: dict[str, list[dict]], dtype: str, key: str) -> float:
  """`dtype`'s figure `key` over float32's: the mean of the rounds' ratios."""
  return float(np.mean([a[key] / b[key] for a, b in zip(runs[dtype], runs['float32'])]))


MIXED_NAMES = (('cifar10', 'IsoVolNet'), ('cifar10_fast_cpu', 'FastCNN'),
               ('cifar10_isovolnet_seed', "the seed's IsoVolNet"),
               ('cifar10_resnet20', 'ResNet-20'))


def mixed_timed(root: Path, config: str) -> bool:
  """Whether results/onednn/mixed has `config`'s runs (its run.sh's CONFIGS)."""
  return (root / f'results/onednn/mixed/{config}-float32-r1.txt').exists()


def and_list(items: list[str]) -> str:
  """'a, b and c'."""
  return ', '.join(items[:-1]) + ' and ' + items[-1] if len(items) > 1 else ''.join(items)


def mixed_speedups(root=ROOT) -> str:
  """'1.15× (IsoVolNet), 1.56× (FastCNN) and ...': mixed_bfloat16's training
  img/s over float32's (results/onednn/mixed), each config timed there."""
  parts = [f"{ratio(vs_float32(mixed_runs(root, c), 'mixed_bfloat16', 'jax_train_img_s'))} "
           f'({name})' for c, name in MIXED_NAMES if mixed_timed(root, c)]
  return and_list(parts)


def auto_dtype_configs(root=ROOT) -> str:
  """'FastCNN, IsoVolNet and ...': the timed configs whose file sets dtype='auto'."""
  from isovolnet_jax import config_defaults  # pylint: disable=g-import-not-at-top
  names = [name for c, name in sorted(MIXED_NAMES, key=lambda x: x[0] != 'cifar10_fast_cpu')
           if config_defaults.load_config_file(str(root / f'configs/{c}.py')).dtype == 'auto']
  return and_list(names)


def fast_line(fast: dict) -> str:
  """The headline's FastCNN time to accuracy, float32 and the fastest other dtype."""
  if 'float32' not in fast:
    return 'FastCNN\'s time to accuracy: **no committed runs**'
  def one(dt):
    mins = stats([r['seconds'] / 60 for r in fast[dt]['runs']])
    return (f'**{pm(accuracies(fast[dt]), digits=2)}%** in '
            f'**{mins["test_accuracy"]:.2f} ± {mins["test_accuracy_std"]:.2f} min** '
            f'({DTYPE_NAMES[dt].split(" (")[0]})')
  others = [one(dt) for dt in fast if dt != 'float32']
  return (f'FastCNN, launch to exit on 2 CPU cores (EPYC, {len(fast["float32"]["runs"])} seeds): '
          + one('float32') + ''.join(f'; {o}' for o in others))


def precision_line(b: dict) -> str:
  """Each config's accuracy by dtype, one machine and commit a config."""
  parts = []
  for name, runs in (('FastCNN', b['fast']), ('IsoVolNet (10 epochs)', b['iso']),
                     ("the seed's IsoVolNet (10 epochs)", b['seed'])):
    if runs:
      parts.append(f'{name}: ' + ', '.join(
          f'{DTYPE_NAMES[dt].split(" (")[0]} {pm(accuracies(r), digits=2)}%'
          for dt, r in runs.items()))
  return '; '.join(parts) + ' (one machine, one kernel set; commits in the study)'


def headline(root=ROOT) -> str:
  e = equal_time(root)
  g = e['g']
  (d1, s1), (d2, s2) = e['params'], e['default']
  v = sweep_groups(root / 'results/isovolnet_variants')
  lr = sweep_groups(root / 'results/learning_rate')
  gpu = gpu_runs(root)
  sep, std = gpu['separable'], gpu['standard']
  s002 = gpu['seed002']
  o = onednn_summary(root)
  names = {'cifar10_fast_cpu': 'FastCNN', 'resnet20': 'ResNet-20', 'cifar10': 'IsoVolNet',
           'isovolnet_seed': 'the seed\'s IsoVolNet', 'mobilenet_v2': 'MobileNetV2',
           'dilated_ds': 'the dilated DS net', 'dense_ds': 'dense DS'}
  ups = [x['speedup'] for x in o.values() if x['speedup']]
  order = sorted(o, key=lambda f: -o[f]['train'])
  leads = sum(x['f32_ratio'] > 1 for x in o.values())
  b = bf16_runs(root)
  a = airbench_runs(root)
  to90 = [r['to_target_seconds']['0.9'] / 60 for r in a['seeds']]
  fb, fbd = full_budget(root), full_budget(root, FULL_BUDGET_DEFAULT)
  z = zoo_equal_time(root)
  zg, zw = z['g'], z['w']
  lr_best = max(lr.values(), key=lambda x: x['val_accuracy'])
  rows = [
      ['A trained model in minutes on a CPU?', fast_line(b['fast']),
       '[results/time_to_accuracy](results/time_to_accuracy/README.md)'],
      ['Seed 002: 85.84% under 200k parameters?',
       f'the {s002["params"]:,}-parameter dilated DS residual net: '
       f'**{pct(s002["test_accuracy"], 2)}%** ({s002["overrides"]["num_epochs"]} epochs, '
       f'{s002["train_time_s"]:.0f} s on one H200; one run)',
       '[results/seed002_gpu](results/seed002_gpu/README.md)'],
      ['Seed 000: does a constant H·W·C help?',
       f'**no** at equal parameters: at {EQUAL_TIME_S} s of CPU training the '
       f'channel-doubling net leads the seed\'s IsoVolNet by {d1:.2f} points '
       f'({pm(g["doubling_s61"])}% vs {pm(g["iso5"])}%, {d1 / s1:.1f} standard errors); '
       f'at the default\'s size IsoVolNet leads by {d2:.2f} points '
       f'({pm(g["iso4_avg_swish"])}% vs {pm(g["dbl4_s30_avg_swish"])}%, '
       f'{d2 / s2:.1f} SE)',
       '[results/isovolnet_equal_time](results/isovolnet_equal_time/README.md)'],
      ['The best IsoVolNet within the design',
       f'4 blocks, average pooling, swish: **{pm(v["iso4_avg_swish"])}%** at the same '
       f'{EQUAL_TIME_S} s (the seed\'s 5 blocks: {pm(g["iso5"])}%)',
       '[results/isovolnet_variants](results/isovolnet_variants/README.md)'],
      ['Seed 003: learning rate, batch, dropout, activation, optimizer (10 epochs)',
       f'the rate matters most: **{pm(lr_best)}%** at '
       f'{lr_best["overrides"]["optimizer.learning_rate"]:g} (now the default) vs '
       f'{pm(lr["learning_rate=0.002"])}% at 2e-3',
       '[results/learning_rate](results/learning_rate/README.md) and 4 more'],
      ['Seed 003: separable vs standard convs (dense DS net, '
       f'{sep["overrides"]["num_epochs"]} epochs, one run)',
       f'{pct(sep["test_accuracy"], 2)}% with {std["params"] / sep["params"]:.1f}× fewer '
       f'parameters vs {pct(std["test_accuracy"], 2)}%',
       '[results/dense_ds_gpu](results/dense_ds_gpu/README.md)'],
      ['JAX vs PyTorch on a CPU',
       f'with oneDNN\'s convolutions JAX trains the zoo {min(ups):.2f}-{max(ups):.2f}× '
       'faster than before; against PyTorch\'s fastest (bf16 autocast or compiled): ' +
       ', '.join(f'{names[f]} {best_train_ratios(o, f)}' for f in order) +
       f'; against PyTorch\'s float32 best, JAX\'s float32 leads on {leads} of the '
       f'{len(o)}; {auto_dtype_configs(root)} default to `dtype=\'auto\'`, on this CPU '
       f'bfloat16 convolutions with float32 elementwise work, which trains '
       f'{mixed_speedups(root)} float32\'s speed (results/onednn/mixed)',
       '[results/onednn](results/onednn/README.md)'],
      ['bfloat16 on a CPU: the same accuracy?', precision_line(b),
       '[results/bf16](results/bf16/README.md)'],
      ['airbench94 (the fastest published recipe) ported: 94%?',
       f'**{pm(a["bf16"], digits=2)}%** test accuracy (the JPEG copy\'s test images) '
       f'at its 9.9 epochs in bfloat16 ({a["bf16"]["n"]} seeds; '
       f'{pct(a["f32"]["final_test_accuracy_6view"], 2)}% float32, one), 90% after '
       f'{min(to90):.1f}-{max(to90):.1f} min on 2 CPU cores (alone); this repository\'s '
       f'own PyTorch rewrite of airbench94 (same loader) gets '
       f'{pct(a["torch"]["tta_accuracy"], 2)}% on these images (one seed), and the '
       f'original script on one H200 {ISSUE_AIRBENCH94_H200} (reported in the issue '
       f'tracker, no committed run), against the published {PUBLISHED_AIRBENCH94}% on '
       'official CIFAR-10: the gap is most likely the JPEG copy\'s',
       '[results/airbench](results/airbench/README.md)'],
      ['IsoVolNet at its full budget (100 epochs)',
       f'today\'s default: **{pm(stats(fbd["test"]), digits=2)}%** test accuracy '
       f'(6-view TTA, {len(fbd["test"])} seed{"s" if len(fbd["test"]) > 1 else ""}, '
       f'float32), {int(zg["isovolnet_tricks"]["params"]):,} parameters; the default '
       f'of 2026-12-03 (label smoothing 0.2, lookahead): {pm(stats(fb["test"]), digits=2)}% '
       f'({len(fb["test"])} seeds)',
       '[results/isovolnet_full_budget](results/isovolnet_full_budget/README.md)'],
      ['airbench\'s tricks on the zoo, at equal time',
       f'the 6-view TTA transfers: IsoVolNet **{pm(z["iso6"], digits=2)}%** '
       f'at {EQUAL_TIME_S} s of CPU training with it, the default '
       f'({pm(zg["isovolnet"], digits=2)}% one view), FastCNN '
       f'{pm(z["fast6"], digits=2)}% with it ({pm(zg["fast_cnn"], digits=2)}% one view); '
       'label smoothing 0.2 and lookahead lose in every seed '
       '([docs/defaults.md](docs/defaults.md)); the whitening stem: IsoVolNet '
       f'{pm(zw["isovolnet_whiten3"], digits=2)}% (3 blocks) and '
       f'{pm(zw["isovolnet_whiten2"], digits=2)}% (2 blocks), FastCNN '
       f'{pm(zw["fast_cnn_whiten"], digits=2)}% (against '
       f'{pm(zg["fast_cnn_tricks"], digits=2)}% without)',
       '[results/airbench/zoo](results/airbench/zoo/README.md)'],
      ['The zoo on one picture', 'accuracy vs parameters and vs CPU training time',
       '[results/zoo](results/zoo/README.md)'],
  ]
  return table(['question', 'answer', 'study'], rows)


# ---------------------------------------------------------------- results/README.md


def efficiency(root=ROOT) -> dict[str, dict]:
  import csv  # pylint: disable=g-import-not-at-top
  with (root / 'results/efficiency_dense_ds/efficiency.csv').open() as f:
    return {r['conv']: {k: float(v) for k, v in r.items() if k not in ('model', 'conv')}
            for r in csv.DictReader(f)}


def index(root=ROOT) -> str:
  r = root / 'results'
  e = equal_time(root)
  g = e['g']
  (d1, s1), (d2, s2) = e['params'], e['default']
  v = sweep_groups(r / 'isovolnet_variants')
  lr = sweep_groups(r / 'learning_rate')
  bs = sweep_groups(r / 'batch_size')
  do = sweep_groups(r / 'dropout')
  act = sweep_groups(r / 'activation')
  opt = sweep_groups(r / 'optimizer')
  zet = sweep_groups(r / 'zoo_equal_time')
  gpu = gpu_runs(root)
  sep, std, s002 = gpu['separable'], gpu['standard'], gpu['seed002']
  eff = efficiency(root)
  o = onednn_summary(root)
  names = dict(ONEDNN)
  b = bf16_runs(root)
  a = airbench_runs(root)
  fb, fbd = full_budget(root), full_budget(root, FULL_BUDGET_DEFAULT)
  z = zoo_equal_time(root)
  zg = z['g']
  best = lambda gs: max(gs.values(), key=lambda x: x['val_accuracy'])
  lr_best, bs_best, do_best = best(lr), best(bs), best(do)
  do_cost = 100 * (do['dropout=0.0']['test_accuracy'] - do['dropout=0.5']['test_accuracy'])
  short = lambda n: n.replace('learning_rate=', '').split(',name=')[-1] if ',name=' in n else n
  cpu, epyc, h200 = '2-core CPU (Xeon)', '2-core CPU (EPYC)', 'H200'
  rows = [
      ['[seed002_gpu](seed002_gpu/README.md)',
       'seed 002: the dilated DS residual net under 200k parameters reaches 85.84%?',
       f'{pct(s002["test_accuracy"], 2)}% at {s002["overrides"]["num_epochs"]} epochs '
       '(one run)', h200],
      ['[isovolnet_equal_time](isovolnet_equal_time/README.md)',
       'seed 000: does a constant H·W·C help, at equal training time?',
       f'no at equal parameters: the doubling net leads by {d1:.2f} points '
       f'({pm(g["doubling_s61"])}% vs {pm(g["iso5"])}%, {d1 / s1:.1f} SE); at the '
       f'default\'s size IsoVolNet leads by {d2:.2f} ({d2 / s2:.1f} SE)', cpu],
      ['[isovolnet_variants](isovolnet_variants/README.md)',
       'the best IsoVolNet within the design, same time',
       f'average pooling + swish: {pm(v["iso4_avg_swish"])}% '
       f'(4-block base {pm(g["iso4"])}%)', cpu],
      ['[dense_ds_gpu](dense_ds_gpu/README.md)',
       f'seed 003: the dense DS net, separable vs standard '
       f'({sep["overrides"]["num_epochs"]} epochs)',
       f'{pct(sep["test_accuracy"], 2)}% vs {pct(std["test_accuracy"], 2)}% '
       '(one run each)', h200],
      ['[efficiency_dense_ds](efficiency_dense_ds/README.md)',
       'the same two nets: parameters, FLOPs, CPU speed, memory',
       f'separable: {eff["standard"]["params"] / eff["separable"]["params"]:.1f}× '
       f'smaller, {eff["standard"]["flops_analytic"] / eff["separable"]["flops_analytic"]:.1f}× '
       f'fewer FLOPs, {eff["separable"]["train_img_s"]:.0f} vs '
       f'{eff["standard"]["train_img_s"]:.0f} train img/s', cpu],
      ['[learning_rate](learning_rate/README.md)', 'seed 003: AdamW peak rate at 10 epochs',
       f'{pm(lr_best)}% at {lr_best["overrides"]["optimizer.learning_rate"]:g} '
       f'(base 0.002: {pm(lr["learning_rate=0.002"])}%)', cpu],
      ['[batch_size](batch_size/README.md)', 'seed 003: batch size at 10 epochs',
       f'{pm(bs_best)}% at {bs_best["overrides"]["batch_size"]}', cpu],
      ['[dropout](dropout/README.md)', 'seed 003: dropout at 10 epochs',
       f'{"none" if do_best["name"] == "dropout=0.0" else do_best["name"]} is best; '
       f'0.5 costs {do_cost:.1f} points', cpu],
      ['[activation](activation/README.md)', 'seed 003: activation at 10 epochs',
       ', '.join(f'{n.split("=")[1]} {pm(x)}%' for n, x in act.items()), cpu],
      ['[optimizer](optimizer/README.md)', 'seed 003: SGD, Adam, RMSprop at 10 epochs',
       ', '.join(f'{short(n)} {pm(x)}%' for n, x in opt.items()), cpu],
      ['[zoo_equal_time](zoo_equal_time/README.md)',
       'SimpleCNN and MobileNetV2 at the equal training time',
       ', '.join(f'{n} {pm(x)}%' for n, x in zet.items()), cpu],
      ['[onednn](onednn/README.md)',
       'oneDNN convolutions in JAX: training and inference speed against PyTorch\'s '
       'fastest, per-op profile, a step\'s memory',
       'training, best JAX / best PyTorch: ' + ', '.join(
           f'{names[f].split(",")[0] if f != "isovolnet_seed" else "seed IsoVolNet"} '
           f'{best_train_ratios(o, f)}' for f in sorted(o, key=lambda f: -o[f]['train'])),
       epyc],
      ['[time_to_accuracy](time_to_accuracy/README.md)',
       'FastCNN\'s minutes and accuracy on 2 CPU cores, launch to exit, by dtype',
       fast_line(b['fast']), epyc],
      ['[bf16](bf16/README.md)', 'bfloat16 training: the float32 accuracy?',
       precision_line(b), epyc],
      ['[airbench](airbench/README.md)',
       'airbench94 ported: its accuracy at 9.9 epochs, time to accuracy, each trick\'s worth',
       f'{pm(a["bf16"], digits=2)}% bf16 ({a["bf16"]["n"]} seeds) / '
       f'{pct(a["f32"]["final_test_accuracy_6view"], 2)}% f32; this repository\'s PyTorch '
       f'rewrite on the same images {pct(a["torch"]["tta_accuracy"], 2)}% (one seed)', epyc],
      ['[isovolnet_full_budget](isovolnet_full_budget/README.md)',
       'IsoVolNet\'s default at 100 epochs: today\'s, and that of 2026-12-03 (label '
       'smoothing 0.2, lookahead)',
       f'{pm(stats(fbd["test"]), digits=2)}% ({len(fbd["test"])} seeds) / '
       f'{pm(stats(fb["test"]), digits=2)}% (6 views, {len(fb["test"])} seeds)', epyc],
      ['[airbench/zoo](airbench/zoo/README.md)',
       'airbench\'s tricks (label smoothing, lookahead, 6-view TTA, whitening stem) on '
       'IsoVolNet, FastCNN and the dilated DS net at equal time',
       f'the TTA transfers: IsoVolNet {pm(z["iso6"], digits=2)}% at '
       f'{EQUAL_TIME_S} s with it, the default; label smoothing 0.2, lookahead and the '
       'whitening stem do not help (the study, ../docs/defaults.md)', epyc],
      ['[zoo](zoo/README.md)', 'every model: accuracy vs parameters and vs CPU time',
       'the picture', '(reads the others)'],
      ['[speed](speed/README.md)', 'JAX vs PyTorch training and inference speed, before '
       'oneDNN', 'superseded by [onednn](onednn/README.md)', cpu],
  ]
  return table(['study', 'question', 'headline', 'machine'], rows)


# ---------------------------------------------------------------- registry


# ---------------------------------------------------------------- the loop against the step


LOOP_CONFIGS = (('cifar10_airbench94', 'airbench94'), ('cifar10_fast_cpu', 'FastCNN'),
                ('cifar10', 'IsoVolNet (default)'))


def loop_step_table(root=ROOT) -> str:
  """One row per run (results/loop_step/CONFIG-{on,off}-ROUND.txt)."""
  rows = []
  for config, label in LOOP_CONFIGS:
    for resident, how in (('on', "on the devices ('on')"),
                          ('off', "host-fed, prefetch thread ('off', auto on CPU)")):
      for f in sorted((root / 'results/loop_step').glob(f'{config}-{resident}-*.txt')):
        loop = _json_last_line(f)['loop']
        rows.append([label, how, f.stem.rsplit('-', 1)[1], str(loop['steps']),
                     f'{loop["img_s"]:,.0f}', f'{loop["step_img_s"]:,.0f}',
                     f'{100 * loop["ratio"]:.1f}%'])
  return table(['config', 'training split', 'round', 'loop steps', 'loop img/s',
                'step img/s', 'loop / step'], rows)


def ab_native_table(root=ROOT) -> str:
  d = root / 'results/onednn/ab_native'
  rows = []
  for config, label in (('cifar10', 'IsoVolNet (default)'), ('cifar10_fast_cpu', 'FastCNN')):
    for variant in ('float32:onednn', 'bfloat16:onednn'):
      cells = {}
      for side in ('old', 'new'):
        runs = [_json_last_line(f)['jax_variants'][variant]
                for f in sorted(d.glob(f'{config}-{side}-*.txt'))]
        cells[side] = runs
      if not cells['old'] or not cells['new']:
        continue
      fmt = lambda runs, k: ' / '.join(f'{r[k]:,.0f}' for r in runs)
      mean = lambda runs, k: sum(r[k] for r in runs) / len(runs)
      rows.append([label, variant.split(':')[0],
                   fmt(cells['old'], 'train'), fmt(cells['new'], 'train'),
                   ratio(mean(cells['new'], 'train') / mean(cells['old'], 'train')),
                   fmt(cells['old'], 'infer'), fmt(cells['new'], 'infer'),
                   ratio(mean(cells['new'], 'infer') / mean(cells['old'], 'infer'))])
  return table(['config', 'dtype', 'train img/s before', 'after', 'after/before',
                'infer img/s before', 'after', 'after/before'], rows)


def before_after_steps(d: Path, stems) -> str:
  """A before -> after study's whole steps (bench.benchmark JSON in
  d/STEM-{before,after}-rROUND.txt), by round, for each (label, STEM)."""
  rows = []
  for where, stem in stems:
    runs = {side: [_json_last_line(f) for f in sorted(d.glob(f'{stem}-{side}-r*.txt'))]
            for side in ('before', 'after')}
    if not runs['before'] or not runs['after']:
      continue
    for step, key in (('training', 'jax_train_img_s'), ('inference', 'jax_infer_img_s')):
      mean = lambda side: float(np.mean([r[key] for r in runs[side]]))
      wins = sum(a[key] > b[key] for a, b in zip(runs['after'], runs['before']))
      rows.append([f'{where}: {step}', *[' / '.join(f'{r[key]:,.0f}' for r in runs[side])
                                         for side in ('before', 'after')],
                   f"**{ratio(mean('after') / mean('before'))}**",
                   f"{wins} of {len(runs['after'])}"])
  return table(['model, where: step', 'img/s before (by round)', 'after',
                'after/before (means)', 'rounds after is faster'], rows)


def layer_choices_table(root=ROOT) -> str:
  """results/onednn/layer_choices: IsoVolNet's steps before and after, by
  round, on 2 CPU devices and on one core; the dense DS net's on 2 devices."""
  return before_after_steps(root / 'results/onednn/layer_choices', (
      ('IsoVolNet, 2 devices', 'cifar10'), ('IsoVolNet, 1 core', 'cifar10-1core'),
      ('dense DS net, 2 devices', 'cifar10_dense_ds')))


def narrow_batch_norm_table(root=ROOT) -> str:
  """results/onednn/narrow_batch_norm: IsoVolNet's steps before and after."""
  return before_after_steps(root / 'results/onednn/narrow_batch_norm', (
      ('IsoVolNet, 2 devices', 'cifar10'), ('IsoVolNet, 1 core', 'cifar10-1core')))


def narrow_batch_norm_again(root=ROOT) -> str:
  """results/onednn/narrow_batch_norm/with_bit_casts: the same change again,
  on top of the bit casts (before d98eb17, after f7c8837)."""
  return before_after_steps(root / 'results/onednn/narrow_batch_norm/with_bit_casts', (
      ('IsoVolNet, 2 devices', 'cifar10'), ('IsoVolNet, 1 core', 'cifar10-1core'),
      ("the seed's IsoVolNet, 2 devices", 'cifar10_isovolnet_seed')))


def narrow_batch_norm_layers(root=ROOT) -> str:
  """results/onednn/narrow_batch_norm: training BatchNorm + swish, flax's
  against the (N, H, W*C) view (commit 35953e6's layers.BatchNormAct)."""
  r = _json_last_line(root / 'results/onednn/narrow_batch_norm/layer_choices.txt')
  rows = []
  for p in r['narrow_batch_norm']:
    a, b = p['flax'], p['wide_view']
    rows.append(['×'.join(map(str, p['shape'][1:])),
                 f"{a['forward_ms']:.3f} → {b['forward_ms']:.3f}",
                 f"{a['forward_backward_ms']:.3f} → {b['forward_backward_ms']:.3f}",
                 ratio(a['forward_backward_ms'] / b['forward_backward_ms'])])
  return table(['input (H×W×C)', "forward ms: flax's → the view", 'forward + backward ms',
                'forward + backward speed-up'], rows)


def bit_casts_table(root=ROOT) -> str:
  """results/onednn/bit_casts: the 'auto' configs' steps before and after the
  mixed policy's casts became bit operations (models/bf16_casts.py)."""
  return before_after_steps(root / 'results/onednn/bit_casts', (
      ('IsoVolNet, 2 devices', 'cifar10'), ('IsoVolNet, 1 core', 'cifar10-1core'),
      ('FastCNN, 2 devices', 'cifar10_fast_cpu'),
      ("the seed's IsoVolNet, 2 devices", 'cifar10_isovolnet_seed'),
      ('ResNet-20, 2 devices', 'cifar10_resnet20')))


def fused_stem_table(root=ROOT) -> str:
  """results/onednn/fused_inference/stem: FastCNN's steps before and after its
  stem became one oneDNN call in inference (training: a control)."""
  return before_after_steps(root / 'results/onednn/fused_inference/stem', (
      ('FastCNN, 2 devices', 'cifar10_fast_cpu'), ('FastCNN, 1 core', 'cifar10_fast_cpu-1core')))


def bit_casts_micro(root=ROOT) -> str:
  """results/onednn/bit_casts: astype against the bit casts, alone and at the
  end of a fusion (bench.layer_choices --choices=casts)."""
  r = _json_last_line(root / 'results/onednn/bit_casts/layer_choices.txt')
  rows = []
  for p in r['casts']:
    a, b = p['astype'], p['bits']
    rows.append(['×'.join(map(str, p['shape'][1:])),
                 *[f"{a[k]:.3f} → {b[k]:.3f}"
                   for k in ('to_bfloat16', 'to_float32', 'norm_swish_to_bfloat16')]])
  return table(['input (H×W×C)', 'float32 → bfloat16 ms: astype → bits', 'bfloat16 → float32',
                'BatchNorm + swish, then to bfloat16'], rows)


NARROW_VIEW_CASES = (
    ('nhwc', '(N, H, W, C) in and out, as the model computes it'),
    ('view_tiles_given', '(N, H, W·C) in and out, the per-channel vectors tiled as inputs'),
    ('view_tiled_inside', '(N, H, W·C), the vectors tiled inside the function'),
    ('view_back_to_nhwc', '(N, H, W·C), tiles as inputs, the result reshaped back to (N, H, W, C)'),
    ('wide_4x4x768', 'for comparison: 4×4×768, the same number of values, (N, H, W, C)'))


def narrow_views_table(root=ROOT) -> str:
  """results/onednn/narrow_batch_norm/views.txt: BatchNorm + swish of
  32x32x12 written four ways, and 4x4x768 (bench.layer_choices
  --choices=narrow_views)."""
  r = _json_last_line(root / 'results/onednn/narrow_batch_norm/views.txt')['narrow_views']
  return table(['BatchNorm + swish of a bf16 32×32×12 conv output, float32 out', 'ms',
                'speed-up over the (N, H, W, C) form'],
               [[label, f'{r[k]:.3f}', ratio(r['nhwc'] / r[k])] for k, label in NARROW_VIEW_CASES])


def layer_choices_pooling(root=ROOT) -> str:
  """results/onednn/layer_choices: 2x2 average pooling, reshape + mean against
  the four phases (bench.layer_choices)."""
  r = _json_last_line(root / 'results/onednn/layer_choices/layer_choices.txt')
  rows = []
  for p in r['pooling']:
    a, b = p['reshape_mean'], p['phases']
    rows.append(['×'.join(map(str, p['shape'][1:])), p['dtype'],
                 f"{a['forward_ms']:.3f} → {b['forward_ms']:.3f}",
                 f"{a['forward_backward_ms']:.3f} → {b['forward_backward_ms']:.3f}"])
  return table(['input (H×W×C)', 'dtype', 'forward ms: reshape + mean → phases',
                'forward + backward ms'], rows)


def layer_choices_swish(root=ROOT) -> str:
  """results/onednn/layer_choices: a depthwise conv's swish as oneDNN's
  post-op or in XLA after the call, and which one layers takes."""
  from isovolnet_jax.models import layers
  r = _json_last_line(root / 'results/onednn/layer_choices/layer_choices.txt')
  rows = []
  for p in r.get('narrow_swish', []):
    c = p['shape'][3]
    xla = c <= layers._SWISH_IN_XLA_MAX_CHANNELS
    cell = lambda ms, bold: f'**{ms:.3f}**' if bold else f'{ms:.3f}'
    rows.append(['×'.join(map(str, p['shape'][1:])), cell(p['post_op_ms'], not xla),
                 cell(p['xla_after_ms'], xla), 'XLA after the call' if xla else 'post-op'])
  return table(['input (H×W×C)', 'post-op ms', 'XLA after the call ms', 'layers takes'], rows)


# ---------------------------------------------------------------- docs/defaults.md


def default_rule(root=ROOT) -> str:
  """docs/defaults.md's rule applied to airbench/zoo/equal_time's evaluations:
  each change against the default of then, seed by seed, in points."""
  study = root / 'results/airbench/zoo/equal_time'
  read = lambda name: json.loads((study / name).read_text())
  seeds = (0, 1, 2)
  # (net, change, evaluated on, the change's accuracies, the default's).
  arms = [
      ('IsoVolNet', 'label smoothing 0.2 (from 0.1) + lookahead', 'test, 6 views',
       [read(f'isovolnet_tricks,seed={s}/result.json')['test_accuracy'] for s in seeds],
       [read(f'eval_airbench6,isovolnet,seed={s}.json')['test_accuracy_airbench6']
        for s in seeds]),
      ('IsoVolNet', '6 views (from one)', 'test',
       [read(f'eval_airbench6,isovolnet,seed={s}.json')['test_accuracy_airbench6']
        for s in seeds],
       [read(f'isovolnet,seed={s}/result.json')['test_accuracy'] for s in seeds]),
      ('FastCNN', 'lookahead', 'test, 6 views',
       [read(f'fast_cnn_tricks,seed={s}/result.json')['test_accuracy'] for s in seeds],
       [read(f'eval_airbench6,fast_cnn,seed={s}.json')['test_accuracy_airbench6']
        for s in seeds]),
      ('FastCNN', '6 views (from the mirror pair)', 'validation',
       [read(f'eval_flip,fast_cnn,seed={s}.json')['val_accuracy_airbench6'] for s in seeds],
       [read(f'eval_flip,fast_cnn,seed={s}.json')['val_accuracy_flip'] for s in seeds]),
  ]
  rows = []
  for net, change, split, new, old in arms:
    gains = [100 * (a - b) for a, b in zip(new, old)]
    spread = 100 * float(np.std(old, ddof=1))
    on = all(g > spread for g in gains)
    rows.append([net, change, split, *(f'{g:+.2f}' for g in gains), f'{spread:.2f}',
                 bold('on', on) if on else 'off'])
  return table(['net', 'change', 'evaluated on', 'seed 0', 'seed 1', 'seed 2',
                "the default's spread", 'rule'], rows)


# ---------------------------------------------------------------- README.md's configs

# README's order: the default first, then by model family.
CONFIG_ORDER = ('cifar10', 'cifar10_isovolnet_seed', 'cifar10_isovolnet_standard',
                'cifar10_isovolnet_doubling', 'cifar10_dilated_ds', 'cifar10_dense_ds',
                'cifar10_mobilenet_v2', 'imagenet_mobilenet_v2', 'cifar10_resnet20',
                'cifar10_simple_cnn', 'cifar10_fast_cpu', 'cifar10_airbench94',
                'cifar10_airbench95', 'cifar10_airbench94_muon', 'smoke')


def configs_table(root=ROOT) -> str:
  """Every configs/*.py: its docstring's first paragraph, and its model's
  parameters on the config's own input shape and classes (counted abstractly,
  jax.eval_shape: nothing is initialised)."""
  import ast  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from isovolnet_jax import config_defaults, models, summary  # pylint: disable=g-import-not-at-top
  found = sorted(p.stem for p in (root / 'configs').glob('*.py'))
  rows = []
  for name in [n for n in CONFIG_ORDER if n in found] + [n for n in found
                                                          if n not in CONFIG_ORDER]:
    path = root / 'configs' / f'{name}.py'
    doc = ast.get_docstring(ast.parse(path.read_text())) or ''
    config = config_defaults.load_config_file(str(path))
    shape = summary.default_input_shape(config)
    classes = summary.default_num_classes(config)
    model = models.create_model(config.model, classes, jnp.float32)
    variables = jax.eval_shape(lambda m=model, s=shape: m.init(
        jax.random.key(0), jnp.zeros((1, *s)), train=False))
    params = sum(math.prod(v.shape) for v in jax.tree.leaves(variables['params']))
    rows.append([f'`configs/{name}.py`', ' '.join(doc.split('\n\n')[0].split()),
                 f'{params:,}', f'{shape[0]}×{shape[1]}, {classes}'])
  return table(['config', 'what it trains', 'params', 'input, classes'], rows)


def onednn_thread_policies(root=ROOT) -> str:
  """results/onednn/threads: train / infer img/s by policy, both rounds."""
  d = root / 'results/onednn/threads'
  rows = []
  for config, name in (('cifar10', 'IsoVolNet'), ('cifar10_fast_cpu', 'FastCNN')):
    for devices in (1, 2):
      for variant in ('float32:onednn', 'bfloat16:onednn'):
        cells = []
        for key in ('train', 'infer'):
          for policy in ('fixed', 'budget'):
            vals = [_json_last_line(d / f'{config}-d{devices}-{policy}-{r}.txt')
                    ['jax_variants'][variant][key] for r in (1, 2)]
            cells.append(' / '.join(f'{v:,.0f}' for v in vals))
        rows.append([name, str(devices), variant.split(':')[0], *cells])
  return table(['config', 'CPU devices', 'dtype', 'train, fixed', 'train, budget',
                'infer, fixed', 'infer, budget'], rows)



def onednn_mixed(root=ROOT) -> str:
  """results/onednn/mixed: img/s by dtype, both rounds, and the mean ratio of
  the rounds to float32's."""
  rows = []
  for config, name in MIXED_NAMES:
    if not mixed_timed(root, config):
      continue
    runs = mixed_runs(root, config)
    for i, (dt, rounds) in enumerate(runs.items()):
      cells = []
      for key in ('jax_train_img_s', 'jax_infer_img_s'):
        cells += [' / '.join(f'{x[key]:,.0f}' for x in rounds),
                  ratio(vs_float32(runs, dt, key))]
      rows.append([f'`{config}` ({name})' if i == 0 else '', dt, *cells])
  return table(['config', 'dtype', 'train img/s (round 1 / 2)', '× float32',
                'infer img/s (round 1 / 2)', '× float32'], rows)


FUSED_INFERENCE_CONFIGS = (
    ('cifar10', 'IsoVolNet, 4 blocks'), ('cifar10_fast_cpu', 'FastCNN'),
    ('cifar10_resnet20', 'ResNet-20'), ('cifar10_isovolnet_seed', "IsoVolNet, the seed's 5 blocks"),
    ('cifar10_mobilenet_v2', 'MobileNetV2'), ('cifar10_dilated_ds', 'dilated DS net'),
    ('cifar10_dense_ds', 'dense DS net'))


def onednn_fused_inference(root=ROOT) -> str:
  """results/onednn/fused_inference: inference img/s with the separate
  modules and with one oneDNN call a ConvNormAct, same process, by round."""
  d = root / 'results/onednn/fused_inference'
  rows = []
  for config, name in FUSED_INFERENCE_CONFIGS:
    path = d / f'{config}.txt'
    if not path.exists():
      continue
    r = _json_last_line(path)
    cell = lambda k: ' / '.join(f'{x:,.0f}' for x in r['rounds'][k])
    rows.append([f'`{config}` ({name})', r['variant'].split(':')[0],
                 str(r['fused_calls_per_batch']), cell('unfused'), cell('fused'),
                 f"**{ratio(r['fused_over_unfused'])}**",
                 f"{r['max_abs_logit_diff'] / r['max_abs_logit']:.1e}"])
  return table(['config', 'dtype', 'fused calls a batch', 'unfused img/s by round',
                'fused img/s by round', 'fused / unfused (medians)',
                'max abs logit difference / max abs logit'], rows)


def precision_rule(root=ROOT) -> str:
  """docs/defaults.md's precision rule on each net: mixed_bfloat16's accuracy
  against float32's mean and spread (3 seeds, one machine and commit each),
  and its training speed against float32's (results/onednn/mixed)."""
  b = bf16_runs(root)
  rows = []
  for key, config, name in BF16_NETS:
    if len(b[key]) < 2 or not mixed_timed(root, config):
      continue  # Not measured.
    f32, mixed = accuracies(b[key]['float32']), accuracies(b[key]['mixed_bfloat16'])
    gap = mixed['test_accuracy'] - f32['test_accuracy']
    holds = abs(gap) <= f32['test_accuracy_std']
    speed = vs_float32(mixed_runs(root, config), 'mixed_bfloat16', 'jax_train_img_s')
    rows.append([name, pm(f32, digits=2) + '%', pm(mixed, digits=2) + '%',
                 f'{100 * gap:+.2f}', pct(f32['test_accuracy_std'], 2),
                 'yes' if holds else 'no', ratio(speed),
                 '**auto**' if holds and speed > 1 else 'float32'])
  return table(['net', 'float32 test accuracy', 'mixed_bfloat16', 'difference (points)',
                'float32 spread', 'accuracy holds', 'mixed train × float32', 'config dtype'],
               rows)


def onednn_profile_dtypes(root=ROOT) -> str:
  """results/onednn/profile/dtypes: JAX's per-op ms by dtype, and the
  elementwise share (BatchNorm + the rest) of the whole forward + backward."""
  rows = []
  for config, name in (('cifar10', 'IsoVolNet (`cifar10`), batch 128'),
                       ('cifar10_fast_cpu', 'FastCNN (`cifar10_fast_cpu`), batch 32')):
    for i, dt in enumerate(DTYPE_NAMES):
      text = (root / f'results/onednn/profile/dtypes/profile_{config}_{dt}.txt').read_text()
      kinds, whole, rest = _jax_profile(text)
      whole, rest = float(whole), float(rest)
      conv = kinds['Conv'] + kinds.get('Conv grouped', 0)
      elementwise = kinds['BatchNorm'] + rest
      rows.append([name if i == 0 else '', dt, f'{conv:.1f}', f'{kinds["BatchNorm"]:.1f}',
                   f'{rest:.1f}', f'**{whole:.1f}**', f'{100 * elementwise / whole:.0f}%'])
  return table(['config', 'dtype', 'conv', 'BatchNorm', 'rest*', '**whole**',
                'elementwise share (BatchNorm + rest)'], rows)


TABLES: dict[str, Callable[[Path], str]] = {
    'loop_step': loop_step_table,
    'onednn.ab_native': ab_native_table,
    'onednn.layer_choices': layer_choices_table,
    'onednn.layer_choices_pooling': layer_choices_pooling,
    'onednn.layer_choices_swish': layer_choices_swish,
    'onednn.narrow_batch_norm': narrow_batch_norm_table,
    'onednn.narrow_batch_norm_layers': narrow_batch_norm_layers,
    'onednn.narrow_batch_norm_again': narrow_batch_norm_again,
    'onednn.bit_casts': bit_casts_table,
    'onednn.bit_casts_micro': bit_casts_micro,
    'onednn.narrow_views': narrow_views_table,
    'headline': headline,
    'index': index,
    'isovolnet_equal_time': equal_time_main,
    'isovolnet_equal_time.default': equal_time_default,
    'isovolnet_equal_time.verdict': equal_time_verdict,
    'airbench.full_budget': airbench_full_budget,
    'airbench.per_epoch': airbench_per_epoch,
    'airbench.ablation': airbench_ablation,
    'onednn': onednn_table,
    'onednn.threads': onednn_threads,
    'onednn.thread_policies': onednn_thread_policies,
    'onednn.mixed': onednn_mixed,
    'onednn.fused_inference': onednn_fused_inference,
    'onednn.fused_stem': fused_stem_table,
    'onednn.profile_dtypes': onednn_profile_dtypes,
    'bf16': bf16_table,
    'time_to_accuracy': time_to_accuracy_table,
    'isovolnet_full_budget': full_budget_table,
    'isovolnet_full_budget.default': full_budget_default_table,
    'isovolnet_full_budget.compare': full_budget_compare,
    'default_rule': default_rule,
    'precision_rule': precision_rule,
    'configs': configs_table,
    'learning_rate': lr_table,
    'batch_size': batch_table,
    'dropout': dropout_table,
    'activation': activation_table,
    'optimizer': optimizer_table,
    'isovolnet_variants': variants_table,
    'zoo_equal_time': zoo_equal_time_table,
    'airbench.zoo.equal_time': zoo_equal_time_tricks,
    'airbench.zoo.whiten': zoo_whiten,
    'airbench.zoo.dilated': zoo_dilated,
    'airbench.zoo.two_views': zoo_two_views,
    'airbench.zoo.isovolnet': zoo_isovolnet,
    'airbench.zoo.budget_dilated': zoo_budget_dilated,
    'airbench.zoo.budget_whiten': zoo_budget_whiten,
    'onednn.profile': onednn_profile,
    'onednn.memory': onednn_memory,
    'seed002_gpu': seed002_table,
    'efficiency_dense_ds': efficiency_table,
    'dense_ds_gpu': dense_ds_gpu_table,
}


def render_text(text: str, root: Path = ROOT, cache: dict | None = None) -> str:
  """TEXT with every marked table replaced by what the data gives."""
  cache = {} if cache is None else cache
  def sub(m):
    name = m['name']
    if name not in TABLES:
      raise KeyError(f'no table named {name!r} (known: {", ".join(sorted(TABLES))})')
    if name not in cache:
      cache[name] = TABLES[name](root).rstrip('\n') + '\n'
    return m.group(1) + cache[name] + m.group(4)
  return MARKER.sub(sub, text)


def markdown_files(root: Path = ROOT) -> list[Path]:
  files = []
  for pattern in DOCS:
    files += sorted(p for p in root.glob(pattern) if p.is_file())
  return files


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--check', action='store_true',
                      help='write nothing; exit 1 and print the diff where a table is stale')
  parser.add_argument('--root', type=Path, default=ROOT,
                      help='the repository whose run files the tables read')
  parser.add_argument('files', nargs='*', type=Path,
                      help='Markdown files (default: README.md, docs/performance.md, '
                           'results/**/README.md)')
  args = parser.parse_args(argv)
  files = args.files or markdown_files(args.root)
  cache, stale, used = {}, [], set()
  for f in files:
    old = f.read_text()
    used |= {m['name'] for m in MARKER.finditer(old)}
    new = render_text(old, args.root, cache)
    if new == old:
      continue
    stale.append(f)
    if args.check:
      sys.stdout.writelines(difflib.unified_diff(
          old.splitlines(True), new.splitlines(True), f'{f} (committed)',
          f'{f} (from the run files)'))
    else:
      f.write_text(new)
  if not args.files and (unused := sorted(set(TABLES) - used)):
    print(f'tables placed in no file: {", ".join(unused)}', file=sys.stderr)
  verb = 'stale' if args.check else 'rewritten'
  print(f'{len(used)} tables in {len(files)} files; {len(stale)} {verb}'
        + (': ' + ', '.join(map(str, stale)) if stale else ''), file=sys.stderr)
  return 1 if args.check and stale else 0


if __name__ == '__main__':
  sys.exit(main())
