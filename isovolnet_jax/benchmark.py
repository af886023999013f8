"""Moved to `python -m isovolnet_jax.bench.benchmark`; this name keeps older commands
(results/speed/README.md, configs/sweeps/isovolnet_equal_time.py) working."""

import runpy

if __name__ == '__main__':
  runpy.run_module('isovolnet_jax.bench.benchmark', run_name='__main__', alter_sys=True)
