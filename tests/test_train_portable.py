"""``--portable-determinism`` (trainlib/portable.py): when it applies and what
it refuses. Its measured effect on training is in docs/training.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from configs import ConfigError
from trainlib import portable

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv, expected", [
    (["cartpole_swingup"], False),
    (["cartpole_swingup", "--portable-determinism"], True),
    (["cartpole_swingup", "--portable_determinism"], True),
    (["cartpole_swingup", "--portable-determinism", "False"], False),
    (["cartpole_swingup", "--portable-determinism=True"], True),
    (["cartpole_swingup", "--portable-determinism", "--no-portable-determinism"], False),
])
def test_requested_from_flags(argv, expected):
  assert portable.requested(argv) is expected


def test_requested_from_a_saved_run(tmp_path):
  (tmp_path / "config.yaml").write_text(yaml.safe_dump(
      {"env_name": "cartpole_swingup", "run": {"portable_determinism": True}}))
  assert portable.requested(["--resume", str(tmp_path)])  # train.py
  assert portable.requested([str(tmp_path), "--episodes", "2"])  # evaluate.py
  (tmp_path / "config.yaml").write_text(yaml.safe_dump(
      {"run": {"portable_determinism": False}}))
  assert not portable.requested(["--resume", str(tmp_path)])
  assert not portable.requested(["--resume", str(tmp_path / "missing")])


def test_isa_flag():
  assert portable.isa_flag("") is None
  assert portable.isa_flag("--xla_foo=1 --xla_cpu_max_isa=SSE4_2") == "SSE4_2"


def test_enable_refuses_another_isa_cap(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=SSE4_2")
  with pytest.raises(ConfigError, match="Remove it from XLA_FLAGS"):
    portable.enable()


def test_enable_refuses_once_jax_has_started(monkeypatch):
  from jax._src import xla_bridge
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: True)
  with pytest.raises(ConfigError, match="before JAX starts"):
    portable.enable()
  assert "XLA_FLAGS" not in os.environ


def test_enable_sets_the_flag_before_jax_starts():
  # a fresh process: the flag must be in XLA_FLAGS when the backend starts,
  # and other flags the user set are kept
  code = ("import os; from trainlib import portable; portable.enable(); "
          "import jax; jax.numpy.zeros(1).block_until_ready(); "
          "print(os.environ['XLA_FLAGS'])")
  env = dict(os.environ, XLA_FLAGS="--xla_cpu_enable_fast_math=false")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120, check=True)
  assert out.stdout.split() == ["--xla_cpu_enable_fast_math=false",
                                "--xla_cpu_max_isa=AVX2"]
