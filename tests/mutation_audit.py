r"""Breaks the code on purpose, one change at a time, and checks that the test
named for each change fails (kept runnable).

  python tests/mutation_audit.py             # every mutation (~7 min on 2 cores)
  python tests/mutation_audit.py --only=rmsprop,flip
  python tests/mutation_audit.py --list
  python tests/mutation_audit.py --stale     # only whether each still applies

Each mutation runs in a scratch git worktree of HEAD (the working tree is
never touched), with ../shared linked beside it as in a checkout. A mutation
whose text is no longer in the code is reported as stale: update it with the
code (`--stale` lists them in seconds; the default test suite tests the audit
itself, not the code's text, so a refactor does not break it). Exit status 1
if any mutation survives or is stale.
"""

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# pytest.main with `import torch` failing, as on a machine without torch.
NO_TORCH = ("import sys; sys.modules['torch'] = None; import pytest; "
            "sys.exit(pytest.main(sys.argv[1:]))")


@dataclasses.dataclass(frozen=True)
class Mutation:
  name: str
  what: str
  tests: tuple[str, ...]        # pytest node ids; at least one must fail.
  path: str = ''                # File to change ('' = none)...
  old: str = ''                 # ...this text, found exactly once...
  new: str = ''                 # ...replaced by this.
  env: tuple[tuple[str, str], ...] = ()
  no_data: bool = False         # Run without ../shared beside the checkout.
  no_torch: bool = False        # Run with `import torch` failing.
  build: bool = False           # Rebuild the C++ extension (setup.py build_ext) first.


