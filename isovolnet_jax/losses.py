"""The loss: softmax cross-entropy on (smoothed) one-hot labels.

One definition for training (`train.train_step`, `train.eval_step`) and the
tools that score a run's predictions (`evaluate`), which need not import
train.py for it.
"""

import jax
import optax


def cross_entropy(logits, labels, num_classes: int, label_smoothing: float):
  """Per-example cross-entropy of `logits` [N, C] against integer `labels`
  [N], the targets smoothed by `label_smoothing` (0: none)."""
  targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
  return optax.softmax_cross_entropy(logits, targets)
