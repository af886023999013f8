"""Classification metrics from labels and predictions, in numpy.

Definitions follow scikit-learn's with `labels=range(num_classes)` and
`zero_division=0`: every class counts in the macro averages, also one that is
never predicted or never present, and a 0/0 is 0.
"""

import numpy as np


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
  """[num_classes, num_classes] counts; rows are true labels, columns predictions."""
  labels = np.asarray(labels, np.int64)
  predictions = np.asarray(predictions, np.int64)
  if labels.shape != predictions.shape:
    raise ValueError(f'{labels.shape} labels but {predictions.shape} predictions')
  cm = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(cm, (labels, predictions), 1)
  return cm


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
  num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
  return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def precision_recall_f1(cm: np.ndarray) -> tuple[np.ndarray, ...]:
  """Per-class precision, recall, F1 and support from a confusion matrix."""
  tp = np.diag(cm)
  predicted = cm.sum(axis=0)
  support = cm.sum(axis=1)
  precision = _safe_divide(tp, predicted)
  recall = _safe_divide(tp, support)
  # 2TP / (2TP + FP + FN): the harmonic mean of precision and recall where
  # both are defined, and 0 (not NaN) where the class is never seen nor predicted.
  f1 = _safe_divide(2 * tp, predicted + support)
  return precision, recall, f1, support


def classification_report(labels, predictions, class_names: list[str]) -> dict:
  """Accuracy, macro precision/recall/F1, per-class scores and the confusion matrix."""
  cm = confusion_matrix(labels, predictions, len(class_names))
  precision, recall, f1, support = precision_recall_f1(cm)
  total = int(cm.sum())
  return {
      'accuracy': float(np.trace(cm) / total) if total else 0.0,
      'macro_precision': float(precision.mean()),
      'macro_recall': float(recall.mean()),
      'macro_f1': float(f1.mean()),
      'per_class': {
          name: {'precision': float(p), 'recall': float(r), 'f1': float(f),
                 'support': int(s)}
          for name, p, r, f, s in zip(class_names, precision, recall, f1, support)},
      'confusion_matrix': cm.tolist(),
  }
