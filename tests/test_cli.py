"""The shared entry-point module: one error line and exit 2 from every command,
key flags in --help, tcmalloc detected for real and preloaded by re-exec, and
the CPU devices set up before JAX starts (cpu_devices)."""

import ctypes.util
import json
import os
import subprocess
import sys

import pytest

from isovolnet_jax import cli
from isovolnet_jax import cpu_devices

from helpers import ROOT, load_config_file, require

BAD_KEY = '--config.optimiser.name=adam'


def _run(*args, env=None, timeout=300, **kwargs):
  return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=timeout, env={**os.environ, **(env or {})},
                        **kwargs)


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
  """A workdir with a run's config.json: enough for evaluate to check a key."""
  workdir = tmp_path_factory.mktemp('run')
  (workdir / 'config.json').write_text(load_config_file('smoke').to_json())
  return workdir


COMMANDS = {
    'main': ('-m', 'isovolnet_jax.main', '--config=configs/smoke.py', '--workdir=unused'),
    'sweep': ('-m', 'isovolnet_jax.tools.sweep', '--config=configs/smoke.py', '--workdir=unused',
              '--sweep=configs/sweeps/activation.py'),
    'summary': ('-m', 'isovolnet_jax.summary', '--config=configs/smoke.py'),
    'benchmark': ('-m', 'isovolnet_jax.bench.benchmark', '--config=configs/smoke.py'),
    'efficiency': ('-m', 'isovolnet_jax.bench.efficiency', '--config=configs/smoke.py',
                   '--out=unused'),
    'layer_profile': ('-m', 'isovolnet_jax.bench.layer_profile',
                      '--config=configs/smoke.py'),
    'step_memory': ('-m', 'isovolnet_jax.bench.step_memory', '--config=configs/smoke.py'),
    'evaluate': ('-m', 'isovolnet_jax.evaluate'),  # + --workdir=run_dir
    'predict': ('-m', 'isovolnet_jax.predict', '--workdir=unused', 'cat.jpg'),
}


