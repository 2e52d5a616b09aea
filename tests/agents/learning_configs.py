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
  # the preset's former actor rate (5e-3; configs/cartpole_swingup.yaml now
  # uses 2e-3): the thresholds of test_agents_learning.py were measured with it
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


# SAPO's first updates on the toy pendulum of tests/agents/agents_toy_env.py
# (pure JAX: compiles and steps in a fraction of an MJX env's time). Every env
# ends TOY_WINDOW * TOY_HORIZON / TOY_EPISODE episodes per logging window;
# the score is the last window's mean training return (stochastic policy),
# compared with the first window's (updates 2 to TOY_WINDOW) and a random
# policy's.
TOY_EPISODE = 100
TOY_ENVS, TOY_HORIZON = 32, 16
TOY_UPDATES, TOY_WINDOW = 150, 10


def make_toy_env():
  """The toy pendulum with TOY_EPISODE-step episodes (needs tests/agents on
  ``sys.path``, as tests/agents/conftest.py and learning_spread.py put it)."""
  from agents_toy_env import ToyPendulum  # pylint: disable=import-outside-toplevel
  return ToyPendulum(episode_length=TOY_EPISODE)


def toy_config(agent: str = "sapo"):
  """``agent`` ("sapo" or "shac") at its defaults, tiny budget and networks."""
  from agents import sapo, shac  # pylint: disable=import-outside-toplevel
  cls = {"sapo": sapo.Config, "shac": shac.Config}[agent]
  return cls(num_timesteps=TOY_UPDATES * TOY_ENVS * TOY_HORIZON,
             num_envs=TOY_ENVS, horizon=TOY_HORIZON,
             policy_hidden_sizes=(32, 32), critic_hidden_sizes=(32, 32),
             log_every=TOY_WINDOW)


def run_toy(env, seed: int = 0, agent: str = "sapo") -> tuple[float, float, dict]:
  """Returns ``(first, last, metrics)``: the mean training return of the
  first logging window after the compiling update and of the last window,
  and the last logged metrics."""
  from agents import sapo, shac  # pylint: disable=import-outside-toplevel
  mod = {"sapo": sapo, "shac": shac}[agent]
  logs = []
  _, metrics = mod.train(env, toy_config(agent), jax.random.PRNGKey(seed),
                         progress_fn=lambda s, m: logs.append(m))
  return logs[1]["train/episode_return"], logs[-1]["train/episode_return"], metrics
