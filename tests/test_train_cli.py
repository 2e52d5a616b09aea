"""train.py and evaluate.py end to end on a tiny budget, every agent.

* SHAC on pendulum_swingup is killed (SIGKILL) after its second checkpoint;
  the test then damages the run directory the way a kill in the middle of a
  write would (a half-written orbax checkpoint under orbax's temporary name,
  a cut and garbled metrics.csv tail), resumes it with ``--resume`` (which
  must start from the last complete checkpoint and reuse the compiled update
  from the persistent cache), and evaluates it again with evaluate.py.
* APG runs to the end once (same driver as SHAC, another update).
* Brax PPO runs to the end, then ``--resume --num-timesteps`` extends it
  (PPO restores Brax's checkpoint): its eval metrics carry the task's reward
  terms under their namespaced names.
* Bad input at the command line gives a clear message and exit code 2, no
  traceback.

The APG and PPO runs start first and run beside the SHAC run (a compile uses
one core). All share one JAX compilation cache (the test session's).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
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
    "pendulum_swingup", "--num-envs", "2", "--horizon", "8",
    "--policy-hidden-sizes", "16",
    "--log-every", "1", "--checkpoint-every", "2", "--env.episode-length", "24",
    "--eval-episodes", "3", "--render.width", "64", "--render.height", "48",
]
SHAC = ["--agent", "shac", "--critic-epochs", "1", "--critic-minibatches", "1",
        "--critic-hidden-sizes", "16"]
NUM_UPDATES = 100  # 50 checkpoints: long enough to kill it after 2
APG_UPDATES = 3
# Brax PPO: 40 env steps per training step (batch 4 x unroll 10), 2 evals
PPO = [
    "pendulum_swingup", "--agent", "ppo", "--num-envs", "4", "--batch-size", "4",
    "--num-minibatches", "1", "--unroll-length", "10",
    "--num-updates-per-batch", "1", "--num-evals", "2", "--num-eval-envs", "4",
    "--policy-hidden-sizes", "16", "--value-hidden-sizes", "16",
    "--env.episode-length", "40", "--eval-episodes", "2", "--no-video",
]
PPO_STEPS = 400
TIMEOUT_S = 900


def _env(cache: Path, **extra: str) -> dict[str, str]:
  env = dict(os.environ, MJX_DIFFRL_JAX_CACHE=str(cache), PYTHONUNBUFFERED="1",
             **extra)
  env.pop("MUJOCO_GL", None)  # let train.py choose (egl, then osmesa)
  return env


def _finished_checkpoints(run_dir: Path) -> list[int]:
  ckpt = run_dir / "checkpoints"
  if not ckpt.exists():
    return []
  return sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())


def _rows(run_dir: Path) -> list[dict[str, str]]:
  with (run_dir / "metrics.csv").open(newline="") as f:
    return list(csv.DictReader(f))


def _train(args: list[str], cache: Path, log: Path, **env: str) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT,
                          env=_env(cache, **env), stdout=log.open("w"),
                          stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen, log: Path) -> str:
  try:
    proc.wait(timeout=TIMEOUT_S)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  out = log.read_text()
  assert proc.returncode == 0, out[-3000:]
  return out


def _damage(run_dir: Path, killed_at: int) -> dict[str, int]:
  """What a kill in the middle of writes leaves: the checkpoint of update
  ``killed_at + 2`` half written under orbax's temporary name (orbax renames
  it when complete), and a metrics.csv whose last row is cut and followed by
  garbage."""
  ckpts = run_dir / "checkpoints"
  partial = ckpts / f"{killed_at + 2}.orbax-checkpoint-tmp-1764270000123456"
  shutil.copytree(ckpts / str(killed_at), partial)
  for p in sorted(partial.rglob("*")):
    if p.is_file():
      if "METADATA" in p.name.upper():
        p.unlink()
      else:
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
  text = (run_dir / "metrics.csv").read_text()
  lines = text.splitlines(keepends=True)
  cut = lines[-1][: len(lines[-1]) // 2]  # the last row, cut in the middle
  (run_dir / "metrics.csv").write_text("".join(lines[:-1]) + cut + "\x00\x00\xff")
  return {"rows_kept": len(lines) - 2}  # complete data rows before the cut one


@pytest.fixture(scope="module")
def run(tmp_path_factory, jax_cache_dir):
  tmp = tmp_path_factory.mktemp("train_cli")
  cache = jax_cache_dir
  # APG and PPO beside the SHAC run
  apg_dir, ppo_dir = tmp / "apg", tmp / "ppo"
  apg = _train([*TINY, "--agent", "apg", "--num-timesteps",
                str(APG_UPDATES * STEPS_PER_UPDATE), "--no-video", "--no-gradient-check",
                "--run-dir", str(apg_dir)], cache, tmp / "apg.log")
  ppo = _train([*PPO, "--num-timesteps", str(PPO_STEPS), "--run-dir", str(ppo_dir)],
               cache, tmp / "ppo.log")

  # SHAC: killed after 2 checkpoints
  run_dir = tmp / "shac"
  log1 = tmp / "first.log"
  t0 = time.perf_counter()
  proc = _train([*TINY, *SHAC, "--num-timesteps", str(NUM_UPDATES * STEPS_PER_UPDATE),
                 "--run-dir", str(run_dir)], cache, log1)
  try:
    while len(_finished_checkpoints(run_dir)) < 2:
      if proc.poll() is not None:
        pytest.fail("train.py exited before its second checkpoint:\n" +
                    log1.read_text()[-3000:])
      if time.perf_counter() - t0 > TIMEOUT_S:
        pytest.fail(f"no checkpoint after {TIMEOUT_S}s")
      time.sleep(0.02)
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  killed_at = max(_finished_checkpoints(run_dir))
  assert killed_at < NUM_UPDATES, "the run finished before it was killed"
  rows_before = _rows(run_dir)
  damage = _damage(run_dir, killed_at)

  # resume; JAX logs its persistent-cache hits at WARNING with log_compiles
  resumed = subprocess.run(
      [sys.executable, "train.py", "--resume", str(run_dir)], cwd=ROOT,
      env=_env(cache, JAX_LOG_COMPILES="1"), capture_output=True, text=True,
      timeout=TIMEOUT_S)
  assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

  # PPO: extend the finished run with --resume
  ppo_first = _finish(ppo, tmp / "ppo.log")
  ppo_rows_first = _rows(ppo_dir)
  ppo_resume = _train(["--resume", str(ppo_dir), "--num-timesteps", str(2 * PPO_STEPS)],
                      cache, tmp / "ppo_resume.log")
  ppo_resumed = _finish(ppo_resume, tmp / "ppo_resume.log")
  apg_out = _finish(apg, tmp / "apg.log")
  return {"dir": run_dir, "cache": cache, "killed_at": killed_at,
          "final_updates": NUM_UPDATES, "rows_before": rows_before,
          "damage": damage, "first_out": log1.read_text(),
          "resume_out": resumed.stdout + resumed.stderr,
          "apg_dir": apg_dir, "apg_out": apg_out,
          "ppo_dir": ppo_dir, "ppo_first": ppo_first,
          "ppo_rows_first": ppo_rows_first, "ppo_resumed": ppo_resumed}


@pytest.mark.slow  # the module's train.py runs: minutes cold, ~1 min warm
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


@pytest.mark.slow  # the module's train.py runs: minutes cold, ~1 min warm
def test_resume_continues_from_the_last_complete_checkpoint(run):
  out = run["resume_out"]
  k = run["killed_at"]
  # the half-written checkpoint of update k + 2 is not the one restored
  assert re.search(rf"resumed from checkpoint at update {k} "
                   rf"\({k * STEPS_PER_UPDATE} env steps\)", out), out[-2000:]
  rows = _rows(run["dir"])
  steps = [int(r["env_steps"]) for r in rows]
  assert steps == sorted(set(steps)), "metrics.csv rows repeat or go back"
  # nothing before the checkpoint was lost (the damaged tail was after it),
  # nothing after it was kept twice
  before = [int(r["env_steps"]) for r in run["rows_before"]]
  assert [s for s in steps if s <= k * STEPS_PER_UPDATE] == \
      [s for s in before if s <= k * STEPS_PER_UPDATE]
  assert steps == [STEPS_PER_UPDATE * (i + 1) for i in range(run["final_updates"])]
  assert "\x00" not in (run["dir"] / "metrics.csv").read_text()
  # the resumed process did not start from update 1
  iterations = [int(float(r["train/iteration"])) for r in rows]
  assert iterations == list(range(1, run["final_updates"] + 1))


@pytest.mark.slow  # the module's train.py runs: minutes cold, ~1 min warm
def test_resumed_run_reuses_the_compiled_update(run):
  """The first process compiled the update and wrote it to the persistent
  cache; the resumed one loaded it from there."""
  out = run["resume_out"]
  assert re.search(r"Persistent compilation cache hit for 'jit_update'", out), \
      "the resumed run compiled its update again:\n" + out[-3000:]
  rows = _rows(run["dir"])
  compile_s = {int(r["env_steps"]): float(r["train/compile_s"]) for r in rows
               if r.get("train/compile_s")}
  k = run["killed_at"]
  # one value per process, on its first row: update 1 and update k + 1
  assert sorted(compile_s) == [STEPS_PER_UPDATE, (k + 1) * STEPS_PER_UPDATE]
  resumed_s = compile_s[(k + 1) * STEPS_PER_UPDATE]
  m = re.search(r"compiled in ([\d.]+)s", out)
  assert m and float(m.group(1)) == pytest.approx(resumed_s, abs=0.06)
  assert resumed_s > 0  # the cache hit above says it was not an XLA compile


@pytest.mark.slow  # the module's train.py runs: minutes cold, ~1 min warm
def test_a_run_builds_one_evaluation_program(run):
  """The resumed run evaluates periodically (at its last update) and then
  the final policy: one program (``agents.rollout.evaluation_program``)
  serves both, so it is lowered and compiled once."""
  out = run["resume_out"]
  assert re.search(r"eval: return", out), out[-2000:]
  rows = _rows(run["dir"])
  assert rows[-1]["eval/episode_return"] not in ("", None), "no periodic evaluation"
  lowered = re.findall(r"Compiling jit\(evaluation\) with global shapes", out)
  assert len(lowered) == 1, (
      f"the evaluation program was lowered {len(lowered)} times:\n" + out[-3000:])


@pytest.mark.slow  # the module's train.py runs: minutes cold, ~1 min warm
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


@pytest.mark.slow  # the module's train.py runs: minutes cold, ~1 min warm
def test_config_yaml_round_trips(run):
  from trainlib import rundir
  r = rundir.read_config(run["dir"] / "config.yaml")
  assert r.env_name == "pendulum_swingup" and r.agent == "shac"
  assert r.agent_config.num_envs == 2 and r.env_config.episode_length == 24
  assert r.agent_config.critic_hidden_sizes == (16,)
  assert r.agent_config.num_timesteps == run["final_updates"] * STEPS_PER_UPDATE


@pytest.mark.slow  # the module's train.py runs: minutes cold, ~1 min warm
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


@pytest.mark.slow  # the module's train.py runs: minutes cold, ~1 min warm
def test_apg_run(run):
  from agents import checkpoint
  from trainlib import rundir
  d = run["apg_dir"]
  assert rundir.read_config(d / "config.yaml").agent == "apg"
  steps = [int(r["env_steps"]) for r in _rows(d)]
  assert steps == [STEPS_PER_UPDATE * (i + 1) for i in range(APG_UPDATES)]
  assert _finished_checkpoints(d)[-1] == APG_UPDATES
  policy = checkpoint.load_policy(d / "policy.msgpack")
  assert policy.spec.hidden_sizes == (16,) and policy.spec.obs_size == 3
  ev = json.loads((d / "eval.json").read_text())
  assert ev["episodes"] == 3 and ev["video"] is None
  assert np.isfinite(ev["returns"]).all() and not (d / "video.mp4").exists()


@pytest.mark.slow  # the module's train.py runs: minutes cold, ~1 min warm
def test_ppo_trains_resumes_and_evaluates(run):
  d = run["ppo_dir"]
  first = [int(r["env_steps"]) for r in run["ppo_rows_first"]]
  assert first and first[-1] >= PPO_STEPS
  saved = re.search(r"resumed from checkpoint (\d+) \((\d+) env steps",
                    run["ppo_resumed"])
  assert saved, run["ppo_resumed"][-2000:]
  assert int(saved.group(1)) == int(saved.group(2)) == first[-1]
  rows = _rows(d)
  steps = [int(r["env_steps"]) for r in rows]
  assert steps == sorted(set(steps)) and steps[: len(first)] == first
  assert steps[-1] >= 2 * PPO_STEPS > first[-1]
  # Brax's evaluator reports the task's reward terms under their names
  last = rows[-1]
  assert "eval/episode_reward/upright" in last
  reward = float(last["eval/episode_return"])
  assert np.isfinite(reward) and 0.0 <= reward <= 40.0
  # reward = upright * small_velocity with small_velocity in [0.5, 1]
  upright = float(last["eval/episode_reward/upright"])
  assert 0.5 * upright - 1e-3 <= reward <= upright + 1e-3
  ev = json.loads((d / "eval.json").read_text())
  assert ev["episodes"] == 2 and np.isfinite(ev["returns"]).all()
  # the final policy of the extended run (evaluated above) is saved last
  saved = sorted(int(p.name) for p in (d / "policy").iterdir())
  assert saved[-1] == 2 * PPO_STEPS


# Each case runs train.py's or evaluate.py's main() in one Python process and
# records (exit code, stderr); an exception escaping main() is a failure.
_BAD_INPUT = r"""
import contextlib, io, json, shutil, sys, traceback
from pathlib import Path
import train, evaluate
import configs
from trainlib import rundir
tmp = Path(sys.argv[1])
# a run directory with a config and nothing else (killed before its first
# checkpoint): no policy to evaluate
norun = tmp / "no_policy"
norun.mkdir()
rundir.write_config(norun / "config.yaml", configs.resolve("pendulum_swingup", "shac", backend="cpu"))
garbled = tmp / "garbled"
garbled.mkdir()
(garbled / "config.yaml").write_text("env_name: [pendulum\n\x00\x01")
cases = {
    "unknown env": (train, ["pendulum_swingupp", "--no-video"]),
    "unknown agent": (train, ["pendulum_swingup", "--agent", "sacc", "--no-video"]),
    "unknown key": (train, ["pendulum_swingup", "--no-video", "--num-envz", "3"]),
    "resume missing": (train, ["--resume", str(tmp / "missing")]),
    "resume not a run": (train, ["--resume", str(tmp)]),
    "resume garbled": (train, ["--resume", str(garbled)]),
    "evaluate no policy": (evaluate, [str(norun), "--no-video"]),
    "evaluate missing": (evaluate, [str(tmp / "missing"), "--no-video"]),
}
out = {}
for name, (module, argv) in cases.items():
  err = io.StringIO()
  with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    try:
      code = module.main(argv)
    except SystemExit as e:
      code = e.code
    except BaseException:
      code = "raised"
      traceback.print_exc()
  out[name] = [code, err.getvalue()]
