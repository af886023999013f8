"""tests/mutation_audit.py still applies: each mutation's text is in the code
once and the test named to catch it exists (running them takes ~7 min:
`python tests/mutation_audit.py`)."""

import pytest

import mutation_audit


@pytest.mark.parametrize('mutation', mutation_audit.MUTATIONS, ids=lambda m: m.name)
def test_mutation_still_applies(mutation):
  why = mutation_audit.stale(mutation)
  assert not why, f'{mutation.name}: {why}; update tests/mutation_audit.py with the code'
