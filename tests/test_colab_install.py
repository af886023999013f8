"""notebooks/colab_install.py, the notebooks' Colab install, against what Colab
has: a clean venv that already holds tensorflow and jax. They must stay at
their versions, and the package must import.

Slow-marked (not in the default run): it downloads about 1 GB (tensorflow
alone ~600 MB). `pytest -m slow tests/test_colab_install.py`.
"""

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = ('import importlib.metadata as m\n'
            'for d in ("jax", "jaxlib", "tensorflow", "tensorflow-cpu", "ipykernel"):\n'
            '  try: print(d, m.version(d))\n'
            '  except m.PackageNotFoundError: print(d, None)\n')


def versions(python: Path) -> dict:
  out = subprocess.run([python, '-c', VERSIONS], capture_output=True, text=True,
                       check=True).stdout
  return dict(line.split() for line in out.splitlines())


def run(*args, cwd=None):
  proc = subprocess.run(list(map(str, args)), capture_output=True, text=True,
                        cwd=cwd, timeout=1800)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc


@pytest.mark.slow
def test_colab_install_keeps_tensorflow_and_jax(tmp_path):
  # What the package is tested with here; Colab brings its own.
  jax_version = importlib.metadata.version('jax')
  try:
    tf_version = importlib.metadata.version('tensorflow-cpu')
  except importlib.metadata.PackageNotFoundError:
    tf_version = importlib.metadata.version('tensorflow')
  repo = tmp_path / 'isovolnet_jax'  # A copy: `pip install -e` writes egg-info there.
  shutil.copytree(ROOT / 'isovolnet_jax', repo / 'isovolnet_jax',
                  ignore=shutil.ignore_patterns('__pycache__'))
  for f in ('setup.cfg', 'pyproject.toml', 'README.md', 'notebooks/colab_install.py'):
    (repo / f).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / f, repo / f)

  run(sys.executable, '-m', 'venv', tmp_path / 'venv')
  python = tmp_path / 'venv' / 'bin' / 'python'
  run(python, '-m', 'pip', 'install', '-q', f'tensorflow=={tf_version}', f'jax=={jax_version}')
  before = versions(python)
  assert before['jax'] == jax_version and before['tensorflow'] == tf_version

  out = run(python, 'notebooks/colab_install.py', cwd=repo).stdout
  print(out)
  after = versions(python)
  assert after == before  # jax, jaxlib, tensorflow as they were; no tensorflow-cpu or ipykernel.
  assert after['tensorflow-cpu'] == 'None' and after['ipykernel'] == 'None'
  # Imported from elsewhere than the repository: through the editable install.
  run(python, '-c', 'import isovolnet_jax.train, tensorflow_datasets, clu, flax; '
      'print(isovolnet_jax.train.__file__)', cwd=tmp_path)
