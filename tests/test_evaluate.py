"""Metrics against scikit-learn; evaluate.py end to end on a tiny trained run."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from sklearn import metrics as skm

from isovolnet_jax import checkpointing
from isovolnet_jax import config_defaults
from isovolnet_jax import evaluate
from isovolnet_jax import inference
from isovolnet_jax import losses
from isovolnet_jax import models
from isovolnet_jax.data import memory
from isovolnet_jax import metrics
from isovolnet_jax import plots
from isovolnet_jax import predict
from isovolnet_jax import train
from isovolnet_jax.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def smoke_config() -> ml_collections.ConfigDict:
  return config_defaults.load_config_file(ROOT / 'configs' / 'smoke.py')


# ---------------------------------------------------------------- metrics


@pytest.mark.parametrize('seed', range(3))
def test_metrics_match_sklearn(seed):
  rng = np.random.default_rng(seed)
  num_classes = 8
  # Classes 4 and 5 are never predicted, 6 is predicted but never true, and 7
  # is neither: the zero-division cases.
  labels = rng.choice([0, 1, 2, 3, 4, 5], 300)
  predictions = rng.choice([0, 1, 2, 3, 6], 300)
  predictions[:150] = labels[:150]  # Better than chance, but never 4 or 5...
  predictions[:150][np.isin(labels[:150], [4, 5])] = 6  # ...as promised.
  names = [f'c{i}' for i in range(num_classes)]
  report = metrics.classification_report(labels, predictions, names)

  everything = list(range(num_classes))
  p, r, f, s = skm.precision_recall_fscore_support(
      labels, predictions, labels=everything, zero_division=0)
  np.testing.assert_allclose([report['per_class'][n]['precision'] for n in names], p)
  np.testing.assert_allclose([report['per_class'][n]['recall'] for n in names], r)
  np.testing.assert_allclose([report['per_class'][n]['f1'] for n in names], f)
  assert [report['per_class'][n]['support'] for n in names] == s.tolist()
  macro = skm.precision_recall_fscore_support(
      labels, predictions, labels=everything, average='macro', zero_division=0)
  np.testing.assert_allclose(
      [report['macro_precision'], report['macro_recall'], report['macro_f1']], macro[:3])
  assert report['confusion_matrix'] == skm.confusion_matrix(
      labels, predictions, labels=everything).tolist()
  assert report['accuracy'] == pytest.approx(skm.accuracy_score(labels, predictions))


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope='module')
def run_dir(small_cifar, tmp_path_factory) -> Path:
  """configs/smoke.py trained for 20 steps (checkpoints at 10 and 20), with
  eval_tta='flip' (the mirror pair, a TTA that changes the figures)."""
  workdir = tmp_path_factory.mktemp('eval_run')
  config = smoke_config()
  config.eval_tta = 'flip'
  config.data.source = 'folder'
  config.data.path = str(small_cifar)
  config.data.cache_dir = str(workdir / 'cache')
  train.train_and_evaluate(config, workdir / 'run')
  return workdir / 'run'


def logged(workdir: Path, split: str, step: int) -> dict:
  rows = [r for r in plots.read_metrics(workdir)
          if r['split'] == split and r['step'] == step]
  assert rows, f'no {split} metrics at step {step} in metrics.jsonl'
  return rows[-1]


def test_evaluate_run_matches_training_and_writes_files(run_dir):
  result = evaluate.evaluate_run(run_dir)
  assert result['split'] == 'test' and result['step'] == 20
  assert result['num_images'] == 200  # 20 test images x 10 classes.
  for key in ('accuracy', 'loss', 'macro_precision', 'macro_recall', 'macro_f1'):
    assert isinstance(result[key], float)
  assert set(result['per_class']) == set(result['class_names'])
  cm = np.array(result['confusion_matrix'])
  assert cm.shape == (10, 10) and cm.sum(1).tolist() == [20] * 10

  # Same model, same images as train.py's final test evaluation.
  train_test = logged(run_dir, 'test', result['step'])
  assert abs(result['accuracy'] - train_test['accuracy']) <= 1e-6
  assert result['loss'] == pytest.approx(train_test['loss'], rel=1e-4)

  out = run_dir / 'eval'
  for name in ('test.json', 'test_confusion_matrix.png', 'test_misclassified.png'):
    assert (out / name).stat().st_size > 0, name
  assert json.loads((out / 'test.json').read_text())['accuracy'] == result['accuracy']
  with (out / 'test_predictions.csv').open() as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == result['num_images']
  assert list(rows[0])[:5] == ['index', 'label', 'label_name', 'prediction',
                               'prediction_name']
  assert list(rows[0])[5:] == result['class_names']
  csv_accuracy = np.mean([r['label'] == r['prediction'] for r in rows])
  assert csv_accuracy == pytest.approx(result['accuracy'], abs=1e-9)
  probs = np.array([[float(r[n]) for n in result['class_names']] for r in rows])
  np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)


def test_flip_tta_averages_with_the_mirror_in_training_and_evaluation(run_dir, tmp_path):
  """The test loss train.py logged and evaluate_run's are those of the logits
  averaged with the mirror images' (eval_tta='flip'), not the plain logits'."""
  run = checkpointing.load_run(run_dir)
  assert run.config.eval_tta == 'flip'
  images, labels = memory.load(run.config).split('test')

  def loss(flip):
    logits = train.eval_logits(run.model.apply, run.variables, images, 'flip' if flip else 'none')
    return float(losses.cross_entropy(logits, labels, len(run.class_names), 0.0).mean())

  flipped, plain = loss(True), loss(False)
  # 2.4143 against 2.4163 here: far apart for the rel=1e-5 checks below.
  assert abs(flipped - plain) > 1e-4 * plain
  assert logged(run_dir, 'test', 20)['loss'] == pytest.approx(flipped, rel=1e-5)
  result = evaluate.evaluate_run(run_dir, output_dir=tmp_path)
  assert result['loss'] == pytest.approx(flipped, rel=1e-5)
  off = evaluate.evaluate_run(run_dir, overrides={'eval_tta': ''}, output_dir=tmp_path)
  assert off['loss'] == pytest.approx(plain, rel=1e-5)


def test_evaluate_and_predict_agree_on_the_same_images(run_dir, tmp_path):
  """evaluate (its CSV) and predict give the same probabilities for the test
  images; the run has eval_tta='flip', which both honour."""
  evaluate.evaluate_run(run_dir, output_dir=tmp_path)
  with (tmp_path / 'test_predictions.csv').open() as f:
    rows = list(csv.DictReader(f))
  run = checkpointing.load_run(run_dir)
  images, labels = memory.load(run.config).split('test')
  probs = predict.predict(run, images)
  assert [int(r['label']) for r in rows] == labels.tolist()
  assert [int(r['prediction']) for r in rows] == probs.argmax(-1).tolist()
  # The CSV holds 6 significant digits.
  np.testing.assert_allclose([[float(r[n]) for n in run.class_names] for r in rows],
                             probs, rtol=1e-5, atol=1e-6)
  split = evaluate.predict_split(run_dir)
  np.testing.assert_allclose(split.probs, probs, atol=1e-6)
  np.testing.assert_array_equal(split.images, images)


@pytest.mark.parametrize('name', sorted(p.name for p in (ROOT / 'configs').glob('cifar10*.py')))
def test_every_config_rebuilds_its_model_from_a_saved_config_json(name, tmp_path):
  """evaluate and predict rebuild the model from the run's config.json, whose
  lists were the config file's tuples (FastCNN's widths, the dilated net's
  dilations): the module must still hash, as jax.jit's static argument."""
  config = config_defaults.load_config_file(ROOT / 'configs' / name)
  (tmp_path / 'config.json').write_text(config.to_json_best_effort(indent=2))
  saved = checkpointing.load_config(tmp_path)
  model = models.create_model(saved.model, 10)
  assert hash(model) == hash(models.create_model(config.model, 10))
  if saved.model.name == 'fast_cnn':  # End to end on one model: the jitted forward.
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), np.uint8)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
    assert inference.logits(model, variables, images, saved).shape == (2, 10)


