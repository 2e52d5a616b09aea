"""Faults in a run directory, through train.py's and evaluate.py's command
lines (issue 25, items 1 and 4; the kill/resume and disk-full figures are
measured by ``python -m benchmarks.faults``, docs/benchmarks_faults.md).

* A ``--portable-determinism`` run resumed in a fresh process with more
  ``--num-timesteps``, then evaluated: both processes run with the AVX2 cap
  (the ``XLA_FLAGS`` each process holds when it exits; trainlib/startup.py
  refuses to set it once JAX's backend is up).
* A damaged config.yaml, a cut policy.msgpack, a cut orbax step: exit 2 and
  one line on stderr naming the file and the fix, never a traceback.
* A full disk during a resumed run (tmpfs, root only): the same kind of
  error, the last complete checkpoint still restores after space is freed.

One short SHAC run (pendulum_swingup, 3 updates) is trained once per module
(with the cap); the corruption cases damage copies of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.faults import fill_disk

ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_UPDATE = 2 * 8
TASK = [
    "pendulum_swingup", "--agent", "shac", "--num-envs", "2", "--horizon", "8",
    "--policy-hidden-sizes", "16", "--critic-epochs", "1",
    "--critic-minibatches", "1", "--critic-hidden-sizes", "16",
    "--log-every", "1", "--checkpoint-every", "1", "--env.episode-length", "24",
    "--eval-episodes", "2", "--eval-every", "0", "--no-video",
    "--no-gradient-check",  # tested in tests/agents/test_health.py, test_thirdparty_cli.py
]
UPDATES = 3
ISA_CAP = "--xla_cpu_max_isa=AVX2"
TIMEOUT_S = 600

# Runs train.py or evaluate.py as __main__ and prints, at exit, the XLA_FLAGS
# the process then holds (startup.enable_portable() sets the cap only before JAX's
# backend starts, and refuses afterwards).
_WITH_FLAGS = (
    "import atexit, os, runpy, sys\n"
    "atexit.register(lambda: print('XLA_FLAGS at exit: ' + "
    "os.environ.get('XLA_FLAGS', ''), flush=True))\n"
    "script = sys.argv.pop(1)\n"
    "sys.argv[0] = script\n"
    "runpy.run_path(script, run_name='__main__')\n")


def _env(cache: Path) -> dict[str, str]:
  env = dict(os.environ, MJX_DIFFRL_JAX_CACHE=str(cache), PYTHONUNBUFFERED="1")
  # the cap must come from the run, not from the test's environment
  env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                              if not f.startswith("--xla_cpu_max_isa"))
  return env


def _run(script: str, args: list[str], cache: Path) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", _WITH_FLAGS, script, *args],
                        cwd=ROOT, env=_env(cache), capture_output=True,
                        text=True, timeout=TIMEOUT_S)


def _flags_at_exit(proc: subprocess.CompletedProcess) -> str:
  lines = [l for l in proc.stdout.splitlines() if l.startswith("XLA_FLAGS at exit: ")]
  assert lines, proc.stdout[-2000:] + proc.stderr[-2000:]
  return lines[-1].split(": ", 1)[1]


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
  """stderr without the lines that every run prints (MJX's optional warp
  import, the progress bar's 'compiling' line)."""
  return [l for l in proc.stderr.splitlines()
          if l.strip() and "warp" not in l and not l.startswith("pendulum_swingup/")]


def _assert_one_line_error(proc: subprocess.CompletedProcess, path: Path,
                           *fixes: str) -> None:
  """Exit 2, no traceback, and one stderr line ``error: ...`` that names
  ``path`` and says one of ``fixes``."""
  out = proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, out
  assert proc.returncode == 2, f"exit {proc.returncode}\n{out}"
  lines = _error_lines(proc)
  assert len(lines) == 1, out
  assert lines[0].startswith("error: ") and str(path) in lines[0], out
  assert any(fix in lines[0] for fix in fixes), out


@pytest.fixture(scope="module")
def portable_run(tmp_path_factory, jax_cache_dir):
  """A finished 3-update SHAC run trained with --portable-determinism."""
  run_dir = tmp_path_factory.mktemp("faults") / "portable"
  proc = _run("train.py", [*TASK, "--portable-determinism", "--num-timesteps",
                           str(UPDATES * STEPS_PER_UPDATE), "--run-dir",
                           str(run_dir)], jax_cache_dir)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  assert ISA_CAP in _flags_at_exit(proc).split()
  return run_dir


def _copy(run_dir: Path, tmp_path: Path, portable: bool = False) -> Path:
  """A copy of the run; without the cap unless ``portable`` (so that the
  damage, not today's portable resume, is what a resume meets)."""
  d = tmp_path / "run"
  shutil.copytree(run_dir, d)
  if not portable:
    config = d / "config.yaml"
    config.write_text(config.read_text().replace("portable_determinism: true",
                                                 "portable_determinism: false"))
  return d


def _steps(run_dir: Path) -> list[int]:
  return sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir()
                if p.name.isdigit())