def test_every_command_refuses_a_bad_config_key_in_one_line(run_dir):
  procs = {}  # All at once: each spends its few seconds importing.
  for name, args in COMMANDS.items():
    args += (f'--workdir={run_dir}',) if name == 'evaluate' else ()
    procs[name] = subprocess.Popen([sys.executable, *args, BAD_KEY], cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
  for name, proc in procs.items():
    _, stderr = proc.communicate(timeout=300)
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert proc.returncode == 2, (name, stderr[-2000:])
    assert lines[-1].startswith('error: ') and 'optimiser' in lines[-1], (name, stderr[-2000:])
    assert 'Traceback' not in stderr, name
  assert not (ROOT / 'unused').exists()


def test_help_lists_the_shared_flags():
  proc = _run('-m', 'isovolnet_jax.tools.sweep', '--help')  # absl exits 1 after help.
  for flag in ('--config:', '--workdir:', '--cpu_devices:', '--jax_num_processes:',
               '--sweep:'):
    assert flag in proc.stdout, flag


# ---------------------------------------------------------------- tcmalloc

TCMALLOC = ctypes.util.find_library('tcmalloc')
PROBE = ('import os, sys\n'
         'from isovolnet_jax import cli\n'
         'print("start", os.getpid(), cli.tcmalloc_loaded(), flush=True)\n'
         'cli.use_tcmalloc(sys.argv[1] if len(sys.argv) > 1 else None)\n'
         'print("end", os.getpid(), cli.tcmalloc_loaded())\n'
         'sys.exit(int(sys.stdin.read() or 0))\n')
CLEAN = {'LD_PRELOAD': '', cli.NO_TCMALLOC: '', '_ISOVOLNET_TCMALLOC_REEXEC': ''}


def _probe(*args, env=None):
  # A re-exec loop would hit the timeout.
  proc = _run('-c', PROBE, *args, env={**CLEAN, **(env or {})}, input='3', timeout=60)
  lines = [l.split() for l in proc.stdout.splitlines()]
  return proc, lines


def _require_tcmalloc():
  require(TCMALLOC is not None, 'tcmalloc is not installed (apt-get install '
          'libgoogle-perftools4): this test preloads it')


def test_tcmalloc_is_detected_in_the_process_not_in_ld_preload():
  _require_tcmalloc()
  code = 'from isovolnet_jax import cli; print(cli.tcmalloc_loaded())'
  loaded = _run('-c', code, env={**CLEAN, 'LD_PRELOAD': TCMALLOC})
  assert loaded.stdout.split() == ['True'], loaded.stderr
  # The loader skips a preload it cannot find (with a warning on stderr).
  missing = _run('-c', code, env={**CLEAN, 'LD_PRELOAD': '/nonexistent/libtcmalloc.so.4'})
  assert missing.stdout.split() == ['False'], missing.stderr
  assert _run('-c', code, env=CLEAN).stdout.split() == ['False']


def test_commands_reexec_once_with_tcmalloc_keeping_pid_stdin_and_exit_status():
  _require_tcmalloc()
  proc, lines = _probe()
  assert proc.returncode == 3, proc.stderr  # The exit status read from stdin.
  pid = lines[0][1]
  assert lines == [['start', pid, 'False'], ['start', pid, 'True'], ['end', pid, 'True']]


def test_a_preload_that_does_not_load_tcmalloc_is_not_retried():
  # libm loads, but it is not tcmalloc: one re-exec, then the command goes on.
  proc, lines = _probe(ctypes.util.find_library('m'))
  assert proc.returncode == 3, proc.stderr
  assert [l[0] for l in lines] == ['start', 'start', 'end'] and lines[-1][2] == 'False'


def test_tcmalloc_opt_out():
  proc, lines = _probe(env={cli.NO_TCMALLOC: '1'})
  assert proc.returncode == 3, proc.stderr
  assert [l[0] for l in lines] == ['start', 'end'] and lines[-1][2] == 'False'


def test_the_benchmark_reports_tcmalloc_from_the_process(monkeypatch):
  """benchmark's `tcmalloc` figure is what this process has mapped, whatever
  LD_PRELOAD says: here it says the opposite."""
  require(os.path.exists('/proc/self/maps'), 'no /proc/self/maps (not Linux)')
  from isovolnet_jax.bench import benchmark
  with open('/proc/self/maps') as f:
    mapped = 'libtcmalloc' in f.read()
  monkeypatch.setenv('LD_PRELOAD', '' if mapped else 'libtcmalloc.so.4')
  monkeypatch.setattr(benchmark, 'time_jax', lambda *a: {
      'params': 1, 'devices': 1, 'train': 1.0, 'infer': 1.0})
  monkeypatch.setattr(benchmark, 'matmul_flops', lambda: 1e9)
  config = load_config_file('smoke')
  args = type('Args', (), dict(threads=1, skip_torch=True))
  assert benchmark.run(config, args)['tcmalloc'] is mapped


# ---------------------------------------------------------------- CPU devices

def test_device_count_divides_the_batch():
  assert cpu_devices.device_count_for(256, 2) == 2
  assert cpu_devices.device_count_for(256, 12) == 8   # 12, 11, 10, 9 don't divide 256.
  assert cpu_devices.device_count_for(30, 4) == 3
  assert cpu_devices.device_count_for(7, 2) == 1


def _jax_devices_after(code: str, env_extra=None) -> int:
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  env.update(env_extra or {})
  out = subprocess.run([sys.executable, '-c', code + '\nimport jax\nprint(jax.device_count())'],
                       capture_output=True, text=True, env=env, check=True)
  return int(out.stdout.split()[-1])


def test_configure_sets_one_device_per_core_and_respects_xla_flags():
  cores = cpu_devices.physical_cores()
  set_ = 'from isovolnet_jax import cpu_devices\ncpu_devices.configure({}, {})'
  assert _jax_devices_after(set_.format(-1, 64)) == cpu_devices.device_count_for(64, cores)
  assert _jax_devices_after(set_.format(3, 64)) == 3
  assert _jax_devices_after(set_.format(0, 64)) == 1
  forced = {'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}
  assert _jax_devices_after(set_.format(-1, 64), forced) == 4


@pytest.mark.parametrize('tool', ['time_to_accuracy', 'launch_time', 'gpu_check'])
def test_run_launchers_pass_config_overrides_and_refuse_other_flags_in_one_line(tool):
  # `cli.passing_config_overrides`: --config.KEY=VALUE is kept for the runs
  # (time_to_accuracy's JSON lists them: tests/test_benchmark.py); any other
  # unknown flag is one line naming what passes through.
  out = subprocess.run([sys.executable, '-m', f'isovolnet_jax.bench.{tool}', '--bogus=1',
                        '--config.seed=3'], capture_output=True, text=True, cwd=ROOT)
  assert out.returncode == 2
  assert out.stderr.strip().splitlines() == [
      "error: Unknown command line flag 'bogus'; only --config.KEY=VALUE pass "
      'through to the runs']


# cpu_devices.physical_cores: what oneDNN sizes its threads by and
# --cpu_devices=-1 counts.


def _sysfs(root, topology):
  """topology: {cpu: {file: text}} under root/cpuN/topology/."""
  for cpu, files in topology.items():
    folder = root / f'cpu{cpu}' / 'topology'
    folder.mkdir(parents=True)
    for name, text in files.items():
      (folder / name).write_text(text + '\n')
  return str(root)


def test_physical_cores_counts_one_cpu_per_core_of_the_affinity_mask(tmp_path):
  # 2 cores x 2 hyper-threads, Linux's usual numbering: siblings (0, 2), (1, 3).
  smt = _sysfs(tmp_path / 'smt', {0: {'thread_siblings_list': '0,2'},
                                  1: {'thread_siblings_list': '1,3'},
                                  2: {'thread_siblings_list': '0,2'},
                                  3: {'thread_siblings_list': '1,3'}})
  assert cpu_devices.physical_cores({0, 1, 2, 3}, smt) == 2
  assert cpu_devices.physical_cores({0, 1}, smt) == 2
  assert cpu_devices.physical_cores({0, 2}, smt) == 1
  assert cpu_devices.physical_cores({3}, smt) == 1
  # Ranges in the list; 8 CPUs of 4 cores, adjacent siblings.
  ranges = _sysfs(tmp_path / 'ranges',
                  {c: {'thread_siblings_list': f'{c - c % 2}-{c - c % 2 + 1}'}
                   for c in range(8)})
  assert cpu_devices.physical_cores(set(range(8)), ranges) == 4
  assert cpu_devices.physical_cores({0, 1, 2, 3, 5}, ranges) == 3
  # No siblings list: (package, core id); core 0 exists in both packages.
  ids = _sysfs(tmp_path / 'ids', {
      0: {'physical_package_id': '0', 'core_id': '0'},
      1: {'physical_package_id': '0', 'core_id': '1'},
      2: {'physical_package_id': '1', 'core_id': '0'},
      3: {'physical_package_id': '0', 'core_id': '0'}})
  assert cpu_devices.physical_cores({0, 1, 2, 3}, ids) == 3
  # A CPU whose topology cannot be read: the logical count.
  assert cpu_devices.physical_cores({0, 1, 2, 9}, ids) == 4
  assert cpu_devices.physical_cores({0, 1}, str(tmp_path / 'none')) == 2


def test_physical_cores_of_this_machine():
  assert 1 <= cpu_devices.physical_cores() <= cpu_devices.usable_cores()
  assert cpu_devices._parse_cpu_list('0-3,8,10-11') == {0, 1, 2, 3, 8, 10, 11}
