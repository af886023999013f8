"""Moved to `python -m isovolnet_jax.bench.speed_table`; this path keeps the
command results/speed/README.md cites working."""

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # This checkout's package.
runpy.run_module('isovolnet_jax.bench.speed_table', run_name='__main__', alter_sys=True)