MUTATIONS = (
    Mutation('invariant', 'IsoVolNet: the H*W*C chex check removed',
             ('tests/test_models_isovolnet.py::test_invariant_is_checked_with_chex',),
             'isovolnet_jax/models/isovolnet.py',
             'chex.assert_equal(math.prod(x.shape[1:]), math.prod(block.in_shape))',
             'pass'),
    Mutation('flip-train', "train.py ignores config.eval_tta='flip'",
             ('tests/test_evaluate.py::test_flip_tta_averages_with_the_mirror_in_'
              'training_and_evaluation',),
             'isovolnet_jax/train.py', 'tta=inference.tta_mode(config)))', "tta='none'))"),
    Mutation('flip-inference', "inference.logits (evaluate, predict) ignores config.eval_tta='flip'",
             ('tests/test_evaluate.py::test_flip_tta_averages_with_the_mirror_in_'
              'training_and_evaluation',
              'tests/test_predict.py::test_predict_with_flip_tta_averages_with_the_mirror'),
             'isovolnet_jax/inference.py',
             "  return config.eval_tta or 'none'", "  return 'none'"),
    Mutation('pad-mask', 'inference.logits keeps the padding rows of the last batch',
             ('tests/test_predict.py::test_predict_matches_model_apply',),
             'isovolnet_jax/inference.py', '(model, variables, x, tta))[mask > 0])',
             '(model, variables, x, tta)))'),
    Mutation('accum-bn', 'each micro-batch starts from state.batch_stats, not the '
             'carried statistics',
             ('tests/test_scale_out.py::test_accumulation_with_batchnorm_updates_'
              'statistics_per_micro_batch',),
             'isovolnet_jax/train.py', 'state.params, batch_stats, x, y, key)',
             'state.params, state.batch_stats, x, y, key)'),
    Mutation('rmsprop', "optimizer.name='rmsprop' builds Adam",
             ('tests/test_train.py::test_optimizer_updates_match_their_formulas',),
             'isovolnet_jax/optim.py', 'base = optax.rmsprop(schedule,',
             'base = optax.adam(schedule) or optax.rmsprop(schedule,'),
    Mutation('onecycle', 'the onecycle schedule is constant',
             ('tests/test_train.py::test_schedules_take_their_values_at_known_steps',),
             'isovolnet_jax/optim.py',
             'return optax.cosine_onecycle_schedule(total_steps, lr, opt.pct_start)',
             'return optax.constant_schedule(lr)'),
    Mutation('count-isovolnet', 'IsoVolNet defaults to 4 blocks (another parameter count)',
             ('tests/test_torch_models.py::test_default_parameter_counts',),
             'isovolnet_jax/models/isovolnet.py', 'DEFAULT_BLOCKS = 5', 'DEFAULT_BLOCKS = 4'),
    Mutation('count-dense_ds', 'DenseDS growth rate 24 (another parameter count)',
             ('tests/test_torch_models.py::test_default_parameter_counts',),
             'isovolnet_jax/models/dense_ds.py', 'growth_rate: int = 32',
             'growth_rate: int = 24'),
    Mutation('predict-probs', 'the predict CLI prints 0.9 x each probability',
             ('tests/test_predict.py::test_cli_prints_top_k_and_json',),
             'isovolnet_jax/predict.py', "'probability': round(prob, 4)",
             "'probability': round(prob * 0.9, 4)"),
    Mutation('efficiency', 'inference throughput in batches/s, not images/s',
             ('tests/test_efficiency.py::test_report_compares_separable_with_standard',),
             'isovolnet_jax/bench/efficiency.py', "'infer_img_s': batch_size / infer_s",
             "'infer_img_s': 1 / infer_s"),
    Mutation('time-to-accuracy', 'time_to_accuracy reports the val accuracy',
             ('tests/test_benchmark.py::test_time_to_accuracy_times_each_seed_and_'
              'reads_the_test_accuracy',),
             'isovolnet_jax/bench/time_to_accuracy.py',
             "tests = [r for r in plots.read_metrics(workdir) if r['split'] == 'test']",
             "tests = [r for r in plots.read_metrics(workdir) if r['split'] == 'val']"),
    Mutation('no-data', 'CI=true without ../shared/data/cifar10_jpeg',
             ('tests/test_predict.py::test_cli_refuses_small_image_in_one_line',),
             env=(('CI', 'true'),), no_data=True),
    Mutation('no-torch', 'CI=true without torch',
             ('tests/test_torch_models.py::test_train_mode_matches_batch_statistics',
              'tests/test_benchmark.py::test_benchmark_refuses_a_twin_with_other_'
              'parameter_counts'),
             env=(('CI', 'true'),), no_torch=True),
    Mutation('sigint', 'SIGINT not handled (KeyboardInterrupt mid-step)',
             ('tests/test_checkpoints.py::test_sigint_saves_a_checkpoint_and_exits_cleanly',),
             'isovolnet_jax/preemption.py', 'for s in (signal.SIGTERM, signal.SIGINT)}',
             'for s in (signal.SIGTERM,)}'),
    Mutation('time-budget', 'max_train_time_minutes logs but does not stop',
             ('tests/test_checkpoints.py::test_time_budget_stops_saves_and_evaluates',),
             'isovolnet_jax/train.py',
             'config.max_train_time_minutes, done)\n        break\n',
             'config.max_train_time_minutes, done)\n'),
    Mutation('cli-exit', 'bad input exits 1, not 2',
             ('tests/test_cli.py::test_every_command_refuses_a_bad_config_key_in_one_line',),
             'isovolnet_jax/cli.py', '  sys.exit(2)\n', '  sys.exit(1)\n'),
    Mutation('tcmalloc-string', 'tcmalloc "detected" from the LD_PRELOAD string',
             ('tests/test_cli.py::test_tcmalloc_is_detected_in_the_process_not_in_ld_preload',),
             'isovolnet_jax/cli.py', "      return 'libtcmalloc' in f.read()",
             "      return 'tcmalloc' in os.environ.get('LD_PRELOAD', '')"),
    Mutation('tcmalloc-loop', 'the re-exec has no guard against a preload that fails',
             ('tests/test_cli.py::test_a_preload_that_does_not_load_tcmalloc_is_not_retried',),
             'isovolnet_jax/cli.py', ' or os.environ.get(_REEXECED)\n', '\n'),
    Mutation('eval-checkpoint', 'no checkpoint at the evaluations between periodic saves',
             ('tests/test_checkpoints.py::test_every_evaluation_saves_a_checkpoint_with_its_'
              'val_accuracy',),
             'isovolnet_jax/train.py',
             'save_now = evaluate_now or done % config.checkpoint_every_steps == 0 or last',
             'save_now = done % config.checkpoint_every_steps == 0 or last'),
    Mutation('divergence', 'the loop never checks that the parameters are finite',
             ('tests/test_train.py::test_nan_loss_stops_naming_the_step_and_the_last_good_'
              'checkpoint',),
             'isovolnet_jax/train.py', '      if at_log_step or save_now:\n        _check_finite(',
             '      if False:\n        _check_finite('),
    Mutation('batch-above-split', 'a batch larger than the training split is not refused',
             ('tests/test_data_order.py::test_both_pipelines_and_the_loop_refuse_a_batch_'
              'above_the_split',),
             'isovolnet_jax/data/order.py', '  if steps == 0:', '  if False:'),
    Mutation('curves-smoothed', 'the curves plot the label-smoothed train loss',
             ('tests/test_train.py::test_learning_curves_plot_the_train_loss_without_label_'
              'smoothing',),
             'isovolnet_jax/plots.py',
             "by_step[s].get(f'{key}_unsmoothed', by_step[s][key])", 'by_step[s][key]'),
    # airbench (docs/airbench.md).
    Mutation('airbench-dirac', 'Dirac init puts the identity at the corner tap',
             ('tests/test_airbench_model.py::test_dirac_init_is_identity_on_first_channels',),
             'isovolnet_jax/airbench/model.py', 'at[kh // 2, kw // 2,', 'at[0, kw // 2,'),
    Mutation('whiten-order', 'eigenvalues in the wrong order against their eigenvectors',
             ('tests/test_whitening.py::test_whitened_patches_have_identity_covariance',),
             'isovolnet_jax/airbench/whitening.py', 'scaled = vectors / np.sqrt(values + eps)',
             'scaled = vectors / np.sqrt(values[::-1] + eps)'),
    Mutation('whiten-sign', 'the whitening filters are (+v, +v), not (+v, -v)',
             ('tests/test_whitening.py::test_filters_orthogonal_and_sign_paired',),
             'isovolnet_jax/airbench/whitening.py', 'np.concatenate([scaled, -scaled], axis=1)',
             'np.concatenate([scaled, scaled], axis=1)'),
    Mutation('bn-bias-decay', "BN biases' L2 not divided by their rate scale",
             ('tests/test_airbench_optim.py::test_grouped_sgd_matches_airbench_torch_sgd',),
             'isovolnet_jax/airbench/optim.py', 'weight_decay / lr_factor, decay_all)',
             'weight_decay, decay_all)'),
    Mutation('whiten-bias-freeze', 'the whitening bias is never frozen',
             ('tests/test_airbench_optim.py::test_grouped_sgd_matches_airbench_torch_sgd',
              'tests/test_airbench_optim.py::test_whitening_freezes_on_adamw'),
             'isovolnet_jax/optim.py', 'if opt.whiten_bias_epochs < 0:',
             'if opt.whiten_bias_epochs < 1e9:'),
    Mutation('adamw-whiten-kernel', "AdamW trains the whitening kernel despite freeze_whiten_kernel",
             ('tests/test_airbench_optim.py::test_whitening_freezes_on_adamw',
              'tests/test_whiten_stem.py::test_training_whitens_the_isovolnet_stem_and_keeps_it_frozen'),
             'isovolnet_jax/airbench/optim.py',
             "'whiten_kernel': optax.set_to_zero() if freeze_whiten_kernel else group(),",
             "'whiten_kernel': group(),"),
    Mutation('adamw-whiten-groups', "AdamW's other leaves put in the whitening bias's group",
             ('tests/test_airbench_optim.py::test_whitening_freezes_on_adamw',),
             'isovolnet_jax/airbench/optim.py', "lambda g: g if g.startswith('whiten') else 'other'",
             "lambda g: g if g.startswith('whiten') else 'whiten_bias'"),
    Mutation('lookahead-rho', "lookahead's decay at step n - 1",
             ('tests/test_airbench_optim.py::test_lookahead_matches_the_published_loop',),
             'isovolnet_jax/airbench/optim.py', 'rho = base ** every * (n.astype',
             'rho = base ** every * ((n - 1).astype'),
    Mutation('lookahead-epochs', 'no copy-back of the slow weights at epoch ends',
             ('tests/test_airbench_optim.py::test_lookahead_matches_the_published_loop',),
             'isovolnet_jax/airbench/optim.py', 'if sync_every_epoch:', 'if False:'),
    Mutation('lookahead-fields', "lookahead state's fields not in sorted order",
             ('tests/test_airbench_optim.py::'
              'test_state_leaf_order_survives_a_restore_from_metadata',),
             'isovolnet_jax/airbench/optim.py',
             '  inner: Any\n  slow: Any\n  started: jax.Array',
             '  started: jax.Array\n  inner: Any\n  slow: Any'),
    Mutation('tta-shift', "airbench6's up-left view shifted along one axis only",
             ('tests/test_airbench_tta.py::test_airbench6_equals_the_six_views_by_hand',),
             'isovolnet_jax/airbench/tta.py', 'up_left = padded[:, 2:h + 2, 2:w + 2]',
             'up_left = padded[:, 2:h + 2, 1:w + 1]'),
    Mutation('tta-weights', "airbench6's views weighted equally",
             ('tests/test_airbench_tta.py::test_airbench6_equals_the_six_views_by_hand',),
             'isovolnet_jax/airbench/tta.py',
             '((x, 0.25), (down_right, 0.125), (up_left, 0.125))',
             '((x, 1 / 6), (down_right, 1 / 6), (up_left, 1 / 6))'),
    Mutation('alt-flip', 'the alternating flip on a period of 3 epochs',
             ('tests/test_augment_airbench.py::test_alternating_flip_alternates_per_image',),
             'isovolnet_jax/airbench/augment.py', '(epoch % 2 == 1)',
             '(epoch % 3 == 1)'),
    Mutation('translate-range', 'the translation never shifts by +pixels',
             ('tests/test_augment_airbench.py::'
              'test_translate_reflect_shifts_by_up_to_pixels_with_reflection',),
             'isovolnet_jax/airbench/augment.py', '(n, 2), 0, 2 * pixels + 1)',
             '(n, 2), 0, 2 * pixels)'),
    Mutation('train-tta', "training's evaluation without eval_tta's views",
             ('tests/test_airbench_training.py::'
              'test_airbench_run_whitens_and_evaluates_the_test_split_with_tta',),
             'isovolnet_jax/train.py', 'images, tta=tta)', "images, tta='none')"),
    Mutation('train-whiten', 'whiten_images read, the kernel left at its init',
             ('tests/test_airbench_training.py::'
              'test_airbench_run_whitens_and_evaluates_the_test_split_with_tta',),
             'isovolnet_jax/train.py', '  return state.replace(params=jax.device_put(params, replicated))',
             '  return state'),
    Mutation('pipeline-alt-flip', "the memory pipeline ignores augment.alternating_flip",
             ('tests/test_airbench_training.py::'
              'test_memory_pipeline_alternates_each_images_flip_and_resumes_exactly',),
             'isovolnet_jax/data/memory.py', '    if alternating_flip:\n',
             '    if False:\n'),
    Mutation('step-translate', 'the step ignores augment.translate',
             ('tests/test_airbench_training.py::'
              'test_the_step_translates_by_reflection_in_place_of_the_zero_padded_crop',),
             'isovolnet_jax/data/__init__.py', "aug.flip, aug.translate)",
             'aug.flip, 0)'),
    Mutation('whiten-stem-skip', "IsoVolNet's model.whiten_stem not applied",
             ('tests/test_whiten_stem.py::'
              'test_isovolnet_volume_is_constant_from_the_stem_output_on',),
             'isovolnet_jax/models/isovolnet.py', '    if self.whiten_stem:\n',
             '    if False:\n'),
    Mutation('tta-eval-time', 'time to accuracy counts the earlier evaluations',
             ('tests/test_benchmark.py::'
              'test_seconds_to_targets_leave_out_the_earlier_evaluations',),
             'isovolnet_jax/bench/time_to_accuracy.py', "spent += r['eval_seconds']",
             'spent += 0'),
    Mutation('step-memory-no-reset', "step_memory's peak not reset before the steps",
             ('tests/test_step_memory.py::test_step_peak_forgets_what_ran_before',),
             'isovolnet_jax/bench/step_memory.py', "    f.write('5')", "    f.write('')"),
    Mutation('profile-kind', "layer_profile counts PyTorch's batch_norm ops as 'rest'",
             ('tests/test_benchmark.py::test_torch_profile_sorts_ops_by_layer_kind',),
             'isovolnet_jax/bench/layer_profile.py', "('BatchNorm', ('batch_norm',))",
             "('BatchNorm', ('no_such_op',))"),
    Mutation('saved-config-lists', "the model is built from config.json's lists as they are",
             ('tests/test_evaluate.py::test_every_config_rebuilds_its_model_from_a_saved_config_json',),
             'isovolnet_jax/models/__init__.py',
             'kwargs = {k: _tuples(v) for k, v in dict(model_config).items()}',
             'kwargs = dict(model_config)'),
    Mutation('muon-route', "optimizer.name='muon' routes the conv kernels to SGD (head rate)",
             ('tests/test_airbench_muon.py::test_real_model_routes_conv_kernels_to_muon_and_'
              'the_rest_to_sgd',
              'tests/test_airbench_muon.py::test_steps_match_airbench94_muon_written_in_numpy'),
             'isovolnet_jax/airbench/optim.py', "return 'head' if p.ndim == 2 else 'muon'",
             "return 'head'"),
    Mutation('muon-nesterov', "Muon's momentum without Nesterov",
             ('tests/test_airbench_muon.py::test_steps_match_airbench94_muon_written_in_numpy',),
             'isovolnet_jax/airbench/optim.py',
             'optax.trace(decay=momentum, nesterov=nesterov),',
             'optax.trace(decay=momentum, nesterov=False),'),
    Mutation('conv-auto-per-platform', "conv_impl='auto' (no oneDNN) runs unrolled_conv "
             'whatever platform it is lowered for, as when chosen from the default backend',
             ('tests/test_lowering.py::test_without_onednn_auto_is_unrolled_on_cpu_only',),
             'isovolnet_jax/models/layers.py', '    return _unrolled_on_cpu\n',
             '    return unrolled_conv.conv_general_dilated\n'),
    # Mixed precision and dtype='auto' (models/layers.py). The 'auto' ones need
    # the oneDNN build (their tests look at oneDNN's bf16 calls), so they build.
    Mutation('mixed-no-cast', "dtype='mixed_bfloat16' convolves float32 operands",
             ('tests/test_mixed_precision.py::test_train_step_convs_bf16_elementwise_f32[cifar10]',),
             'isovolnet_jax/models/layers.py',
             'y = conv(cast(lhs, dtype), cast(rhs, dtype), window_strides, padding, **kwargs)',
             'y = conv(lhs, rhs, window_strides, padding, **kwargs)'),
    Mutation('auto-float32-on-cpu', "dtype='auto' keeps float32 convs on a native-bf16 CPU",
             ('tests/test_mixed_precision.py::test_auto_is_mixed_on_a_native_bfloat16_cpu_and_'
              'float32_lowered_for_cuda[cifar10]',),
             'isovolnet_jax/models/layers.py', 'cpu=branch(mixed), default=branch(conv)',
             'cpu=branch(conv), default=branch(conv)', env=(('CI', 'true'),), build=True),
    Mutation('auto-mixed-on-cuda', "dtype='auto' lowered for CUDA has bf16 convs too",
             ('tests/test_mixed_precision.py::test_auto_is_mixed_on_a_native_bfloat16_cpu_and_'
              'float32_lowered_for_cuda[cifar10]',),
             'isovolnet_jax/models/layers.py', 'cpu=branch(mixed), default=branch(conv)',
             'cpu=branch(mixed), default=branch(mixed)', env=(('CI', 'true'),), build=True),
    Mutation('auto-ignores-native', "dtype='auto' is mixed on a CPU without native bfloat16",
             ('tests/test_mixed_precision.py::test_auto_is_float32_without_native_bfloat16_or_'
              'without_onednn[auto]',),
             'isovolnet_jax/models/layers.py',
             'if not (runs_onednn_on_cpu(conv) and native_bfloat16()):',
             'if not runs_onednn_on_cpu(conv):', env=(('CI', 'true'),), build=True),
    Mutation('auto-ignores-impl', "dtype='auto' casts XLA's CPU convs to bfloat16 too",
             ('tests/test_mixed_precision.py::test_auto_is_float32_without_native_bfloat16_or_'
              'without_onednn[lax]',),
             'isovolnet_jax/models/layers.py',
             'if not (runs_onednn_on_cpu(conv) and native_bfloat16()):',
             'if not native_bfloat16():', env=(('CI', 'true'),), build=True),
    Mutation('auto-config', "configs/cifar10.py leaves the schema's float32",
             ('tests/test_mixed_precision.py::test_the_measured_configs_default_to_auto_and_'
              'the_schema_to_float32',),
             'configs/cifar10.py', "  config.dtype = 'auto'\n", ''),
    Mutation('auto-config-seed', "configs/cifar10_isovolnet_seed.py leaves the schema's float32 "
             "(configs/cifar10.py sets 'auto' itself)",
             ('tests/test_mixed_precision.py::test_the_measured_configs_default_to_auto_and_'
              'the_schema_to_float32',),
             'configs/cifar10_isovolnet_seed.py', "  config.dtype = 'auto'\n", ''),
    Mutation('auto-config-resnet20', "configs/cifar10_resnet20.py leaves the schema's float32",
             ('tests/test_mixed_precision.py::test_the_measured_configs_default_to_auto_and_'
              'the_schema_to_float32',),
             'configs/cifar10_resnet20.py', "  config.dtype = 'auto'\n", ''),
    Mutation('bf16-cast-ties', "bf16_casts rounds ties up, not to the even bfloat16",
             ('tests/test_bf16_casts.py::test_to_bfloat16_gives_astypes_bits',),
             'isovolnet_jax/models/bf16_casts.py', 'lsb = (bits >> 16) & 1', 'lsb = bits * 0 + 1'),
    Mutation('bf16-cast-nan', "bf16_casts lets rounding turn a NaN into inf",
             ('tests/test_bf16_casts.py::test_to_bfloat16_gives_astypes_bits',),
             'isovolnet_jax/models/bf16_casts.py',
             '  rounded = jnp.where(jnp.isnan(x), jnp.uint32(_BF16_NAN), rounded)', ''),
    Mutation('bf16-cast-grad', "bf16_casts.to_float32's gradient doubles the cotangent",
             ('tests/test_bf16_casts.py::test_gradients_are_astypes',),
             'isovolnet_jax/models/bf16_casts.py', 'lambda _, g: (to_bfloat16(g),)',
             'lambda _, g: (to_bfloat16(g * 2),)'),
    Mutation('bf16-cast-cpu-astype', 'bf16_casts lowers astype for CPU too',
             ('tests/test_bf16_casts.py::test_cpu_lowers_to_bit_operations_cuda_to_converts',),
             'isovolnet_jax/models/bf16_casts.py', 'cpu=_bits_to_bfloat16,',
             'cpu=lambda x: x.astype(jnp.bfloat16),'),
    Mutation('mixed-astype', 'the mixed_bfloat16 policy casts with astype',
             ('tests/test_bf16_casts.py::test_mixed_train_step_casts_with_bits_and_same_numbers',),
             'isovolnet_jax/models/layers.py', 'cast = bf16_casts.cast  #',
             'cast = lambda x, d: x.astype(d)  #'),
    Mutation('fast-cnn-stem-unfused', "FastCNN's stem is no longer one call in inference",
             ('tests/test_onednn_bias_act.py::test_fast_cnn_inference_is_all_fused_on_cpu_stem_included',),
             'isovolnet_jax/models/fast_cnn.py', 'if layers.fuses_inference(self, train):',
             'if False:', env=(('CI', 'true'),), build=True),
    # The oneDNN kernels (isovolnet_jax/onednn): conv.cc rebuilt in the scratch
    # checkout; CI=true so that an extension the start-up probe refuses fails
    # the tests rather than skipping them.
    Mutation('onednn-kh-kw', 'conv.cc swaps the kernel\'s rows and columns',
             ('tests/test_onednn.py::test_float32_values_and_both_gradients_match_lax',),
             'isovolnet_jax/onednn/conv.cc', 'g.kh = k[0]; g.kw = k[1];',
             'g.kh = k[1]; g.kw = k[0];', env=(('CI', 'true'),), build=True),
    Mutation('onednn-stride-axes', 'conv.cc swaps the row and column strides',
             ('tests/test_onednn.py::test_float32_values_and_both_gradients_match_lax',),
             'isovolnet_jax/onednn/conv.cc', 'g.strides = {strides[0], strides[1]};',
             'g.strides = {strides[1], strides[0]};', env=(('CI', 'true'),), build=True),
    Mutation('onednn-wrong-tap', "conv.cc reads a grouped kernel's tap (j, i) for (i, j)",
             ('tests/test_onednn.py::test_float32_values_and_both_gradients_match_lax',),
             'isovolnet_jax/onednn/conv.cc', 'memory::dims{og, 1, o, kw * i * o, i * o}',
             'memory::dims{og, 1, o, i * o, kh * i * o}', env=(('CI', 'true'),), build=True),
    Mutation('onednn-no-transpose', 'conv.cc leaves the kernel gradient in oneDNN\'s '
             'layout (no reorder back to HWIO)',
             ('tests/test_onednn.py::test_float32_values_and_both_gradients_match_lax',),
             'isovolnet_jax/onednn/conv.cc',
             '                                 {DNNL_ARG_SCRATCHPAD, scratch}});\n'
             '    if (entry->reorder) run_reorder();\n',
             '                                 {DNNL_ARG_SCRATCHPAD, scratch}});\n',
             env=(('CI', 'true'),), build=True),
    Mutation('onednn-out-size', 'the oneDNN call is given an output one row too tall',
             ('tests/test_onednn.py::test_float32_values_and_both_gradients_match_lax',),
             'isovolnet_jax/onednn/__init__.py',
             'return tuple(int(d) for d in out_shape), (strides,',
             'return (out_shape[0], out_shape[1] + 1, *out_shape[2:]), (strides,',
             env=(('CI', 'true'),), build=True),
    # The oneDNN calls' threads (tests/test_onednn_threads.py).
    Mutation('onednn-omp-not-restored', "conv.cc leaves the calling thread's OpenMP max "
             'threads at the count a call set',
             ('tests/test_onednn_threads.py::test_a_call_leaves_the_calling_threads_'
              'openmp_state_as_it_was',),
             'isovolnet_jax/onednn/conv.cc', '    if (changed_) omp_set_num_threads(saved_);',
             '    (void)saved_;', env=(('CI', 'true'),), build=True),
    Mutation('onednn-key-no-threads', "conv.cc's primitive cache key leaves out the "
             'thread count',
             ('tests/test_onednn_threads.py::test_two_thread_counts_build_two_primitives_'
              'and_the_policy_is_read_per_call',),
             'isovolnet_jax/onednn/conv.cc', 'pad_l[1], pad_r[0], pad_r[1], threads, act,',
             'pad_l[1], pad_r[0], pad_r[1], 0, act,', env=(('CI', 'true'),), build=True),
    Mutation('onednn-budget-kept', 'conv.cc never gives threads back to the budget',
             ('tests/test_onednn_threads.py::test_concurrent_calls_compute_right_and_'
              'return_the_budget',),
             'isovolnet_jax/onednn/conv.cc',
             'void GiveThreads(int64_t n) { budget_free += n; }',
             'void GiveThreads(int64_t n) { (void)n; }', env=(('CI', 'true'),), build=True),
    Mutation('onednn-no-eviction', "conv.cc's primitive cache never evicts",
             ('tests/test_onednn_threads.py::test_the_cache_evicts_the_least_recently_'
              'used_and_evicted_shapes_still_compute',),
             'isovolnet_jax/onednn/conv.cc', '  EvictLocked();\n  return entry;',
             '  return entry;', env=(('CI', 'true'),), build=True),
    # models/layers.py's 2x2 average pooling (four phases, custom VJP).
    Mutation('avg-pool-grad-scale', "avg_pool_2x2's gradient spreads g / 2, not g / 4",
             ('tests/test_layers.py::test_pooling_matches_flax_values_and_gradients',),
             'isovolnet_jax/models/layers.py',
             'quarter = (g.astype(jnp.float32) * 0.25)', 'quarter = (g.astype(jnp.float32) * 0.5)'),
    Mutation('avg-pool-odd-rows', "avg_pool_2x2's gradient shifts an odd input's dropped row "
             "to the top", ('tests/test_layers.py::test_pooling_matches_flax_values_and_gradients',),
             'isovolnet_jax/models/layers.py',
             'return (jnp.pad(dx, ((0, 0), (0, odd_h), (0, odd_w), (0, 0))),)',
             'return (jnp.pad(dx, ((0, 0), (odd_h, 0), (0, odd_w), (0, 0))),)'),
    Mutation('avg-pool-phase', 'avg_pool_2x2 sums one phase twice and drops another',
             ('tests/test_layers.py::test_pooling_matches_flax_values_and_gradients',),
             'isovolnet_jax/models/layers.py', 'for i in (0, 1) for j in (0, 1)]',
             'for i in (0, 0) for j in (0, 1)]'),
    # models/layers.py's training BatchNorm of few channels on the (N, H, W*C) view.
    Mutation('wide-bn-repeat', "BatchNormAct's per-channel vectors repeated, not tiled, over W",
             ('tests/test_layers.py::test_batch_norm_act_matches_flax_values_statistics_and_'
              'gradients',),
             'isovolnet_jax/models/layers.py', 'tile = lambda v: jnp.tile(v, shape[-2])',
             'tile = lambda v: jnp.repeat(v, shape[-2])'),
    Mutation('wide-bn-fold', "BatchNormAct folds the (W*C,) sums into channels the wrong way",
             ('tests/test_layers.py::test_batch_norm_act_matches_flax_values_statistics_and_'
              'gradients',),
             'isovolnet_jax/models/layers.py', 'fold = lambda v: v.reshape(-1, c).sum(0)',
             'fold = lambda v: v.reshape(c, -1).sum(1)'),
    Mutation('wide-bn-momentum', "BatchNormAct's running mean keeps 0.1 of the old, not 0.9",
             ('tests/test_layers.py::test_batch_norm_act_matches_flax_values_statistics_and_'
              'gradients',),
             'isovolnet_jax/models/layers.py',
             'ra_mean.value = m * ra_mean.value + (1 - m) * mean',
             'ra_mean.value = (1 - m) * ra_mean.value + m * mean'),
    Mutation('wide-bn-never', 'ConvNormAct never trains a narrow layer on the wide view',
             ('tests/test_layers.py::test_narrow_conv_norm_act_trains_on_the_wide_view',),
             'isovolnet_jax/models/layers.py', '_WIDE_BATCH_NORM_MAX_CHANNELS = 15',
             '_WIDE_BATCH_NORM_MAX_CHANNELS = 0'),
    # Inference's conv + BatchNorm + activation in one oneDNN call
    # (tests/test_onednn_bias_act.py).
    # (Dropping every post-op fails the start-up probe's bias + ReLU call, and
    # the extension is refused at load; this one passes the probe.)
    Mutation('bias-act-no-post-op', 'conv.cc drops every activation post-op but ReLU',
             ('tests/test_onednn_bias_act.py::test_values_match_plain_jax_and_the_handler_'
              'ran',),
             'isovolnet_jax/onednn/conv.cc', '  if (g.act != kNone) {', '  if (g.act == kRelu) {',
             env=(('CI', 'true'),), build=True),
    Mutation('bias-act-swish-alpha', "onednn's swish post-op takes alpha 2 (x * sigmoid(2x))",
             ('tests/test_onednn_bias_act.py::test_values_match_plain_jax_and_the_handler_'
              'ran',),
             'isovolnet_jax/onednn/__init__.py', "'swish': (2, 1.0, 0.0),",
             "'swish': (2, 2.0, 0.0),", env=(('CI', 'true'),), build=True),
    Mutation('bias-act-bias-unchecked', "conv.cc does not check the bias's shape",
             ('tests/test_onednn_bias_act.py::test_malformed_calls_are_refused_by_the_'
              'handler',),
             'isovolnet_jax/onednn/conv.cc', '        bias.dimensions()[0] != g.o)',
             '        false)', env=(('CI', 'true'),), build=True),
    Mutation('bias-act-fold-no-scale', 'the fold leaves the kernel unscaled by BatchNorm',
             ('tests/test_onednn_bias_act.py::test_models_in_inference_equal_the_unfused_'
              'modules',),
             'isovolnet_jax/models/layers.py',
             'w = (kernel.astype(jnp.float32) * mul).astype(operand)',
             'w = kernel.astype(operand)', env=(('CI', 'true'),), build=True),
    Mutation('bias-act-fold-no-mean', "the fold's bias leaves out the running mean",
             ('tests/test_onednn_bias_act.py::test_models_in_inference_equal_the_unfused_'
              'modules',),
             'isovolnet_jax/models/layers.py', 'b = (bias - mean * mul).astype(jnp.float32)',
             'b = bias.astype(jnp.float32)', env=(('CI', 'true'),), build=True),
    Mutation('bias-act-layer-on-cuda', 'ConvNormAct folds BatchNorm on every platform',
             ('tests/test_onednn_bias_act.py::test_isovolnet_inference_is_all_fused_on_cpu_'
              'and_unfused_for_cuda',),
             'isovolnet_jax/models/layers.py',
             'return lax.platform_dependent(x, kernel, cpu=folded, default=unfused)',
             'return folded(x, kernel)', env=(('CI', 'true'),), build=True),
    Mutation('bias-act-on-cuda', 'conv_bias_act lowers its CPU custom call for every platform',
             ('tests/test_onednn_bias_act.py::test_conv_bias_act_lowered_for_cuda_is_the_'
              'reference',),
             'isovolnet_jax/onednn/__init__.py',
             'return lax.platform_dependent(x, kernel, bias, cpu=fused, default=reference)',
             'return fused(x, kernel, bias)', env=(('CI', 'true'),), build=True),
    Mutation('swish-after-call-dropped', "a narrow depthwise conv's swish, moved out of the "
             'oneDNN call, is never applied',
             ('tests/test_onednn_bias_act.py::test_models_in_inference_equal_the_unfused_modules',),
             'isovolnet_jax/models/layers.py', '      y = act(y.astype(jnp.float32))',
             '      y = y.astype(jnp.float32)', env=(('CI', 'true'),), build=True),
    Mutation('swish-narrow-in-post-op', "a narrow depthwise conv's swish stays a post-op",
             ('tests/test_onednn_bias_act.py::test_a_narrow_depthwise_convs_swish_runs_after_'
              'the_call',),
             'isovolnet_jax/models/layers.py', '_SWISH_IN_XLA_MAX_CHANNELS = 8',
             '_SWISH_IN_XLA_MAX_CHANNELS = 0', env=(('CI', 'true'),), build=True),
    Mutation('physical-cores-logical', 'cpu_devices.physical_cores counts hyper-threads',
             ('tests/test_cli.py::test_physical_cores_counts_one_cpu_per_core_'
              'of_the_affinity_mask',),
             'isovolnet_jax/cpu_devices.py', '  return max(1, len(cores))',
             '  return max(1, len(cpus))'),
)