def test_best_checkpoint_on_val_matches_its_logged_val_accuracy(run_dir, tmp_path):
  result = evaluate.evaluate_run(run_dir, split='val', checkpoint='best',
                                 output_dir=tmp_path)
  assert result['num_images'] == 100
  assert abs(result['accuracy'] - logged(run_dir, 'val', result['step'])['accuracy']) <= 1e-6
  assert (tmp_path / 'val_predictions.csv').exists()


def run_cli(*args) -> subprocess.CompletedProcess:
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}
  return subprocess.run([sys.executable, '-m', 'isovolnet_jax.evaluate', *args],
                        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_cli_prints_json_last_line(run_dir, small_cifar, tmp_path):
  proc = run_cli(f'--workdir={run_dir}', '--checkpoint=20', f'--output_dir={tmp_path}',
                 f'--config.data.path={small_cifar}', '--config.eval_batch_size=64')
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result['step'] == 20 and result['num_images'] == 200
  assert abs(result['accuracy'] - logged(run_dir, 'test', 20)['accuracy']) <= 1e-6
  assert (tmp_path / 'test_predictions.csv').exists()


def test_cli_bad_config_key_is_one_line(run_dir):
  proc = run_cli(f'--workdir={run_dir}', '--config.model.activaton=swish')
  assert proc.returncode != 0
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1, proc.stderr
  assert "'model.activaton'" in errors[0] and "'model.activation'" in errors[0]
  assert 'Traceback' not in proc.stderr


def test_run_trained_with_unrolled_convs_evaluates_the_same_with_lax(run_dir, tmp_path):
  """model.conv_impl changes how depthwise convs are computed, not what: the
  smoke run trained with 'auto' (unrolled on CPU) gives the same test accuracy
  and loss when its checkpoint is evaluated with lax's convolutions."""
  from isovolnet_jax import checkpointing
  assert checkpointing.load_config(run_dir).model.conv_impl == 'auto'
  ours = evaluate.evaluate_run(run_dir, overrides={'model.conv_impl': 'unrolled'},
                               output_dir=tmp_path / 'unrolled')
  ref = evaluate.evaluate_run(run_dir, overrides={'model.conv_impl': 'lax'},
                              output_dir=tmp_path / 'lax')
  assert abs(ours['accuracy'] - ref['accuracy']) <= 1e-3
  assert ours['loss'] == pytest.approx(ref['loss'], rel=1e-4)
  assert ours['accuracy'] == logged(run_dir, 'test', 20)['accuracy']
