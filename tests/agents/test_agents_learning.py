"""Short learning runs on cartpole_swingup (differentiable mode) that must clear
a return threshold.

Return = mean undiscounted return of the episodes that finished in the last
logging window (64 envs, all ending together at the 1000-step time limit, so
the last window holds 64 full episodes of the stochastic training policy).
Measured on the 2-core CPU (seed 0): a uniformly random policy scores 13.1
(16 envs, one episode each) and the initial policy ~0.7. This run reached
SHAC 481.6 and APG 82.8 (APG's 2nd episode: 179.8; APG is noisy). Thresholds:
SHAC 250, APG 40, both well above random. See docs/agents.md.
"""

import jax
import numpy as np
import pytest

import envs
from agents import apg, shac

# 94 updates x 64 envs x 32 steps: every env's 3rd 1000-step episode ends
# inside update 94 (steps 2977..3008), the only update of the last logging
# window (log_every=31: windows end at updates 1, 31, 62, 93, 94).
STEPS = 94 * 64 * 32
SHAC_THRESHOLD = 250.0
APG_THRESHOLD = 40.0


@pytest.fixture(scope="module")
def env():
  return envs.make("cartpole_swingup", differentiable=True)


def _run(mod, env, config):
  logs = []
  _, metrics = mod.train(env, config, jax.random.PRNGKey(0),
                         progress_fn=lambda s, m: logs.append(m))
  assert metrics["train/episodes_finished"] == 64
  assert metrics["train/skipped_updates"] == 0
  first = logs[0]["train/episode_return_estimate"]
  return first, metrics["train/episode_return"]


@pytest.mark.slow
def test_shac_learns_cartpole_swingup(env):
  config = shac.Config(num_timesteps=STEPS, num_envs=64, horizon=32,
                       actor_learning_rate=1e-2, critic_learning_rate=1e-3, log_every=31)
  first, final = _run(shac, env, config)
  assert final > SHAC_THRESHOLD, (first, final)


@pytest.mark.slow
def test_apg_learns_cartpole_swingup(env):
  config = apg.Config(num_timesteps=STEPS, num_envs=64, horizon=32, learning_rate=1e-2,
                      log_every=31)
  first, final = _run(apg, env, config)
  assert final > APG_THRESHOLD, (first, final)