print(json.dumps(out))
"""


def test_bad_input_exits_2_with_a_clear_message(tmp_path):
  proc = subprocess.run([sys.executable, "-c", _BAD_INPUT, str(tmp_path)],
                        cwd=ROOT, env=_env(tmp_path / "cache"),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  expected = {
      "unknown env": "Did you mean 'pendulum_swingup'",
      "unknown agent": "Did you mean 'shac'",
      "unknown key": "--num-envz",
      "resume missing": "is " + str(tmp_path / "missing") + " a run directory",
      "resume not a run": "a run directory written by train.py",
      "resume garbled": "invalid YAML",
      "evaluate no policy": "the run has not finished",
      "evaluate missing": "a run directory written by train.py",
  }
  assert set(out) == set(expected)
  for name, message in expected.items():
    code, err = out[name]
    assert code == 2, f"{name}: exit {code}\n{err[-2000:]}"
    assert message in err, f"{name}: {err[-2000:]}"
    assert "Traceback" not in err, f"{name}: {err[-2000:]}"


_DAMAGED_CHECKPOINT = r"""
import contextlib, io, json, sys, traceback
from pathlib import Path
import jax
import train
import configs
import agents.shac as shac
from agents import checkpoint
from trainlib import rundir
run_dir = Path(sys.argv[1])
import dataclasses
resolved = configs.resolve("pendulum_swingup", "shac", backend="cpu")
resolved = dataclasses.replace(resolved, run=dataclasses.replace(resolved.run, video=False))
run_dir.mkdir()
rundir.write_config(run_dir / "config.yaml", resolved)
import envs
env = envs.make(resolved.env_name, True, config=resolved.env_config)
state = shac.init(env, resolved.agent_config, jax.random.PRNGKey(0))
ckpts = checkpoint.StateCheckpoints(run_dir / "checkpoints")
ckpts.save(state.replace(iteration=state.iteration + 2))
ckpts.close()
for p in (run_dir / "checkpoints").rglob("*"):  # every file cut short
  if p.is_file():
    p.write_bytes(p.read_bytes()[:10])
err = io.StringIO()
with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
  try:
    code = train.main(["--resume", str(run_dir)])
  except SystemExit as e:
    code = e.code
  except BaseException:
    code = "raised"
    traceback.print_exc()
print(json.dumps([code, err.getvalue()]))
"""


def test_resume_of_a_damaged_checkpoint_exits_2(tmp_path):
  proc = subprocess.run([sys.executable, "-c", _DAMAGED_CHECKPOINT, str(tmp_path / "run")],
                        cwd=ROOT, env=_env(tmp_path / "cache"),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  code, err = json.loads(proc.stdout.strip().splitlines()[-1])
  assert code == 2, err[-3000:]
  assert "checkpoint" in err and "Traceback" not in err, err[-3000:]
