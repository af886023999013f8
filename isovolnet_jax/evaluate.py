r"""Evaluates a trained run: `python -m isovolnet_jax.evaluate --workdir=DIR`.

  python -m isovolnet_jax.evaluate --workdir=runs/cifar10 [--split=test|val] \
    [--checkpoint=latest|best|STEP] [--config.KEY=VALUE ...]

The run's own config (DIR/config.json) is restored and the `--config.` flags
are applied on top of it, so `--config.data.path=OTHER` evaluates the model on
another image folder: the same class folders or a subset of them, under
test/ (data.memory.load also reads its train/, which needs one image or more).
Prints one JSON object as the last line of stdout (accuracy, loss, macro and
per-class precision/recall/F1, confusion matrix) and writes DIR/eval/:
<split>.json, <split>_predictions.csv, <split>_confusion_matrix.png and
<split>_misclassified.png. Notebooks call `evaluate_run`, or `predict_split`
and `report` to see the predictions too. The model runs through
`inference.logits`, as in `predict`.
"""

import csv
import dataclasses
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from isovolnet_jax import cli

if __name__ == '__main__':
  cli.use_tcmalloc()  # Before JAX starts.

# TensorFlow (used only to read data) need not log its C++ start-up banner.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app
from absl import flags
from absl import logging
import jax
import matplotlib
import numpy as np

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from isovolnet_jax import checkpointing
from isovolnet_jax import config_defaults
from isovolnet_jax import inference
from isovolnet_jax.data import memory
from isovolnet_jax import logs
from isovolnet_jax import losses as losses_lib
from isovolnet_jax import metrics
from isovolnet_jax import models
from isovolnet_jax.errors import InputError

SPLITS = ('test', 'val')
GALLERY_SIZE = 36  # Misclassified images shown, most confident mistakes first.

# ---------------------------------------------------------------- labels

def _labels_in_run_order(data_names: list[str], run_names: list[str],
                         labels: np.ndarray) -> np.ndarray:
  """Maps another folder's labels onto the run's class indices by name."""
  if data_names == run_names:
    return labels
  unknown = sorted(set(data_names) - set(run_names))
  if unknown:
    raise InputError(f'the data has classes the model was not trained on: '
                     f'{unknown[:5]}; the model knows {run_names}')
  index = np.array([run_names.index(n) for n in data_names], np.int32)
  return index[labels]


# ---------------------------------------------------------------- outputs


def _write_predictions(path: Path, labels, probs, class_names):
  predictions = probs.argmax(-1)
  with path.open('w', newline='') as f:
    w = csv.writer(f)
    w.writerow(['index', 'label', 'label_name', 'prediction', 'prediction_name',
                *class_names])
    for i, (y, p, row) in enumerate(zip(labels, predictions, probs)):
      w.writerow([i, int(y), class_names[y], int(p), class_names[p],
                  *(f'{v:.6g}' for v in row)])


def plot_confusion_matrix(cm: np.ndarray, class_names: list[str], path: Path,
                          title: str = ''):
  """Colours are row-normalised (recall per class); the numbers are counts."""
  n = len(class_names)
  rows = cm.sum(1, keepdims=True)
  frac = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
  size = min(max(5.0, 0.5 * n + 2), 20.0)
  fig, ax = plt.subplots(figsize=(size, size))
  ax.imshow(frac, cmap='Blues', vmin=0, vmax=1)
  if n <= 50:  # Beyond that the names overlap; the picture still shows the diagonal.
    ax.set_xticks(range(n), class_names, rotation=90)
    ax.set_yticks(range(n), class_names)
  if n <= 20:
    for i in range(n):
      for j in range(n):
        ax.text(j, i, int(cm[i, j]), ha='center', va='center', fontsize=8,
                color='white' if frac[i, j] > 0.5 else 'black')
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_misclassified(images: np.ndarray, labels, probs, class_names, path: Path,
                       limit: int = GALLERY_SIZE):
  """A grid of the most confident mistakes, titled true -> predicted (p)."""
  predictions = probs.argmax(-1)
  wrong = np.flatnonzero(predictions != labels)
  wrong = wrong[np.argsort(-probs[wrong, predictions[wrong]], kind='stable')][:limit]
  cols = max(1, min(6, len(wrong)))
  rows = max(1, math.ceil(len(wrong) / cols))
  fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.3 * rows), squeeze=False)
  for ax in axes.flat:
    ax.axis('off')
  for ax, i in zip(axes.flat, wrong):
    ax.imshow(images[i])
    ax.set_title(f'{class_names[labels[i]]}\n-> {class_names[predictions[i]]} '
                 f'({probs[i, predictions[i]]:.2f})', fontsize=8)
  if not len(wrong):
    axes[0, 0].text(0.5, 0.5, 'no misclassified images', ha='center', va='center')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


# ---------------------------------------------------------------- library


@dataclasses.dataclass
class SplitPredictions:
  """A run's model on one split: what `report` measures and a notebook shows."""
  workdir: Path
  split: str
  step: int
  class_names: list[str]
  images: np.ndarray  # uint8 [N, H, W, 3]
  labels: np.ndarray  # [N], in the run's class order
  probs: np.ndarray   # softmax [N, classes]
  losses: np.ndarray  # float64 [N]: cross-entropy, no label smoothing (as train.py logs)


