"""Every registered env, both modes: jit + vmap rollouts, shapes, no NaN, determinism,
and (differentiable mode) finite, nonzero, causal gradients of a 32-step return.

Each env/mode compiles exactly one function, shared by the tests below through
module-scoped caches. The differentiable-mode smoke rollout and the gradient
test are the same compiled function: a vmapped ``value_and_grad`` over a
200-step rollout whose loss is the return of the first 32 steps.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs

B = 2        # envs per vmapped batch
T = 200      # smoke-test steps
H = 32       # gradient horizon
CONTROL = ["pendulum_swingup", "cartpole_swingup", "cartpole_balance",
           "acrobot_swingup", "reacher", "swimmer"]
# contact-rich models compile for minutes on a 2-core CPU: marked slow (CI runs them)
SLOW = {"hopper", "half_cheetah", "ant", "humanoid"}
ALL = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in envs.names()]


def _actions(env, key):
  return jax.random.uniform(key, (B, T, env.action_size), minval=-1.0, maxval=1.0)


@functools.cache
def _default_run(name):
  """Compiled default-mode rollout: (keys [B], actions [B, T, nu]) -> outputs."""
  env = envs.make(name)

  @jax.jit
  def rollout(keys, actions):
    def one(key, acts):
      state = env.reset(key)

      def body(s, a):
        s = env.step(s, a)
        return s, (s.obs, s.reward, s.done)

      _, out = jax.lax.scan(body, state, acts)
      return state.obs, out

    return jax.vmap(one)(keys, actions)

  keys = jax.random.split(jax.random.PRNGKey(0), B)
  actions = _actions(env, jax.random.PRNGKey(1))
  return env, rollout, keys, actions, jax.block_until_ready(rollout(keys, actions))


@functools.cache
def _diff_run(name):
  """Compiled differentiable-mode rollout + gradient of the H-step return."""
  env = envs.make(name, differentiable=True)

  def ret(actions, key):
    state = env.reset(key)

    def body(s, a):
      s = env.step(s, a)
      return s, (s.obs, s.reward, s.done)

    _, (obs, reward, done) = jax.lax.scan(body, state, actions)
    return jnp.sum(reward[:H]), (state.obs, obs, reward, done)

  fn = jax.jit(jax.vmap(jax.value_and_grad(ret, has_aux=True)))
  keys = jax.random.split(jax.random.PRNGKey(0), B)
  actions = _actions(env, jax.random.PRNGKey(1))
  return env, jax.block_until_ready(fn(actions, keys))


def _check_rollout(env, obs0, obs, reward, done):
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
def test_default_mode_smoke(name):
  env, _, _, _, (obs0, (obs, reward, done)) = _default_run(name)
  _check_rollout(env, obs0, obs, reward, done)


@pytest.mark.parametrize("name", ["pendulum_swingup", pytest.param("hopper", marks=pytest.mark.slow)])
def test_determinism(name):
  env, rollout, keys, actions, first = _default_run(name)
  again = jax.block_until_ready(rollout(keys, actions))
  for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(again)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name", ALL)
def test_differentiable_mode_smoke_and_gradients(name):
  env, ((value, (obs0, obs, reward, done)), grad) = _diff_run(name)
  _check_rollout(env, obs0, obs, reward, done)
  np.testing.assert_allclose(value, reward[:, :H].sum(axis=1), rtol=1e-5, atol=1e-5)
  assert grad.dtype == jnp.float32 and grad.shape == (B, T, env.action_size)
  g = np.asarray(grad)
  assert np.isfinite(g).all(), f"{name}: non-finite gradient"
  # every rollout's H-step return depends on its actions
  assert (np.abs(g[:, :H]).max(axis=(1, 2)) > 0).all(), f"{name}: zero gradient"
  # ... and not on actions after step H (causality; also shows no NaN leaks back)
  assert (g[:, H:] == 0).all()


@pytest.mark.parametrize("name", ["pendulum_swingup", "acrobot_swingup"])
def test_modes_agree_without_constraints(name):
  """Constraint-free models: differentiable mode changes no value."""
  _, _, _, _, (obs0, (obs, reward, _)) = _default_run(name)
  _, ((_, (dobs0, dobs, dreward, _)), _) = _diff_run(name)
  np.testing.assert_allclose(dobs0, obs0, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dobs, obs, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(dreward, reward, rtol=1e-4, atol=1e-4)
