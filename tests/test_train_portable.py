"""``--portable-determinism`` (trainlib/startup.py): when it applies and what
it refuses. Its measured effect on training is in docs/training.md."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

import configs
from configs import ConfigError
from trainlib import cli, rundir, startup

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv, expected", [
    (["cartpole_swingup"], False),
    (["cartpole_swingup", "--portable-determinism"], True),
    (["cartpole_swingup", "--portable_determinism"], True),
    (["cartpole_swingup", "--portable-determinism", "--no-portable-determinism"], False),
])
def test_launch_from_flags(argv, expected):
  assert cli.parse_train(argv, backend="cpu").launch.portable is expected


@pytest.mark.parametrize("portable", [True, False])
def test_launch_from_a_saved_run(tmp_path, portable):
  """``--resume`` and evaluate.py read the run's own config.yaml (the one
  written by train.py) for the cap, with the one reader of that file."""
  resolved = configs.resolve("cartpole_swingup", "shac", backend="cpu")
  resolved = dataclasses.replace(resolved, run=dataclasses.replace(
      resolved.run, portable_determinism=portable))
  rundir.write_config(tmp_path / "config.yaml", resolved)
  assert cli.parse_train(["--resume", str(tmp_path)],
                         backend="cpu").launch.portable is portable
  assert cli.parse_evaluate([str(tmp_path), "--episodes", "2"],
                            backend="cpu").launch.portable is portable


def test_isa_flag():
  assert startup.isa_flag("") is None
  assert startup.isa_flag("--xla_foo=1 --xla_cpu_max_isa=SSE4_2") == "SSE4_2"


def test_enable_refuses_another_isa_cap(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=SSE4_2")
  with pytest.raises(ConfigError, match="Remove it from XLA_FLAGS"):
    startup.enable_portable()


def test_enable_refuses_once_jax_has_started(monkeypatch):
  from jax._src import xla_bridge
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: True)
  with pytest.raises(ConfigError, match="before JAX starts"):
    startup.enable_portable()
  assert "XLA_FLAGS" not in os.environ


def test_enable_sets_the_flag_before_jax_starts():
  # a fresh process: the flag must be in XLA_FLAGS when the backend starts,
  # and other flags the user set are kept
  code = ("import os; from trainlib import startup; startup.prepare(gl=False); "
          "startup.enable_portable(); "
          "import jax; jax.numpy.zeros(1).block_until_ready(); "
          "print(os.environ['XLA_FLAGS'])")
  env = dict(os.environ, XLA_FLAGS="--xla_cpu_enable_fast_math=false")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120, check=True)
  assert out.stdout.split() == ["--xla_cpu_enable_fast_math=false",
                                "--xla_cpu_max_isa=AVX2"]
