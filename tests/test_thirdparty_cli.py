"""train.py on third-party envs, end to end (docs/envs.md, "Third-party
envs").

* ``train.py brax/reacher --agent apg`` for 3 updates of 2 envs x 8 steps
  writes the same run directory as our tasks: config.yaml, checkpoints,
  gradient_check.json, the policy, eval.json (with the forward velocity of
  the declared forward body) and video.mp4. Brax's reacher is the smallest
  Brax env with a smooth reward. Cost: 519 s (check 146 s, APG's update,
  evaluation and video), measured cold on the shared 2-core machine at load
  5-9, not idle; the largest part is compiling the Brax pipeline.
* ``train.py brax/inverted_pendulum`` (reward +1 per step: flat in the
  actions) stops at the gradient check with exit code 2 and one line that
  names the env and the fix (77 s, same conditions).
* a playground/ env without the extra is one line naming it (no compile).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900


def _train(args, cache: Path, **extra: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, MJX_DIFFRL_JAX_CACHE=str(cache), PYTHONUNBUFFERED="1",
             **extra)
  env.pop("MUJOCO_GL", None)
  return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.mark.slow
def test_brax_env_trains_end_to_end(tmp_path, jax_cache_dir):
  run_dir = tmp_path / "run"
  out = _train(["brax/reacher", "--agent", "apg", "--num-envs", "2",
                "--horizon", "8", "--policy-hidden-sizes", "16",
                "--log-every", "1", "--checkpoint-every", "2",
                "--num-timesteps", str(3 * 2 * 8), "--env.episode-length", "16",
                "--env.forward-body", "body1", "--eval-every", "0",
                "--eval-episodes", "2", "--render.width", "64",
                "--render.height", "48", "--run-dir", str(run_dir)],
               jax_cache_dir)
  assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
  config = yaml.safe_load((run_dir / "config.yaml").read_text())
  assert config["env_name"] == "brax/reacher"
  assert config["env"]["forward_body"] == "body1"
  check = json.loads((run_dir / "gradient_check.json").read_text())
  assert check["verdict"] == "ok" and check["env"] == "brax/reacher"
  assert (run_dir / "policy.msgpack").exists()
  assert any(p.name.isdigit() for p in (run_dir / "checkpoints").iterdir())
  result = json.loads((run_dir / "eval.json").read_text())
  assert result["episodes"] == 2 and result["episode_length"] == 16
  assert "forward_velocity_mean" in result
  assert result["video"] == "video.mp4" and (run_dir / "video.mp4").stat().st_size > 0


@pytest.mark.slow
def test_flat_reward_stops_before_training(tmp_path, jax_cache_dir):
  run_dir = tmp_path / "run"
  out = _train(["brax/inverted_pendulum", "--agent", "shac", "--num-envs", "2",
                "--no-video", "--run-dir", str(run_dir)], jax_cache_dir)
  assert out.returncode == 2, (out.stdout + out.stderr)[-3000:]
  errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
  assert "brax/inverted_pendulum" in errors[0]
  assert "flat in the actions, use PPO" in errors[0]
  assert "--no-gradient-check" in errors[0]
  assert json.loads((run_dir / "gradient_check.json").read_text())["verdict"] == "zero"
  assert not (run_dir / "checkpoints").exists()


@pytest.mark.slow
def test_missing_playground_is_one_line(tmp_path, jax_cache_dir):
  fake = tmp_path / "fake" / "mujoco_playground"
  fake.mkdir(parents=True)
  (fake / "__init__.py").write_text(
      "raise ImportError(\"No module named 'mujoco_playground'\", "
      "name='mujoco_playground')\n")
  path = os.pathsep.join([str(tmp_path / "fake"), os.environ.get("PYTHONPATH", "")])
  out = _train(["playground/CartpoleSwingup", "--no-video"], jax_cache_dir,
               PYTHONPATH=path)
  assert out.returncode == 2
  assert "Traceback" not in out.stderr
  line = out.stderr.strip().splitlines()[-1]
  assert line.startswith("error:") and "pip install -e '.[playground]'" in line
