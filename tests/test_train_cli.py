"""train.py and evaluate.py end to end on a tiny budget.

One APG run (the cheaper agent to compile; the CLI code paths are the same
for SHAC) on pendulum_swingup is killed (SIGKILL) after its second
checkpoint, resumed with ``--resume``, finished, and then evaluated again with
evaluate.py. All runs share one JAX compilation cache (the test session's)
and use identical
shapes and settings (the learning-rate schedule depends on num_timesteps and
is compiled in), so only the first process compiles the update and only the
resumed one compiles the evaluation.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_UPDATE = 2 * 8  # num_envs * horizon below
TINY = [
    "pendulum_swingup", "--agent", "apg", "--num-envs", "2", "--horizon", "8",
    "--policy-hidden-sizes", "16",
    "--log-every", "1", "--checkpoint-every", "2", "--env.episode-length", "24",
    "--eval-episodes", "3", "--render.width", "64", "--render.height", "48",
]
NUM_UPDATES = 100  # 50 checkpoints: long enough to kill it after 2


def _env(cache: Path) -> dict[str, str]:
  env = dict(os.environ, MJX_DIFFRL_JAX_CACHE=str(cache), PYTHONUNBUFFERED="1")
  env.pop("MUJOCO_GL", None)  # let train.py choose (egl, then osmesa)
  return env


def _finished_checkpoints(run_dir: Path) -> list[int]:
  ckpt = run_dir / "checkpoints"
  if not ckpt.exists():
    return []
  return sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())


def _cache_dir(tmp: Path) -> Path:
  """The test session's persistent cache (see tests/conftest.py), so a warm
  machine skips the compiles; a temporary one when that cache is off."""
  cache = os.environ.get("MJX_DIFFRL_TEST_JAX_CACHE",
                         str(Path("~/.cache/mjx-diffrl/jax-tests").expanduser()))
  return Path(cache) if cache.strip() else tmp / "jax_cache"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A run that was killed after 2 checkpoints, then resumed to the end."""
  tmp = tmp_path_factory.mktemp("train_cli")
  run_dir, cache = tmp / "run", _cache_dir(tmp)
  log1 = (tmp / "first.log").open("w")
  t0 = time.perf_counter()
  proc = subprocess.Popen(
      [sys.executable, "train.py", *TINY, "--num-timesteps",
       str(NUM_UPDATES * STEPS_PER_UPDATE), "--run-dir", str(run_dir)],
      cwd=ROOT, env=_env(cache), stdout=log1, stderr=subprocess.STDOUT)
  try:
    while len(_finished_checkpoints(run_dir)) < 2:
      if proc.poll() is not None:
        pytest.fail("train.py exited before its second checkpoint:\n" +
                    (tmp / "first.log").read_text()[-3000:])
      if time.perf_counter() - t0 > 600:
        pytest.fail("no checkpoint after 600s")
      time.sleep(0.02)
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log1.close()
  killed_at = max(_finished_checkpoints(run_dir))
  rows_before = list(csv.DictReader((run_dir / "metrics.csv").open()))
  first_s = time.perf_counter() - t0

  assert killed_at < NUM_UPDATES, "the run finished before it was killed"
  final_updates = NUM_UPDATES
  t1 = time.perf_counter()
  resumed = subprocess.run(
      [sys.executable, "train.py", "--resume", str(run_dir)],
      cwd=ROOT, env=_env(cache), capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
  return {"dir": run_dir, "cache": cache, "killed_at": killed_at,
          "final_updates": final_updates, "rows_before": rows_before,
          "resume_out": resumed.stdout + resumed.stderr,
          "first_s": first_s, "resume_s": time.perf_counter() - t1}


def test_run_dir_has_every_artifact(run):
  d = run["dir"]
  for name in ("config.yaml", "metrics.csv", "learning_curve.png",
               "policy.msgpack", "eval.json", "video.mp4"):
    assert (d / name).is_file() and (d / name).stat().st_size > 0, name
  assert list((d / "tb").glob("events.out.tfevents.*"))
  assert _finished_checkpoints(d)[-1] == run["final_updates"]
  ev = json.loads((d / "eval.json").read_text())
  assert set(ev) >= {"return_mean", "return_std", "episodes", "video"}
  assert ev["episodes"] == 3 and ev["video"] == "video.mp4"
  assert np.isfinite(ev["return_mean"]) and ev["return_std"] >= 0
  assert len(ev["returns"]) == 3
  assert ev["return_mean"] == pytest.approx(np.mean(ev["returns"]), rel=1e-5)


def test_resume_continues_from_the_last_checkpoint(run):
  out = run["resume_out"]
  k = run["killed_at"]
  assert re.search(rf"resumed from checkpoint at update {k} "
                   rf"\({k * STEPS_PER_UPDATE} env steps\)", out), out[-2000:]
  rows = list(csv.DictReader((run["dir"] / "metrics.csv").open()))
  steps = [int(r["env_steps"]) for r in rows]
  assert steps == sorted(set(steps)), "metrics.csv rows repeat or go back"
  # nothing before the checkpoint was lost, nothing after it was kept twice
  before = [int(r["env_steps"]) for r in run["rows_before"]]
  assert [s for s in steps if s <= k * STEPS_PER_UPDATE] == \
      [s for s in before if s <= k * STEPS_PER_UPDATE]
  assert steps[-1] == run["final_updates"] * STEPS_PER_UPDATE
  # the resumed process did not start from update 1
  iterations = [int(float(r["train/iteration"])) for r in rows]
  assert iterations[-1] == run["final_updates"]
  assert "compiled in" in out
  # the resumed process reused the first one's compiled update
  compile_s = [float(r["train/compile_s"]) for r in rows
               if r.get("train/compile_s")]
  assert len(compile_s) == 2
  print(f"first run {run['first_s']:.0f}s (compile {compile_s[0]:.0f}s), "
        f"resumed run {run['resume_s']:.0f}s (compile {compile_s[1]:.1f}s)")


def test_video_frames_show_a_moving_robot(run):
  import imageio.v2 as imageio
  frames = np.stack(imageio.mimread(run["dir"] / "video.mp4"))
  ev = json.loads((run["dir"] / "eval.json").read_text())
  assert frames.shape[1:] == (48, 64, 3)
  assert len(frames) == ev["video_frames"] >= 2
  # a blank (uniform) frame has std 0; a thin pendulum at 64x48 gives ~5-10
  assert frames.std(axis=(1, 2, 3)).min() > 1.0, "blank frame"
  assert frames.max(axis=(1, 2, 3)).min() > 60, "nothing bright in a frame"
  assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).max() > 30