def build_ext(checkout: Path) -> None:
  """Compiles isovolnet_jax/onednn/conv.cc in place in `checkout`."""
  out = subprocess.run([sys.executable, 'setup.py', '-q', 'build_ext', '--inplace'],
                       cwd=checkout, capture_output=True, text=True)
  if out.returncode != 0 or not list((checkout / 'isovolnet_jax/onednn').glob('_conv*.so')):
    raise RuntimeError(f'building the oneDNN extension failed:\n{out.stderr[-2000:]}')


def stale(m: Mutation, root: Path = ROOT) -> str:
  """Why the mutation no longer applies to the code under `root`, or ''."""
  if m.path:
    n = (root / m.path).read_text().count(m.old)
    if n != 1:
      return f'{m.path} holds its text {n} times, not once'
  for test in m.tests:
    file, name = test.split('::')
    name = name.split('[')[0]  # A parametrized test's node id: its function's name.
    if f'def {name}(' not in (root / file).read_text():
      return f'{test} does not exist'
  return ''


def run(m: Mutation, checkout: Path) -> tuple[bool, str]:
  """Applies `m` in `checkout`, runs its tests; (caught, last output line)."""
  original = (checkout / m.path).read_text() if m.path else None
  shared = checkout.parent / 'shared'
  try:
    if m.path:
      (checkout / m.path).write_text(original.replace(m.old, m.new))
    if m.build:
      build_ext(checkout)
    if m.no_data:
      shared.unlink()
    cmd = ([sys.executable, '-c', NO_TORCH] if m.no_torch
           else [sys.executable, '-m', 'pytest'])
    # -m '': the named tests run whatever their marks (setup.cfg's default
    # run leaves out the 'long' ones).
    out = subprocess.run([*cmd, '-q', '-m', '', *m.tests], cwd=checkout,
                         env={**os.environ, **dict(m.env)}, capture_output=True,
                         text=True)
    lines = [l for l in out.stdout.splitlines() if l.strip()]
    # pytest's 1: tests failed; 2: collection failed (the mutation broke an
    # import). 0, 4 and 5 (nothing collected: a test module that skips itself,
    # e.g. without the oneDNN extension in the scratch checkout) catch nothing.
    return out.returncode in (1, 2), lines[-1] if lines else out.stderr[-300:]
  finally:
    if m.path:
      (checkout / m.path).write_text(original)
    if m.build:  # The next mutations see the unmutated extension.
      build_ext(checkout)
    if not shared.exists():
      shared.symlink_to(ROOT.parent / 'shared')


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--only', default='', help='comma-separated mutation names')
  parser.add_argument('--list', action='store_true')
  parser.add_argument('--stale', action='store_true',
                      help='only check that each mutation still applies to HEAD')
  args = parser.parse_args()
  chosen = [m for m in MUTATIONS if not args.only or m.name in args.only.split(',')]
  if args.list or not chosen:
    for m in MUTATIONS:
      print(f'{m.name:18} {m.what}\n{"":18} caught by {", ".join(m.tests)}')
    return 0 if chosen else 2
  bad = 0
  with tempfile.TemporaryDirectory() as tmp:
    checkout = Path(tmp, 'repo')
    subprocess.run(['git', 'worktree', 'add', '--detach', '-q', str(checkout), 'HEAD'],
                   cwd=ROOT, check=True)
    Path(tmp, 'shared').symlink_to(ROOT.parent / 'shared')
    try:
      for m in chosen:
        why = stale(m, checkout)
        if why or args.stale:
          bad += bool(why)
          print(f'STALE     {m.name}: {why}' if why else f'applies   {m.name}', flush=True)
          continue
        start = time.time()
        caught, last = run(m, checkout)
        bad += not caught
        print(f'{"caught" if caught else "SURVIVED":9} {m.name} ({m.what}; '
              f'{time.time() - start:.0f} s): {last}', flush=True)
    finally:
      subprocess.run(['git', 'worktree', 'remove', '--force', str(checkout)], cwd=ROOT)
  return 1 if bad else 0


if __name__ == '__main__':
  sys.exit(main())
