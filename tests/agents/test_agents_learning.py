"""Short learning runs (differentiable mode) that must clear a return
threshold on any CPU: SHAC and APG on cartpole_swingup, SHAC's first
updates on a locomotion task (the hopper), and SAPO's first updates on the
toy pendulum (see the end of this file).

Each run trains for 10 episodes of 1000 steps per env (313 updates of 64 envs
x 32 steps, 641k env steps; see learning_configs.py) and is scored by the mean
return of the 64 envs' 10th episode (stochastic training policy).

XLA:CPU compiles for the CPU's instruction set and training amplifies the
rounding differences, so the same seed scores differently on different
machines. The thresholds are therefore set from the spread measured by
``tests/agents/learning_spread.py`` over seeds 0-4 under three instruction-set
settings (native AVX-512, ``--xla_cpu_max_isa=AVX2`` and ``SSE4_2``) on the
project's 2-core AMD EPYC, at about half the worst result and well above a
random policy. The measured spread is recorded next to each threshold and in
docs/agents.md. Shorter runs (3 episodes) were too noisy to test: SHAC scored
15.3 (seed 3, native, below the random policy) to 343.1.
"""

import numpy as np
import pytest

import envs
import learning_configs as lc

EPISODES = 10

# For scale: a uniformly random policy, 64 envs x one 1000-step episode, seeds
# 0-4, scores 27.3-32.1; the initial policies score 0.4-0.8.

# SHAC, 10 episodes, seeds 0-4 (actor rate 5e-3, the preset's until 7 Dec 2026):
#   native (AVX-512)  488.6 433.5 529.2 333.9 410.3
#   AVX2              338.2 357.1 302.3 486.3 328.4
#   SSE4_2            438.0 323.2 251.5 234.9 253.4
# With the test session's XLA_FLAGS=--xla_cpu_use_fusion_emitters=false
# (tests/conftest.py; 28 Nov 2026):
#   native            193.7 448.5 286.2 458.3 264.9
#   AVX2              315.9 406.7 635.3 421.6 468.4
# worst 193.7; the threshold is 0.62x of it, 3.7x the random policy's best.
SHAC_THRESHOLD = 120.0

# APG, 10 episodes, seeds 0-4 (learning rate 1e-2):
#   native (AVX-512)  321.2 292.6 339.5 284.2 311.7
#   AVX2              298.1 306.4 317.3 360.8 322.6
#   SSE4_2            309.1 298.1 307.5 357.4 315.9
# With --xla_cpu_use_fusion_emitters=false (the test session's flag):
#   native            369.2 307.0 314.9 322.4 298.1
#   AVX2              352.3 319.7 299.3 345.7 276.6
# worst 276.6; threshold about half of it, 4.4x the random policy's best.
APG_THRESHOLD = 140.0


@pytest.fixture(scope="module")
def env():
  return envs.make(lc.ENV, differentiable=True)


def _check(agent, env, threshold):
  first, final, metrics = lc.run(agent, env, EPISODES, seed=0)
  assert metrics["train/episodes_finished"] == lc.NUM_ENVS
  assert metrics["train/skipped_updates"] == 0
  assert final > threshold, (first, final)


@pytest.mark.slow
def test_shac_learns_cartpole_swingup(env):
  _check("shac", env, SHAC_THRESHOLD)


@pytest.mark.slow
def test_apg_learns_cartpole_swingup(env):
  _check("apg", env, APG_THRESHOLD)


# SHAC on the hopper, 40 updates of 32 envs x 32 steps, 100-step episodes
# (learning_configs.run_locomotion), seeds 0-4:
# first window (updates 2-4) -> last window (updates 37-40), training return:
#   native (AVX-512)  64.3->255.1  84.9->207.8  65.4->247.2  66.2->251.0  102.9->252.2
#   AVX2              64.3->254.4  84.9->172.7  65.4->247.1  66.2->247.6  102.9->251.7
# A uniformly random policy scores 70.3-75.2 (32 episodes of up to 100 steps,
# seeds 0-4). `python -m tests.agents.learning_spread --locomotion` (and with
# XLA_FLAGS=--xla_cpu_max_isa=AVX2), 28 Nov 2026. With the test session's
# --xla_cpu_use_fusion_emitters=false the first windows are the same and the
# last windows are native 255.2 223.7 250.4 250.8 253.0, AVX2 255.7 232.9
# 242.4 250.4 254.0. Worst 172.7; the threshold is 0.7x of it and 1.6x the
# random policy's best.
LOCOMOTION_THRESHOLD = 120.0


@pytest.mark.slow
def test_shac_improves_a_locomotion_task_over_its_first_updates():
  """A few SHAC updates make the hopper's training return clearly better
  than its first logging window's and than a random policy's."""
  env = lc.make_locomotion_env()
  first, last, metrics = lc.run_locomotion(env, seed=0)
  # the suite's only compile of the hopper's gradient (see
  # tests/envs/test_envs_smoke.py): finite in every update, nonzero
  assert metrics["train/skipped_updates"] == 0
  assert np.isfinite(metrics["train/grad_norm"]) and metrics["train/grad_norm"] > 0
  assert last > LOCOMOTION_THRESHOLD, (first, last)
  assert last > first, (first, last)


# SAPO on the toy pendulum of agents_toy_env.py (pure JAX, so cheap enough
# for the fast tier): 150 updates of 32 envs x 16 steps, 100-step episodes,
# its Config's defaults otherwise (learning_configs.run_toy); the score is
# the last logging window's (updates 141-150) mean training return.
# `python -m tests.agents.learning_spread --toy --agents sapo shac` (and with
# XLA_FLAGS=--xla_cpu_max_isa=AVX2), seeds 0-4, with the test session's
# --xla_cpu_use_fusion_emitters=false, on the project's 2-core AMD EPYC
# (AVX-512):
#   first window (updates 2-10) -> last window, SAPO:
#     native  67.69->84.23  62.52->85.97  64.63->85.97  65.11->86.49  72.85->83.53
#     AVX2    67.69->84.25  62.52->86.00  64.63->85.97  65.11->86.49  72.85->83.54
#   SHAC on the same run (last window), for comparison:
#     native  86.70 88.17 87.63 88.48 85.86
#     AVX2    86.74 88.21 87.74 88.47 85.80
# Under XLA's defaults SAPO's last windows are native 84.24 85.96 85.97 86.50
# 83.53, AVX2 84.24 85.99 85.96 86.50 83.54. A uniformly random policy scores
# 58.68 62.62 61.27 68.61 61.62 (32 episodes of 100 steps, seeds 0-4; every
# setting above). Worst 83.53; the threshold is 0.91x of it and 1.11x the
# random policy's best (the toy's returns span little: its best possible
# return is below 100).
TOY_THRESHOLD = 76.0


def test_sapo_improves_on_a_random_policy_over_its_first_updates():
  """A few SAPO updates on the toy pendulum make the training return
  clearly better than a random policy's and than its first window's."""
  first, last, metrics = lc.run_toy(lc.make_toy_env(), seed=0)
  assert metrics["train/skipped_updates"] == 0
  assert np.isfinite(metrics["train/entropy"]) and metrics["train/temperature"] > 0
  assert last > TOY_THRESHOLD, (first, last)
  assert last > first, (first, last)
