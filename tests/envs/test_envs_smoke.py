"""Every registered env: jit + vmap rollouts, shapes, no NaN, determinism in
default mode, and in differentiable mode finite, nonzero, causal gradients of
a 32-step return.

Differentiable mode differs from default mode only in the constraint solver
(envs/physics.py), and MJX skips the solver for a model without constraint
rows. So the differentiable rollout is compiled for every task with
constraints (contacts, joint limits; the hopper's gradient is compiled by the
locomotion learning test instead) and for pendulum_swingup, the
constraint-free representative; for the other constraint-free tasks
(acrobot, reacher, swimmer) the test checks that they have no constraint rows,
so their default-mode rollout is the physics of both modes. (Each of their
gradient programs cost 35-65 CPU-s in the cold suite and never reached the
solver.)

Each env/mode compiles exactly one rollout, shared with every other test file
through the session fixture ``env_runs`` (tests/conftest.py). The
differentiable-mode smoke rollout and the gradient test are the same compiled
function: a vmapped ``value_and_grad`` over a 200-step rollout whose loss is
the return of the first 32 steps; tests/envs/test_envs_grad.py checks that
gradient against finite differences of the same compiled function.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import physics

CONTROL = ["pendulum_swingup", "cartpole_swingup", "cartpole_balance",
           "acrobot_swingup", "reacher", "swimmer"]
# The fast tier (pytest -m "not slow") steps one constraint-free task and the
# cart-pole (a joint limit: the differentiable solver is in its program); the
# other tasks are marked slow (CI runs them): each costs 10-40 s to trace even
# with a warm compilation cache, contact-rich ones minutes to compile cold.
FAST = {"pendulum_swingup", "cartpole_swingup"}


def params(names):
  return [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in names]


ALL = params(envs.names())
# constraint-free tasks whose differentiable program is not compiled (see the
# module docstring); pendulum_swingup is compiled as their representative
SAME_AS_DEFAULT = ("acrobot_swingup", "reacher", "swimmer")
# The hopper's gradient is compiled once in the suite, by the locomotion
# learning test (tests/agents/test_agents_learning.py: SHAC's update through
# 40 hopper updates, every gradient finite and nonzero); a second program
# here cost ~60 CPU-s of the cold suite.
GRADIENT_ELSEWHERE = ("hopper",)
DIFFERENTIABLE = params([n for n in envs.names()
                         if n not in SAME_AS_DEFAULT + GRADIENT_ELSEWHERE])


def _check_rollout(runs, env, obs0, obs, reward, done):
  B, T = runs.B, runs.T
  assert obs0.shape == (B, env.observation_size)
  assert obs.shape == (B, T, env.observation_size)
  assert reward.shape == (B, T) and done.shape == (B, T)
  assert np.isfinite(obs0).all() and np.isfinite(obs).all() and np.isfinite(reward).all()
  assert set(np.unique(np.asarray(done))) <= {0.0, 1.0}
  # different reset keys give different initial states
  assert not np.allclose(obs0[0], obs0[1])
  if env.name in CONTROL:  # DM Control scale: per-step reward in [0, 1]
    assert reward.min() >= 0.0 and reward.max() <= 1.0


@pytest.mark.parametrize("name", ALL)
def test_default_mode_smoke(name, env_runs):
  run = env_runs.default(name)
  obs0, (obs, reward, done) = run.out
  _check_rollout(env_runs, run.env, obs0, obs, reward, done)


@pytest.mark.parametrize("name", ["pendulum_swingup", pytest.param("hopper", marks=pytest.mark.slow)])
def test_determinism(name, env_runs):
  run = env_runs.default(name)
  state0 = run.reset(run.keys)
  again = jax.block_until_ready((state0.obs, run.rollout(state0, run.actions)))
  first = run.out
  for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(again)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_differentiable_mode_smoke_and_gradients(name, env_runs):
  run = env_runs.differentiable(name)
  env, H, B, T = run.env, env_runs.H, env_runs.B, env_runs.T
  (value, (obs, reward, done)), grad = run.out
  _check_rollout(env_runs, env, run.state0.obs, obs, reward, done)
  np.testing.assert_allclose(value, reward[:, :H].sum(axis=1), rtol=1e-5, atol=1e-5)
  assert grad.dtype == jnp.float32 and grad.shape == (B, T, env.action_size)
  g = np.asarray(grad)
  assert np.isfinite(g).all(), f"{name}: non-finite gradient"
  # every rollout's H-step return depends on its actions
  assert (np.abs(g[:, :H]).max(axis=(1, 2)) > 0).all(), f"{name}: zero gradient"
  # ... and not on actions after step H (causality; also shows no NaN leaks back)
  assert (g[:, H:] == 0).all()


def test_modes_agree_on_a_constrained_task(env_runs):
  """The cart-pole has constraint rows (its rail's end stops), so the two
  modes run different solvers (MJX's early exit against a fixed number of
  iterations at tolerance 0); on the same reset states and actions they give
  the same observations and rewards (see ``EnvRuns.reset``)."""
  name = "cartpole_swingup"
  assert physics.has_constraint_rows(envs.make(name).sys)
  _, (obs, reward, _) = env_runs.default(name).out
  (_, (dobs, dreward, _)), _ = env_runs.differentiable(name).out
  np.testing.assert_allclose(dobs, obs, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(dreward, reward, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", [*SAME_AS_DEFAULT, "pendulum_swingup"])
def test_tasks_without_a_differentiable_program_have_no_constraint_rows(name):
  """MJX calls the constraint solver (the only part differentiable mode
  changes) only when ``efc_J`` has rows; its size is fixed by the model.
  A task that gains a joint limit or a contact fails here and must move to
  ``DIFFERENTIABLE``."""
  assert not physics.has_constraint_rows(envs.make(name, differentiable=True).sys), (
      f"{name} has constraint rows: compile its differentiable program "
      f"(remove it from SAME_AS_DEFAULT)")