@pytest.mark.slow  # about a minute: a train, a resume (new schedule: compile), an eval
def test_portable_run_resumes_and_evaluates_with_the_cap(portable_run, tmp_path,
                                                          jax_cache_dir):
  d = _copy(portable_run, tmp_path, portable=True)
  # the finished run, evaluated in a fresh process
  evaluated = _run("evaluate.py", [str(d), "--no-video"], jax_cache_dir)
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  assert ISA_CAP in _flags_at_exit(evaluated).split(), "evaluated without the cap"
  # resumed with more steps in a fresh process, then evaluated again
  n = UPDATES + 1
  resumed = _run("train.py", ["--resume", str(d), "--num-timesteps",
                              str(n * STEPS_PER_UPDATE)], jax_cache_dir)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert (f"resumed from checkpoint at update {UPDATES} "
          f"({UPDATES * STEPS_PER_UPDATE} env steps)") in resumed.stdout
  assert ISA_CAP in _flags_at_exit(resumed).split()
  assert _steps(d)[-1] == n
  evaluated = _run("evaluate.py", [str(d), "--no-video"], jax_cache_dir)
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  assert ISA_CAP in _flags_at_exit(evaluated).split()


@pytest.mark.parametrize("command", ["train.py --resume", "evaluate.py"])
def test_damaged_config_yaml(portable_run, tmp_path, jax_cache_dir, command):
  d = _copy(portable_run, tmp_path)
  (d / "config.yaml").write_bytes(b"env_name: [pendulum\n\x00\x01")
  args = ["--resume", str(d)] if command == "train.py --resume" else [str(d), "--no-video"]
  proc = _run(command.split()[0], args, jax_cache_dir)
  # the fix: replace the file (e.g. from a backup) or start a new run
  _assert_one_line_error(proc, d / "config.yaml", "new run", "restore", "replace")


def test_truncated_policy_msgpack(portable_run, tmp_path, jax_cache_dir):
  d = _copy(portable_run, tmp_path)
  policy = d / "policy.msgpack"
  policy.write_bytes(policy.read_bytes()[: policy.stat().st_size // 2])
  proc = _run("evaluate.py", [str(d), "--no-video"], jax_cache_dir)
  _assert_one_line_error(proc, policy, f"python train.py --resume {d}")


def test_truncated_orbax_step(portable_run, tmp_path, jax_cache_dir):
  """The only checkpoint left is cut short: --resume exits 2 naming the
  step directory and how to start over."""
  d = _copy(portable_run, tmp_path)
  *older, newest = _steps(d)
  for s in older:
    shutil.rmtree(d / "checkpoints" / str(s))
  step = d / "checkpoints" / str(newest)
  cut = 0
  for p in step.rglob("*"):  # orbax's array data files
    if p.is_file() and p.parent.name == "d":
      p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
      cut += 1
  assert cut
  proc = _run("train.py", ["--resume", str(d)], jax_cache_dir)
  _assert_one_line_error(proc, step, f"rm -r {step}")


@contextlib.contextmanager
def _tmpfs(path: Path, size: str):
  """A tmpfs of ``size`` mounted at ``path`` for the block, unmounted after
  (skips the test unless root can mount one)."""
  if os.geteuid() != 0:
    pytest.skip("disk-full case: needs root to mount a tmpfs")
  path.mkdir()
  try:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                    str(path)], check=True, capture_output=True, timeout=30)
  except (OSError, subprocess.SubprocessError) as e:
    pytest.skip(f"disk-full case: cannot mount a tmpfs ({e})")
  try:
    yield path
  finally:
    subprocess.run(["umount", str(path)], check=False, capture_output=True)


@pytest.mark.parametrize("used", [0, 997, 1994, 12345])
def test_fill_disk_fills_whatever_is_already_there(tmp_path, used):
  """fill_disk leaves no free block and raises nothing, whatever the bytes
  already on the file system (997 and 1994 made the buffered version raise
  ENOSPC from close(), as it did once in CI)."""
  with _tmpfs(tmp_path / "tmpfs", "1m") as mnt:
    (mnt / "used").write_bytes(b"x" * used)
    filler = fill_disk(mnt)
    assert os.statvfs(mnt).f_bavail == 0
    filler.unlink()
    assert os.statvfs(mnt).f_bavail > 0


@pytest.mark.slow  # a resume that compiles its update (~30 s)
def test_disk_full_then_freed(portable_run, tmp_path, jax_cache_dir):
  with _tmpfs(tmp_path / "tmpfs", "8m") as mnt:
    d = mnt / "run"
    shutil.copytree(_copy(portable_run, tmp_path), d)
    last = _steps(d)[-1]
    filler = fill_disk(mnt)
    n = UPDATES + 2
    args = ["--resume", str(d), "--num-timesteps", str(n * STEPS_PER_UPDATE)]
    full = _run("train.py", args, jax_cache_dir)
    _assert_one_line_error(full, d, f"python train.py --resume {d}")
    assert _steps(d)[-1] == last  # the last complete checkpoint is kept
    filler.unlink()
    freed = _run("train.py", args, jax_cache_dir)
    assert freed.returncode == 0, freed.stderr[-3000:]
    assert f"resumed from checkpoint at update {last}" in freed.stdout
    assert _steps(d)[-1] == n
