"""airbench94 (Keller Jordan, arXiv 2404.00498) in this codebase: the method, in order.

Each trick is a config knob, off in `config_defaults.py` and on in
`configs/cifar10_airbench94.py` (airbench95, airbench94_muon: their own
configs); docs/airbench.md has the choices and the tests.

1. The net (`model.py`, `model.name='airbench'`): a 2x2 whitening conv
   3 -> 24 with bias, GELU, three blocks conv-pool-BN-GELU-conv-BN-GELU
   (64/256/256), Dirac init, BatchNorm without scale (eps 1e-12, momentum
   0.6), global max pool, a linear head without bias x 1/9. The other zoo
   models take its stem with `model.whiten_stem` (`model.whiten_stem`).
2. The whitening kernel (`whitening.py`, `whiten_images`, `whiten_eps`):
   computed at set-up from 5,000 training images, the +- eigenvectors of
   the 2x2-patch covariance over sqrt(eigenvalue + eps); training calls
   `whitening.from_training_split`.
3. The augmentation (`augment.py`): 2-pixel translation with reflect padding
   (`augment.translate`, in the train step) and the alternating flip
   (`augment.alternating_flip`, each image mirrored on alternate epochs, on
   the host or in the resident step).
4. The loss: label smoothing 0.2 (`label_smoothing`, losses.py).
5. The optimizer (`optim.py`, built by `isovolnet_jax.optim.create_optimizer`):
   Nesterov SGD with rate and decay per 1,024 examples (`per_1024`), the
   triangular schedule, parameter groups (`param_labels`: BatchNorm biases at
   64x the rate, decay on every leaf), the freezes (whitening kernel frozen,
   its bias after 3 epochs, BatchNorm scales), and lookahead (`lookahead`,
   with the warning when it would start after the run's last step); or Muon
   on the conv kernels (`muon_sgd`, `optimizer.name='muon'`).
6. Test-time augmentation (`tta.py`, `eval_tta='airbench6'`): 6 weighted
   views (image, mirror, one-pixel shifts), run by `inference.eval_logits`
   in training's evaluation, `evaluate` and `predict`.
7. Which knobs go together (`checks.py`): checked once, when the config is
   loaded (`config_defaults.check`), each refusal one line naming the fix.

The modules import nothing from here: import them by name
(`from isovolnet_jax.airbench import whitening`).
"""
