"""Builds the oneDNN convolution kernels (isovolnet_jax/onednn/conv.cc).

Everything else is in setup.cfg. The extension is optional: where it cannot
build (no C++ compiler, not x86-64 Linux, headers missing) the install still
succeeds and `model.conv_impl='auto'` keeps the pure-JAX convolutions.
"""

import importlib.metadata
import importlib.util
import os
import platform
import sys

from setuptools import Extension, setup


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
    lib_dir = os.path.dirname(runtime.locate_file(lib))
    jaxlib = importlib.util.find_spec('jaxlib').submodule_search_locations[0]
  except (importlib.metadata.PackageNotFoundError, StopIteration, AttributeError,
          TypeError) as e:
    print(f'isovolnet_jax: not building the oneDNN kernels ({e!r})', file=sys.stderr)
    return []
  return [Extension(
      'isovolnet_jax.onednn._conv', ['isovolnet_jax/onednn/conv.cc'],
      include_dirs=[include, os.path.join(jaxlib, 'include')],
      library_dirs=[lib_dir], libraries=['dnnl'],
      extra_compile_args=['-std=c++17', '-O2', '-fopenmp', '-Wno-return-type'],
      extra_link_args=['-fopenmp'],
      optional=True)]  # A failed build warns; the install goes on.


setup(ext_modules=_onednn_extension())
