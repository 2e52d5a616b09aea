"""Start-up of the entry points (trainlib/startup.py): a quiet start that
hides only MJX's optional-warp message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                        text=True, timeout=120, check=True)


def test_prepare_hides_only_the_warp_message():
  plain = _run("import mujoco.mjx")
  if "warp" not in plain.stdout + plain.stderr:
    pytest.skip("this MJX install prints no warp message (warp is installed)")
  quiet = _run("from trainlib import startup; startup.prepare(gl=False); "
               "import envs, agents, configs; print('after')")
  assert quiet.stdout.splitlines() == ["after"]
  assert "warp" not in quiet.stderr
  # other output of the import is passed on
  loud = _run("import builtins, sys\n"
              "from trainlib import startup\n"
              "real = __import__\n"
              "def noisy(name, *a, **k):\n"
              "  if name == 'mujoco.mjx': print('something else')\n"
              "  return real(name, *a, **k)\n"
              "builtins.__import__ = noisy\n"
              "startup.import_mjx_quietly()\n")
  assert loud.stdout.splitlines() == ["something else"]


def test_compilation_cache_is_off_unless_asked(monkeypatch, tmp_path):
  """A cache write can end a process with a segmentation fault (jaxlib
  0.9.2; docs/training.md, "Compilation cache"), so train.py writes none
  unless the user names a directory."""
  import jax
  from trainlib import startup
  keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
          "jax_persistent_cache_min_entry_size_bytes")
  before = {k: getattr(jax.config, k) for k in keys}
  try:
    monkeypatch.delenv(startup.CACHE_ENV, raising=False)
    assert startup.enable_compilation_cache() is None
    assert jax.config.jax_compilation_cache_dir == before["jax_compilation_cache_dir"]
    monkeypatch.setenv(startup.CACHE_ENV, "  ")
    assert startup.enable_compilation_cache() is None
    monkeypatch.setenv(startup.CACHE_ENV, str(tmp_path / "cache"))
    assert startup.enable_compilation_cache() == tmp_path / "cache"
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "cache")
  finally:
    for k, v in before.items():
      jax.config.update(k, v)
