"""The library never imports the tools: a module outside isovolnet_jax/tools/
and bench/ that imports isovolnet_jax.tools fails here, at any depth of the
file (imports inside functions count)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'isovolnet_jax'
COMMANDS = ('tools', 'bench')  # May import each other and the library.


def imported_modules(path: Path) -> set[str]:
  names = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      names |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      # `from isovolnet_jax import tools` names the package in its aliases.
      names |= {node.module, *(f'{node.module}.{a.name}' for a in node.names)}
  return names


def library_imports_of_tools() -> list[str]:
  found = []
  for path in sorted(PACKAGE.rglob('*.py')):
    if path.relative_to(PACKAGE).parts[0] in COMMANDS:
      continue
    for name in sorted(imported_modules(path)):
      if name == 'isovolnet_jax.tools' or name.startswith('isovolnet_jax.tools.'):
        found.append(f'{path.relative_to(PACKAGE.parent)} imports {name}')
  return found


def test_no_library_module_imports_a_tool():
  assert library_imports_of_tools() == []


def test_the_check_sees_an_import_inside_a_function(tmp_path):
  module = tmp_path / 'm.py'
  module.write_text('def f():\n  from isovolnet_jax import tools\n')
  assert 'isovolnet_jax.tools' in imported_modules(module)
