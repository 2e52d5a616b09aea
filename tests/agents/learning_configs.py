"""The learning tests' runs, shared by tests/agents/test_agents_learning.py and
tests/agents/learning_spread.py (which measures their spread over seeds and CPU
instruction sets, from which the tests' thresholds are set).

A run of ``episodes`` 1000-step episodes per env takes ``updates(episodes) =
ceil(1000 * episodes / 32)`` updates of 64 envs x 32 steps: every env's last
episode ends inside the last update, and ``log_every = updates - 1`` makes
that update a logging window of its own. So the final
``train/episode_return`` is the mean undiscounted return of the 64 envs'
last episodes of the stochastic training policy.
"""

from __future__ import annotations

import math

import jax

ENV = "cartpole_swingup"
NUM_ENVS, HORIZON, EPISODE_LENGTH = 64, 32, 1000


def updates(episodes: int) -> int:
  return math.ceil(EPISODE_LENGTH * episodes / HORIZON)


def shac_config(episodes: int):
  from agents import shac  # pylint: disable=import-outside-toplevel
  n = updates(episodes)
  # the learning rates of configs/cartpole_swingup.yaml
  return shac.Config(num_timesteps=n * NUM_ENVS * HORIZON, num_envs=NUM_ENVS,
                     horizon=HORIZON, learning_rate=5e-3,
                     critic_learning_rate=2e-3, log_every=n - 1)


def apg_config(episodes: int):
  from agents import apg  # pylint: disable=import-outside-toplevel
  n = updates(episodes)
  return apg.Config(num_timesteps=n * NUM_ENVS * HORIZON, num_envs=NUM_ENVS,
                    horizon=HORIZON, learning_rate=1e-2, log_every=n - 1)


def run(agent: str, env, episodes: int, seed: int = 0) -> tuple[float, float, dict]:
  """Trains ``agent`` ("shac" or "apg") on ``env`` for ``episodes`` episodes per env.

  Returns ``(first, final, metrics)``: the first update's return estimate, the
  final ``train/episode_return`` and the last logged metrics.
  """
  from agents import apg, shac  # pylint: disable=import-outside-toplevel
  mod, config = {"shac": (shac, shac_config), "apg": (apg, apg_config)}[agent]
  logs = []
  _, metrics = mod.train(env, config(episodes), jax.random.PRNGKey(seed),
                         progress_fn=lambda s, m: logs.append(m))
  first = logs[0]["train/episode_return_estimate"]
  return first, metrics["train/episode_return"], metrics


# A locomotion task: SHAC's first updates on the hopper (a few seconds of
# training after the compile). Episodes are cut at 100 steps so that every
# env ends at least one episode in each logging window of 4 updates x 32
# steps; the score is the last window's mean training return (stochastic
# policy), compared with the first window's and a random policy's.
LOCOMOTION_ENV = "hopper"
LOCOMOTION_EPISODE = 100
LOCOMOTION_ENVS, LOCOMOTION_HORIZON = 32, 32
LOCOMOTION_UPDATES, LOCOMOTION_WINDOW = 40, 4


def make_locomotion_env():
  import envs  # pylint: disable=import-outside-toplevel
  return envs.make(LOCOMOTION_ENV, differentiable=True,
                   episode_length=LOCOMOTION_EPISODE)


def locomotion_config():
  """SHAC on the hopper at its preset's learning rates, tiny budget."""
  from agents import shac  # pylint: disable=import-outside-toplevel
  return shac.Config(
      num_timesteps=LOCOMOTION_UPDATES * LOCOMOTION_ENVS * LOCOMOTION_HORIZON,
      num_envs=LOCOMOTION_ENVS, horizon=LOCOMOTION_HORIZON,
      log_every=LOCOMOTION_WINDOW)


def run_locomotion(env, seed: int = 0) -> tuple[float, float, dict]:
  """Returns ``(first, last, metrics)``: the mean training return of the
  first logging window after the compiling update (updates 2-4; the first
  update alone ends only the envs that fell within 32 steps) and of the last
  window, and the last logged metrics."""
  from agents import shac  # pylint: disable=import-outside-toplevel
  logs = []
  _, metrics = shac.train(env, locomotion_config(), jax.random.PRNGKey(seed),
                          progress_fn=lambda s, m: logs.append(m))
  return logs[1]["train/episode_return"], logs[-1]["train/episode_return"], metrics
