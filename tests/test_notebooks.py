"""Runs both notebooks top to bottom on the small CIFAR copy (about 1-2 minutes).

Parameters are injected as papermill does (a cell after the one tagged
`parameters`); cells whose first line is `# COLAB ONLY` are left out.
"""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from isovolnet_jax import config_defaults
from isovolnet_jax import train

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / 'notebooks'


def execute(name: str, params: dict, cwd: Path):
  nb = nbformat.read(NOTEBOOKS / name, as_version=4)
  nb.cells = [c for c in nb.cells if not (
      c.cell_type == 'code' and c.source.lstrip().startswith('# COLAB ONLY'))]
  at = next(i for i, c in enumerate(nb.cells) if 'parameters' in c.metadata.get('tags', []))
  injected = nbformat.v4.new_code_cell('\n'.join(f'{k} = {v!r}' for k, v in params.items()))
  injected.metadata['tags'] = ['injected-parameters']
  nb.cells.insert(at + 1, injected)
  # cwd: the kernel's working directory, so nothing lands in the repository.
  NotebookClient(nb, kernel_name='python3', timeout=300, startup_timeout=120,
                 resources={'metadata': {'path': str(cwd)}}).execute()
  nbformat.write(nb, cwd / name)  # Kept beside the test's tmp files for a look on failure.
  return nb


def text(nb) -> str:
  return ''.join(o.get('text', '') for c in nb.cells if c.cell_type == 'code'
                 for o in c.outputs if o.output_type == 'stream' and o.name == 'stdout')


def pngs(cell) -> int:
  return sum('image/png' in o.get('data', {}) for o in cell.outputs)


def cell_with(nb, snippet: str):
  return next(c for c in nb.cells if c.cell_type == 'code' and snippet in c.source)


def test_committed_notebooks_have_no_outputs():
  for path in NOTEBOOKS.glob('*.ipynb'):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for c in nb.cells:
      if c.cell_type == 'code':
        assert not c.outputs and c.execution_count is None, f'{path.name}: strip its outputs'
    assert sum('parameters' in c.metadata.get('tags', []) for c in nb.cells) == 1


def test_notebooks_install_on_colab_with_colab_install_py():
  """Both install through notebooks/colab_install.py (tested in a venv by
  tests/test_colab_install.py), never `pip install -e` with its dependencies."""
  for path in NOTEBOOKS.glob('*.ipynb'):
    sources = [c.source for c in nbformat.read(path, as_version=4).cells
               if c.cell_type == 'code']
    assert sum("run_path('notebooks/colab_install.py'" in s for s in sources) == 1, path.name
    assert not any(re.search(r'^\s*[!%]pip', s, re.M) for s in sources), path.name


def test_restore_and_evaluate(small_cifar, tmp_path):
  config = config_defaults.load_config_file(ROOT / 'configs' / 'smoke.py')
  config.data.source, config.data.path = 'folder', str(small_cifar)
  config.data.cache_dir = str(tmp_path / 'cache')
  final = train.train_and_evaluate(config, str(tmp_path / 'run'))

  nb = execute('restore_and_evaluate.ipynb', {
      'WORKDIR': str(tmp_path / 'run'), 'CHECKPOINT': 'latest',
      'DATA_PATH': str(small_cifar)}, tmp_path)
  out = text(nb)
  assert 'isovolnet at step 20' in out
  assert '200 test images' in out
  accuracy = float(re.search(r'test accuracy: ([0-9.]+) \(\d+/200\) at step 20', out)[1])
  # Same checkpoint, same images: what training measured at its end (give or
  # take one image whose top two logits tie within float rounding).
  assert accuracy == pytest.approx(final['test']['accuracy'], abs=1 / 200 + 1e-4)
  assert pngs(cell_with(nb, 'plt.subplots(3, 8')) == 1
  assert pngs(cell_with(nb, 'Confusion matrix')) == 1
  assert re.search(r'^\s+airplane: [0-9.]+ of 20$', out, re.M)
  # The evaluate code drew it: evaluate.report's files are there.
  assert (tmp_path / 'run' / 'eval' / 'test_confusion_matrix.png').stat().st_size > 0


@pytest.mark.long
def test_colab_tpu_trains_restores_and_predicts(small_cifar, tmp_path):
  nb = execute('colab_tpu.ipynb', {
      'WORKDIR': str(tmp_path / 'run'), 'NUM_TRAIN_STEPS': 10, 'DATA_SOURCE': 'folder',
      'DATA_PATH': str(small_cifar),
      # small_cifar has 600 training images: the default 5000 for validation won't do.
      'CONFIG_OVERRIDES': {'batch_size': 32, 'data.val_size': 100,
                           'data.cache_dir': str(tmp_path / 'cache')}}, tmp_path)
  out = text(nb)
  assert re.search(r'^platform: \w+, \d+ device', out, re.M)
  assert 'isovolnet, batch 32, 10 steps, data: folder' in out
  assert re.search(r'^test: accuracy [0-9.]+, loss [0-9.]+$', out, re.M)
  assert pngs(cell_with(nb, 'display(Image(')) == 1
  assert 'restored step 10' in out
  assert len(re.findall(r'^true +\w+: \w+ [0-9.]+, \w+ [0-9.]+, \w+ [0-9.]+$', out, re.M)) == 8
  assert pngs(cell_with(nb, 'predict.top_k(p')) == 1
  assert (tmp_path / 'run' / 'checkpoints' / '10').is_dir()
