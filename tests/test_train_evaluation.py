"""evaluate.py's evaluation of a task whose episodes end early.

A run directory of cartpole_balance with an untrained saved policy is
evaluated by ``trainlib.run.evaluate_run`` (what evaluate.py and
train.py run), with the task replaced by a cart-pole whose episode ends when
the pole tilts past ~26 degrees (every episode ends before the time limit,
each at its own step). eval.json's returns, lengths and fall rate must equal
those of the same policy stepped by hand, and the video must show the
median-return episode up to its end, not the whole time limit.

Rendering runs in a subprocess: MuJoCo binds its OpenGL backend when it is
first imported, and other test modules import it without MUJOCO_GL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EPISODES, LIMIT, SEED = 5, 150, 11

_SCRIPT = r"""
import json, sys
from pathlib import Path
from trainlib import startup
st = startup.configure_gl()
if st.backend is None:
  print(json.dumps({"skip": str(st.errors)})); sys.exit(0)
import dataclasses
import jax, jax.numpy as jnp, numpy as np
import configs
from agents import checkpoint, networks, normalizer, rollout
from envs.cartpole import CartpoleBalance
from configs import RenderConfig
from trainlib import run, rundir

episodes, limit, seed = (int(a) for a in sys.argv[2:5])
run_dir = Path(sys.argv[1])


class TiltEnds(CartpoleBalance):
  def _terminated(self, data):
    return jnp.cos(data.qpos[1]) < 0.9


resolved = configs.resolve("cartpole_balance", "apg", backend="cpu")
resolved = dataclasses.replace(
    resolved, env_config=dataclasses.replace(resolved.env_config, episode_length=limit),
    render=RenderConfig(width=64, height=48))
run_dir.mkdir()
rundir.write_config(run_dir / "config.yaml", resolved)
env = TiltEnds(resolved.env_config)
spec = networks.PolicySpec(obs_size=env.observation_size, action_size=1,
                           hidden_sizes=(8,))
params = networks.PolicyParams(networks.init_policy(spec, jax.random.PRNGKey(3)),
                               normalizer.init(spec.obs_size), spec)
checkpoint.save_policy(run_dir / "policy.msgpack", params)
run._make_env = lambda r, differentiable=False: TiltEnds(r.env_config)
result = run.evaluate_run(run_dir, episodes=episodes, video=True, seed=seed,
                                 log=lambda s: None)

# the same episodes stepped one at a time on the host
policy = networks.make_policy(checkpoint.load_policy(run_dir / "policy.msgpack"))
step = jax.jit(lambda s: env.step(s, policy(s.obs[None], None)[0]))
starts = rollout.reset_batch(env, jax.random.split(jax.random.PRNGKey(seed))[0], episodes)
ref = {"returns": [], "lengths": [], "fell": []}
for i in range(episodes):
  s = jax.tree_util.tree_map(lambda x: x[i], starts)
  ret, n = 0.0, 0
  while n < limit:
    s = step(s)
    ret, n = ret + float(s.reward), n + 1
    if float(s.done):
      break
  ref["returns"].append(ret); ref["lengths"].append(n); ref["fell"].append(bool(s.done))
stride = max(1, int(round(1.0 / (resolved.render.fps * env.dt))))
print(json.dumps({"result": result, "ref": ref, "stride": stride}))
"""


pytestmark = pytest.mark.slow  # a subprocess that compiles, steps and renders


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
  run_dir = tmp_path_factory.mktemp("eval") / "run"
  proc = subprocess.run(
      [sys.executable, "-c", _SCRIPT, str(run_dir), str(EPISODES), str(LIMIT), str(SEED)],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  if "skip" in out:
    pytest.skip(f"no headless GL backend here: {out['skip']}")
  return run_dir, out


def test_early_termination_returns_and_lengths(evaluated):
  run_dir, out = evaluated
  result, ref = out["result"], out["ref"]
  assert json.loads((run_dir / "eval.json").read_text()) == result
  lengths = ref["lengths"]
  assert max(lengths) < LIMIT and len(set(lengths)) > 1, lengths  # what the test is about
  assert result["episode_lengths"] == lengths
  np.testing.assert_allclose(result["returns"], ref["returns"], rtol=1e-4)
  assert result["fall_rate"] == 1.0 and all(ref["fell"])
  assert result["episode_length_mean"] == pytest.approx(np.mean(lengths))
  assert result["return_mean"] == pytest.approx(np.mean(ref["returns"]), rel=1e-4)


def test_video_is_the_median_episode_up_to_its_end(evaluated):
  import imageio.v2 as imageio
  run_dir, out = evaluated
  result, ref = out["result"], out["ref"]
  i = result["video_episode"]
  assert sorted(ref["returns"])[(EPISODES - 1) // 2] == pytest.approx(ref["returns"][i],
                                                                    rel=1e-4)
  # the start state and one row per step of episode i, subsampled to ~fps
  expected = len(range(0, ref["lengths"][i] + 1, out["stride"]))
  frames = imageio.mimread(run_dir / "video.mp4")
  assert len(frames) == result["video_frames"] == expected