def test_config_yaml_round_trips(run):
  from trainlib import rundir
  r = rundir.read_config(run["dir"] / "config.yaml")
  assert r.env_name == "pendulum_swingup" and r.agent == "apg"
  assert r.agent_config.num_envs == 2 and r.env_config.episode_length == 24
  assert r.agent_config.num_timesteps == run["final_updates"] * STEPS_PER_UPDATE


def test_evaluate_script_on_the_saved_run(run):
  before = json.loads((run["dir"] / "eval.json").read_text())
  (run["dir"] / "eval.json").unlink()
  proc = subprocess.run(
      [sys.executable, "evaluate.py", str(run["dir"]), "--episodes", "3",
       "--no-video"],
      cwd=ROOT, env=_env(run["cache"]), capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  ev = json.loads((run["dir"] / "eval.json").read_text())
  assert ev["episodes"] == 3 and len(ev["returns"]) == 3 and ev["video"] is None
  m = re.search(r"return (-?[\d.]+) ± ([\d.]+), falls (\d) of 3, mean length "
                r"(\d+) \(3 episodes\)", proc.stdout)
  assert m, proc.stdout
  assert float(m.group(1)) == pytest.approx(ev["return_mean"], abs=0.01)
  assert int(m.group(3)) == round(3 * ev["fall_rate"])
  assert int(m.group(4)) == round(ev["episode_length_mean"])
  # deterministic policy, same seed: the same returns as at the end of training
  np.testing.assert_allclose(ev["returns"], before["returns"], rtol=1e-4)


def test_evaluate_and_resume_errors(tmp_path, run):
  env = _env(run["cache"])
  proc = subprocess.run([sys.executable, "evaluate.py", str(tmp_path)],
                        cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 2 and "a run directory written by train.py" in proc.stderr
  assert "Traceback" not in proc.stderr
