"""JAX's persistent compilation cache, on by default for every command
(cli.setup_compilation_cache): a second launch loads the train step instead
of compiling it, and the off switches leave the cache dir empty."""

import os

import pytest

from isovolnet_jax import cli

from helpers import run_main

# 'lax': the oneDNN convolutions ('auto' on an x86 CPU) go through
# custom_partitioning, whose programs get a new cache key in every process
# (docs/training.md, "Compilation cache").
LAX = '--config.model.conv_impl=lax'
TRAIN_STEP = 'Compilation cache: train step'


def _train_step_line(proc) -> str:
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [l for l in proc.stderr.splitlines() if TRAIN_STEP in l]
  assert len(lines) == 1, proc.stderr[-3000:]
  return lines[0]


def test_second_launch_hits_the_cache_and_the_first_misses(small_cifar, cache_dir, tmp_path):
  first = run_main(tmp_path / 'a', LAX, '--config.num_train_steps=2',
                   data_path=small_cifar, cache_dir=cache_dir)
  assert 'train step miss' in _train_step_line(first)
  assert f'Compilation cache missed for the train step (jit_train_step) in {cache_dir / "jax_cache"}' \
      in first.stderr
  entries = os.listdir(cache_dir / 'jax_cache')
  assert any(e.startswith(('jit_train_step-', 'jit_resident_train_step-')) for e in entries), entries
  second = run_main(tmp_path / 'b', LAX, '--config.num_train_steps=2',
                    data_path=small_cifar, cache_dir=cache_dir)
  line = _train_step_line(second)
  assert 'train step hit' in line and ' 0 miss(es)' in line, line
  assert 'Compilation cache hit for the train step' in second.stderr


@pytest.mark.long
def test_the_flag_and_the_environment_turn_it_off(small_cifar, cache_dir, tmp_path):
  by_flag = run_main(tmp_path / 'a', LAX, '--config.num_train_steps=1',
                     '--compilation_cache=false', data_path=small_cifar, cache_dir=cache_dir)
  by_env = run_main(tmp_path / 'b', LAX, '--config.num_train_steps=1',
                    env={cli.COMPILATION_CACHE: '0'}, data_path=small_cifar,
                    cache_dir=cache_dir)
  for proc in (by_flag, by_env):
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Compilation cache' not in proc.stderr
  jax_cache = cache_dir / 'jax_cache'
  assert not jax_cache.exists() or not os.listdir(jax_cache)


def test_the_dir_follows_the_data_cache_dir(monkeypatch, tmp_path):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  assert cli.compilation_cache_dir('') == str(tmp_path / 'isovolnet_jax' / 'jax_cache')
  assert cli.compilation_cache_dir('/data/c') == '/data/c/jax_cache'
  from isovolnet_jax.data import sources
  assert str(sources.default_cache_dir()) == cli.default_cache_dir()
  for off in ('0', 'false', 'OFF'):
    monkeypatch.setenv(cli.COMPILATION_CACHE, off)
    assert not cli.compilation_cache_wanted()


def test_events_name_the_train_step():
  events = cli.CacheEvents()

  def compile_it(module_name):  # As jax._src.compiler's frames hold it.
    events('/jax/compilation_cache/cache_hits')

  compile_it('jit_train_step')
  compile_it('jit_add')
  events('/jax/compilation_cache/compile_requests_use_cache')
  assert events.hits == ['jit_train_step', 'jit_add'] and events.misses == []
  assert events.train_step() == 'hit'
  assert 'train step hit; 2 hit(s), 0 miss(es)' in events.summary()
  assert cli.CacheEvents().train_step() == 'not compiled'
