"""Short learning runs on cartpole_swingup (differentiable mode) that must clear
a return threshold.

Return = mean undiscounted return of the episodes that finished in the last
logging window (64 envs, all ending together at the 1000-step time limit, so
the last window holds 64 full episodes of the stochastic training policy).
Measured on the 2-core CPU (seed 0, cart-pole with rail end stops): a
uniformly random policy scores 25.5 +- 17.4 (16 envs, one episode each) and
the initial policy 0.7. These runs reached SHAC 380.8 and APG 320.3.
Thresholds: SHAC 200, APG 150, both far above random and about half of what
was measured. See docs/agents.md.
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
SHAC_THRESHOLD = 200.0
APG_THRESHOLD = 150.0


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
  # the learning rates of configs/cartpole_swingup.yaml
  config = shac.Config(num_timesteps=STEPS, num_envs=64, horizon=32,
                       actor_learning_rate=5e-3, critic_learning_rate=2e-3, log_every=31)
  first, final = _run(shac, env, config)
  assert final > SHAC_THRESHOLD, (first, final)


@pytest.mark.slow
def test_apg_learns_cartpole_swingup(env):
  config = apg.Config(num_timesteps=STEPS, num_envs=64, horizon=32, learning_rate=1e-2,
                      log_every=31)
  first, final = _run(apg, env, config)
  assert final > APG_THRESHOLD, (first, final)
