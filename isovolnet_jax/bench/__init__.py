"""Measurement tools, not part of the library: speed, efficiency, profiles.

Each is a command, `python -m isovolnet_jax.bench.NAME --help`:
benchmark (JAX vs PyTorch img/s), efficiency (separable vs standard convs),
conv_layers and layer_profile (per-layer times), input_pipeline (memory vs
stream input), time_to_accuracy (wall time to a test accuracy over seeds),
speed_table (docs/performance.md's speed table from saved benchmark outputs).
torch_models holds the PyTorch twins the benchmark times (PyTorch: `pip
install -e '.[bench]'`).
"""
