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
