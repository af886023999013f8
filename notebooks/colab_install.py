"""Installs this package into Colab's Python, keeping Colab's JAX and TensorFlow.

The notebooks run it from the repository root (`runpy.run_path`, so a failure
stops *Run all*); `python notebooks/colab_install.py` does the same elsewhere.

`pip install -e .` is not used on Colab: its `tensorflow-cpu` requirement is
another distribution than Colab's `tensorflow` with the same files, so pip
would install it over Colab's TensorFlow, and it could swap Colab's JAX (built
for its TPU or GPU) for another build; `.[test]` would also replace Colab's
pinned ipykernel. Instead: the package without its dependencies, then its
other requirements, with JAX and TensorFlow (and their accelerator plugins)
held at the installed versions by a constraints file. pip then only adds or
upgrades what is missing or too old, and if JAX or TensorFlow would have to
change it refuses, naming the package, rather than replace them.
"""

import importlib
import importlib.metadata
import re
import subprocess
import sys
import tempfile

# Distributions that must stay as the runtime installed them.
HELD = re.compile(r'jax|jaxlib|jax-cuda\d+-(plugin|pjrt)|libtpu(-nightly)?'
                  r'|tensorflow(-cpu|-gpu|-tpu)?')


def pip_install(*args):
  subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', *args], check=True)


def main():
  held = sorted(f'{d.metadata["Name"]}=={d.version}'
                for d in importlib.metadata.distributions()
                if HELD.fullmatch(re.sub(r'[-_.]+', '-', d.metadata['Name'].lower())))
  pip_install('--no-deps', '-e', '.')
  importlib.invalidate_caches()
  # setup.cfg's install_requires, less tensorflow-cpu (the runtime's tensorflow
  # serves) and the extras. jax stays in: a JAX older than the package asks
  # for is a conflict pip reports, not a silent mismatch.
  needs = [r for r in importlib.metadata.requires('isovolnet_jax')
           if 'extra ==' not in r and not r.startswith('tensorflow-cpu')]
  with tempfile.NamedTemporaryFile('w', suffix='.txt') as constraints:
    constraints.write('\n'.join(held) + '\n')
    constraints.flush()
    try:
      pip_install('-c', constraints.name, *needs)
    except subprocess.CalledProcessError:
      raise RuntimeError(
          f'pip refused (see above): keeping {", ".join(held)}, the package\'s '
          f'requirements cannot be met. If it names jax, upgrade the runtime\'s '
          f'JAX (`pip install -U "jax[tpu]"`, or "jax[cuda12]" on a GPU) and '
          f'restart the session.') from None
  print('kept:', ', '.join(held))


if __name__ == '__main__':
  main()