def predict_split(workdir: str | Path, split: str = 'test',
                  checkpoint: str | int = 'latest',
                  overrides: Mapping[str, Any] | None = None) -> SplitPredictions:
  """A run's checkpoint on a split, through `inference.logits`.

  `overrides` are dotted config keys applied to the run's config, e.g.
  {'data.path': '/data/other_folder'} or {'eval_tta': 'flip'}.
  """
  if split not in SPLITS:
    raise InputError(f'unknown split {split!r}; choose one of {SPLITS}')
  config = config_defaults.apply_overrides(checkpointing.load_config(workdir), overrides)
  config_defaults.check(config)
  if split == 'test':
    # val_size only splits train/, which a test evaluation does not read: a
    # small other folder (--config.data.path) need not have val_size images.
    config.data.val_size = 0
  run = checkpointing.load_run(workdir, checkpoint)
  # Built from the overridden config (e.g. dtype=bfloat16); the weights are the run's.
  model = models.from_config(config, len(run.class_names))
  data = memory.load(config)
  images, labels = data.split(split)
  if not len(images):
    raise InputError(f'the {split} split is empty (data.val_size=0?); '
                     f'choose another --split')
  labels = _labels_in_run_order(data.class_names, run.class_names, labels)
  if tuple(images.shape[1:]) != tuple(run.image_shape):
    raise InputError(f'images are {images.shape[1:]} but the run trained on '
                     f'{run.image_shape}; set --config.data.image_size='
                     f'{run.image_shape[0]}')
  logits = inference.logits(model, run.variables, images, config)
  losses = losses_lib.cross_entropy(logits, labels, len(run.class_names), 0.0)
  return SplitPredictions(Path(workdir), split, run.step, run.class_names, images,
                          labels, np.asarray(jax.nn.softmax(logits)),
                          np.asarray(losses, np.float64))


def report(p: SplitPredictions, output_dir: str | Path | None = None) -> dict:
  """The metrics of `p`; writes their files to `output_dir` (WORKDIR/eval)."""
  result = {'split': p.split, 'step': p.step, 'num_images': int(len(p.labels)),
            'loss': float(p.losses.mean()),
            **metrics.classification_report(p.labels, p.probs.argmax(-1), p.class_names),
            'class_names': p.class_names}

  out = Path(output_dir or p.workdir / 'eval')
  out.mkdir(parents=True, exist_ok=True)
  (out / f'{p.split}.json').write_text(json.dumps(result, indent=2))
  _write_predictions(out / f'{p.split}_predictions.csv', p.labels, p.probs, p.class_names)
  plot_confusion_matrix(np.array(result['confusion_matrix']), p.class_names,
                        out / f'{p.split}_confusion_matrix.png',
                        f'{p.workdir.name} {p.split}, step {p.step}: '
                        f'accuracy {result["accuracy"]:.4f}')
  plot_misclassified(p.images, p.labels, p.probs, p.class_names,
                     out / f'{p.split}_misclassified.png')
  logging.info('%s at step %d: %d images, loss %.4f, accuracy %.4f, macro F1 %.4f; '
               'files in %s', p.split, p.step, len(p.labels), result['loss'],
               result['accuracy'], result['macro_f1'], out)
  return result


def evaluate_run(workdir: str | Path, split: str = 'test',
                 checkpoint: str | int = 'latest',
                 overrides: Mapping[str, Any] | None = None,
                 output_dir: str | Path | None = None) -> dict:
  """Evaluates a run's checkpoint on a split; writes its files; returns the metrics.

  `overrides` are dotted config keys applied to the run's config, e.g.
  {'data.path': '/data/other_folder'}. Files go to `output_dir` (WORKDIR/eval).
  """
  return report(predict_split(workdir, split, checkpoint, overrides), output_dir)


# ---------------------------------------------------------------- command line

FLAGS = flags.FLAGS


def define_flags():
  """Called for the command line only (a notebook imports this module)."""
  cli.define_flags(config=False, workdir='The run to evaluate (a training --workdir).')
  flags.DEFINE_enum('split', 'test', SPLITS, 'Which split to evaluate.')
  flags.DEFINE_string('checkpoint', 'latest', "'latest', 'best' (val accuracy) or a step.")
  flags.DEFINE_string('output_dir', '', "Where the files go; '' = WORKDIR/eval.")

_OVERRIDES: dict[str, str] = {}


def parse_flags(argv):
  """cli's parser; `--config.KEY=VALUE` are collected here and checked
  against the run's config in `main`, once --workdir is known."""
  rest = []
  for arg in argv:
    if arg.startswith('--config.'):
      key, eq, value = arg[len('--config.'):].partition('=')
      if not eq:
        cli.fail(f'write {arg}=VALUE (config overrides take "=")')
      _OVERRIDES[key] = value
    else:
      rest.append(arg)
  return cli.parse_flags(rest)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logs.quiet_orbax()
  checkpoint = FLAGS.checkpoint
  if checkpoint not in ('latest', 'best') and not checkpoint.isdigit():
    raise InputError(f"--checkpoint={checkpoint!r}; use 'latest', 'best' or a step number")
  result = evaluate_run(FLAGS.workdir, FLAGS.split, checkpoint, _OVERRIDES,
                        FLAGS.output_dir or None)
  print(json.dumps(result), flush=True)  # Last stdout line: for scripts.


if __name__ == '__main__':
  define_flags()
  cli.run(main, flags_parser=parse_flags)
