"""Measurement tools, not part of the library: speed, efficiency, profiles.

Each is a command, `python -m isovolnet_jax.bench.NAME --help`:
benchmark (JAX vs PyTorch img/s), efficiency (separable vs standard convs),
conv_layers and layer_profile (per-layer times, against PyTorch's ops),
step_memory (a training step's peak memory, JAX vs PyTorch), input_pipeline
(memory vs stream input), time_to_accuracy (wall time to a test accuracy over seeds),
speed_table (docs/performance.md's speed table from saved benchmark outputs),
launch_time (launch to exit, cold and warm compilation cache), gpu_check
(the one check to run on a GPU: training, launch and benchmark figures as JSON).
torch_models holds the PyTorch twins the benchmark times (PyTorch: `pip
install -e '.[bench]'`).
"""


def measure_in_subprocess(module: str, args: list[str], what: str,
                          env: dict[str, str] | None = None) -> dict:
  """Runs `python -m MODULE ARGS` (a measurement in a fresh process: its own
  RSS, its own caches) and returns the JSON object on its last stdout line. A
  failure is an InputError naming `what` and the process's last stderr line."""
  import json  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel

  from isovolnet_jax.errors import InputError  # pylint: disable=import-outside-toplevel

  out = subprocess.run([sys.executable, '-m', module, *args], capture_output=True,
                       text=True, env=env, check=False)
  if out.returncode:
    tail = out.stderr.strip().splitlines()[-1:] or [f'exit status {out.returncode}']
    raise InputError(f'measuring {what} failed: {tail[0]}')
  return json.loads(out.stdout.strip().splitlines()[-1])
