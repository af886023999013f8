"""results_tables: every committed table is what the run files give."""

import re
import shutil

from isovolnet_jax.tools import results_tables


def test_committed_tables_match_the_run_files(capsys):
  assert results_tables.main(['--check']) == 0, capsys.readouterr().out


def test_every_table_is_placed_once_or_more():
  text = ''.join(p.read_text() for p in results_tables.markdown_files())
  placed = {m['name'] for m in results_tables.MARKER.finditer(text)}
  assert placed == set(results_tables.TABLES)


def test_a_changed_figure_is_caught(tmp_path, capsys):
  readme = tmp_path / 'README.md'
  shutil.copy(results_tables.ROOT / 'results/isovolnet_equal_time/README.md', readme)
  text = readme.read_text()
  body = results_tables.MARKER.search(text)['body']
  changed = body.replace('62.2 ± 0.8', '62.3 ± 0.8', 1)
  assert changed != body
  readme.write_text(text.replace(body, changed))
  assert results_tables.main(['--check', str(readme)]) == 1
  out = capsys.readouterr().out
  assert '-| IsoVolNet' in out and '62.3 ± 0.8' in out
  assert results_tables.main([str(readme)]) == 0  # Rewriting restores it.
  assert readme.read_text() == text


def test_an_unknown_table_is_refused(tmp_path):
  readme = tmp_path / 'README.md'
  readme.write_text('<!-- table:nothing begin -->\n<!-- table:nothing end -->\n')
  try:
    results_tables.main(['--check', str(readme)])
  except KeyError as e:
    assert 'nothing' in str(e)
  else:
    raise AssertionError('an unknown table name passed')


def test_seed000_verdict_states_both_comparisons():
  e = results_tables.equal_time()
  (d1, s1), (d2, s2) = e['params'], e['default']
  assert d1 > 0 and d2 > 0 and s1 > 0 and s2 > 0  # doubling leads; then IsoVolNet
  verdict = results_tables.equal_time_verdict()
  assert f'{d1:.2f} points' in verdict and f'{d2:.2f} points' in verdict
  assert re.search(r'\d\.\d SE', verdict)
