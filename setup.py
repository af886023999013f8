"""Builds the oneDNN convolution kernels (isovolnet_jax/onednn/conv.cc).

Everything else is in setup.cfg. The extension is optional: where it cannot
build (no C++ compiler, not x86-64 Linux, headers missing) the install still
succeeds and `model.conv_impl='auto'` keeps the pure-JAX convolutions.

It compiles against the XLA FFI headers of the jaxlib that will run it:
the environment's own jaxlib where one is installed (`pip install
--no-build-isolation -e .`, or an isolated build into an environment that
already holds jaxlib), else the build environment's, which pyproject.toml
pins to the version setup.cfg resolves to. The SHA-256 of conv.cc and that
jaxlib's version are compiled in; isovolnet_jax.onednn refuses a stale or
mismatched build at load, naming the rebuild command.
"""

import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import sys
import sysconfig

from setuptools import Extension, setup

SOURCE = 'isovolnet_jax/onednn/conv.cc'


def _jaxlib_dirs():
  """jaxlib package folders, the target environment's first: under build
  isolation sys.path holds the build environment's, but sysconfig still names
  the interpreter's own site-packages."""
  dirs = []
  for key in ('platlib', 'purelib'):
    dirs.append(os.path.join(sysconfig.get_paths()[key], 'jaxlib'))
  try:
    import site
    dirs.append(os.path.join(site.getusersitepackages(), 'jaxlib'))
  except Exception:  # pylint: disable=broad-except
    pass
  spec = importlib.util.find_spec('jaxlib')
  if spec and spec.submodule_search_locations:
    dirs.extend(spec.submodule_search_locations)
  return [d for d in dict.fromkeys(dirs)
          if os.path.exists(os.path.join(d, 'include', 'xla', 'ffi', 'api', 'ffi.h'))]


def _jaxlib_version(jaxlib_dir):
  with open(os.path.join(jaxlib_dir, 'version.py')) as f:
    return re.search(r"^_version\s*(?::\s*str)?\s*=\s*['\"]([^'\"]+)['\"]", f.read(),
                     re.M).group(1)


def _onednn_extension():
  if sys.platform != 'linux' or platform.machine() != 'x86_64':
    return []  # onednn-cpu-gomp is published for x86-64 Linux only.
  try:
    onednn = importlib.metadata.distribution('onednn-devel-cpu-gomp')
    header = next(f for f in onednn.files if f.name == 'dnnl.hpp'
                  and f.parent.name == 'dnnl')
    include = os.path.dirname(os.path.dirname(os.path.dirname(onednn.locate_file(header))))
    runtime = importlib.metadata.distribution('onednn-cpu-gomp')
    lib = next(f for f in runtime.files if f.name == 'libdnnl.so')
    lib_dir = os.path.realpath(os.path.dirname(runtime.locate_file(lib)))
    jaxlib = _jaxlib_dirs()[0]
    jaxlib_version = _jaxlib_version(jaxlib)
  except (importlib.metadata.PackageNotFoundError, StopIteration, AttributeError,
          TypeError, IndexError, OSError) as e:
    print(f'isovolnet_jax: not building the oneDNN kernels ({e!r})', file=sys.stderr)
    return []
  with open(SOURCE, 'rb') as f:
    source_hash = hashlib.sha256(f.read()).hexdigest()[:16]
  print(f'isovolnet_jax: building the oneDNN kernels against jaxlib {jaxlib_version} '
        f'({jaxlib}) and {lib_dir}', file=sys.stderr)
  return [Extension(
      'isovolnet_jax.onednn._conv', [SOURCE],
      include_dirs=[include, os.path.join(jaxlib, 'include')],
      define_macros=[('ISOVOLNET_SOURCE_HASH', f'"{source_hash}"'),
                     ('ISOVOLNET_JAXLIB_VERSION', f'"{jaxlib_version}"')],
      library_dirs=[lib_dir], libraries=['dnnl'],
      # libdnnl.so.3 at run time: where it was at build time (a
      # --no-build-isolation build), or <prefix>/lib seen from
      # <prefix>/lib/pythonX.Y/site-packages/isovolnet_jax/onednn (a wheel);
      # isovolnet_jax.onednn also preloads it from wherever pip put it.
      runtime_library_dirs=['$ORIGIN/../../../..', lib_dir],
      extra_compile_args=['-std=c++17', '-O2', '-fopenmp', '-Wno-return-type'],
      extra_link_args=['-fopenmp'],
      optional=True)]  # A failed build warns; the install goes on.


setup(ext_modules=_onednn_extension())
