"""Moved to `python -m isovolnet_jax.bench.speed_table`; this path keeps older commands
(results/speed/README.md) working."""

import runpy

runpy.run_module('isovolnet_jax.bench.speed_table', run_name='__main__', alter_sys=True)
