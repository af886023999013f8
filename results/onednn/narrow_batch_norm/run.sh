#!/usr/bin/env bash
# Training BatchNorm of few channels on the (N, H, W*C) view
# (layers.BatchNormAct), 2026-12-05: the layer's two sides alone
# (bench.layer_choices --choices=narrow_batch_norm, one core, batch 128), then
# configs/cifar10.py's whole steps before -> after on 2 devices and on one
# core, three interleaved rounds: layer_choices/run.sh with this folder's
# settings. Run from the repository root with nothing else running:
#   git worktree add ../after 35953e6 && cd ../after && python setup.py build_ext --inplace
#   git worktree add ../before a2b186c && (cd ../before && python setup.py build_ext --inplace)
#   BEFORE=../before bash results/onednn/narrow_batch_norm/run.sh
# About 9 minutes on the 2-core EPYC. Needs a checkout of commit 35953e6 (the
# change, reverted after this study: its layers.BatchNormAct and bench.layer_choices'
# --choices flag).
set -euo pipefail
OUT=${OUT:-results/onednn/narrow_batch_norm} CHOICES=narrow_batch_norm DENSE=0 \
  bash "$(dirname "$0")/../layer_choices/run.sh"
