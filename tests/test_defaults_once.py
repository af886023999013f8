"""A default lives in one place, the config schema: library code reads
`config.key`, never `config.get('key', default)` for a key the schema
declares (every config starts from the schema, and older runs' configs are
upgraded by `config_defaults.add_missing`, so such a fallback never applies:
it only drifts from the schema)."""

import ast
from pathlib import Path

from isovolnet_jax import config_defaults

ROOT = Path(__file__).resolve().parents[1]
# Modules that read raw JSON of older runs (dicts, not configs).
RAW_JSON_READERS = {'isovolnet_jax/tools/rewrite_results.py'}


def schema_keys(config=None) -> set[str]:
  config = config_defaults.get_base_config() if config is None else config
  keys = set()
  for key, value in config.items():
    keys.add(key)
    if hasattr(value, 'items'):
      keys |= schema_keys(value)
  return keys


def repeated_defaults(source: str, keys: set[str]) -> list[tuple[int, str]]:
  """(line, key) of every `X.get('key', default)` with a schema key."""
  found = []
  for node in ast.walk(ast.parse(source)):
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr == 'get' and len(node.args) == 2
        and isinstance(node.args[0], ast.Constant) and node.args[0].value in keys
        and not (isinstance(node.func.value, ast.Attribute)
                 and node.func.value.attr == 'environ')):
      found.append((node.lineno, node.args[0].value))
  return found


def test_no_library_module_repeats_a_schema_default():
  keys = schema_keys()
  offenders = [f'{path.relative_to(ROOT)}:{line} {key!r}'
               for path in sorted((ROOT / 'isovolnet_jax').rglob('*.py'))
               if str(path.relative_to(ROOT)) not in RAW_JSON_READERS
               for line, key in repeated_defaults(path.read_text(), keys)]
  assert not offenders, 'schema defaults repeated in the library: ' + ', '.join(offenders)


def test_the_scan_finds_a_repeated_default():
  source = "a = opt.get('momentum', 0.9)\nb = os.environ.get('momentum', 1)\nc = d.get('x', 1)"
  assert repeated_defaults(source, schema_keys()) == [(1, 'momentum')]
