"""config_defaults: the one function that applies overrides (sweep points,
`evaluate --config.KEY=VALUE`, the benchmarks, the tests)."""

import ml_collections
import pytest

from isovolnet_jax import config_defaults
from isovolnet_jax.errors import InputError


def test_apply_overrides_parses_like_the_command_line():
  config = ml_collections.ConfigDict(
      {'a': 1.0, 'b': True, 'c': (0.5, 0.75), 'd': 'x', 'g': {'n': 3}})
  out = config_defaults.apply_overrides(
      config, {'a': '1e-3', 'b': 'false', 'c': '(0.25,)', 'd': '7', 'g.n': 4})
  assert (out.a, out.b, out.c, out.d, out.g.n) == (1e-3, False, (0.25,), '7', 4)
  assert config.a == 1.0  # A copy; the original is untouched.
  with pytest.raises(InputError, match=r"unknown config key 'g.m'; did you mean 'g.n'"):
    config_defaults.apply_overrides(config, {'g.m': 1})
  with pytest.raises(InputError, match='is a group'):
    config_defaults.apply_overrides(config, {'g': 1})
  with pytest.raises(InputError, match="'b' is a bool"):
    config_defaults.apply_overrides(config, {'b': 'maybe'})
