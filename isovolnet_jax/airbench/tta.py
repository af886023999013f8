"""airbench's test-time augmentation: 6 weighted views (`eval_tta='airbench6'`).

`inference.eval_logits` runs the views for training's evaluation, `evaluate`
and `predict` alike; `eval_tta` names the mode ('' or 'none': the image
alone; 'flip': with its mirror; 'airbench6': `airbench6_views`).
"""

import jax.numpy as jnp

# config.eval_tta's values ('' is the default, the same as 'none').
TTA_MODES = ('', 'none', 'flip', 'airbench6')


def airbench6_views(x):
  """airbench's 6 test views of NHWC images and their weights: the image and
  its mirror, unshifted (1/4 each) and shifted by one pixel down-right and
  up-left (both axes at once, reflect padding; 1/8 each). As its
  tta_level=2: half the weight on the unshifted pair, half on the shifted."""
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode='reflect')
  h, w = x.shape[1:3]
  down_right = padded[:, 0:h, 0:w]       # out[i, j] = x[i - 1, j - 1].
  up_left = padded[:, 2:h + 2, 2:w + 2]  # out[i, j] = x[i + 1, j + 1].
  views, weights = [], []
  for v, weight in ((x, 0.25), (down_right, 0.125), (up_left, 0.125)):
    views += [v, v[:, :, ::-1]]
    weights += [weight, weight]
  return views, weights
