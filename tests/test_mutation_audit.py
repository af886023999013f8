"""The mutation audit's machinery, on a scratch checkout of its own.

The audit itself (`python tests/mutation_audit.py`, minutes) breaks the real
code and runs the real tests; it is run on demand. Here only its logic is
tested, so that no refactor of the code it mutates breaks the suite.
"""

import mutation_audit

MODULE = 'def double(x):\n  return 2 * x\n'
TEST = 'from lib import double\n\n\ndef test_double():\n  assert double(3) == 6\n'


def checkout(tmp_path):
  root = tmp_path / 'repo'
  root.mkdir()
  (root / 'lib.py').write_text(MODULE)
  (root / 'test_lib.py').write_text(TEST)
  return root


def mutation(**fields):
  return mutation_audit.Mutation(**{
      'name': 'double', 'what': 'double adds', 'tests': ('test_lib.py::test_double',),
      'path': 'lib.py', 'old': 'return 2 * x', 'new': 'return 2 + x', **fields})


def test_a_mutation_applies_when_its_text_is_there_once_and_its_tests_exist(tmp_path):
  root = checkout(tmp_path)
  assert mutation_audit.stale(mutation(), root) == ''
  assert 'holds its text 0 times' in mutation_audit.stale(mutation(old='return 3 * x'), root)
  assert 'holds its text 2 times' in mutation_audit.stale(mutation(old='x'), root)
  assert 'does not exist' in mutation_audit.stale(
      mutation(tests=('test_lib.py::test_triple',)), root)


def test_a_mutation_is_caught_by_its_failing_test_and_undone(tmp_path):
  root = checkout(tmp_path)
  caught, last = mutation_audit.run(mutation(), root)
  assert caught, last
  assert (root / 'lib.py').read_text() == MODULE  # Restored.
  harmless = mutation(old='return 2 * x', new='return x * 2')
  caught, last = mutation_audit.run(harmless, root)
  assert not caught and 'passed' in last


def test_mutation_names_are_unique_and_each_names_a_test():
  names = [m.name for m in mutation_audit.MUTATIONS]
  assert len(names) == len(set(names))
  assert all(m.tests and all('::' in t for t in m.tests) for m in mutation_audit.MUTATIONS)
