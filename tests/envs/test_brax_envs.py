"""The envs inside Brax's own pipelines: APG, wrappers, randomization_fn.

Kept small: the cheapest contact-free task for the trainers, and a cart-pole
that terminates on every step (its rail end stop is a constraint, so the
differentiable solver is in the program) for termination + domain
randomization in differentiable mode.

Brax PPO through ``train.py`` (Brax's trainer on the default-mode env, reward
terms in its eval metrics) is tested in tests/test_train_cli.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.wrappers import training as brax_training
from brax.training.agents.apg import networks as apg_networks
from brax.training.agents.apg import train as apg

import envs
from envs.cartpole import CartpoleConfig, CartpoleSwingup


class EveryStepEnds(CartpoleSwingup):
  """The cart-pole, ending its episode after every step."""

  def _terminated(self, data):
    return jnp.ones((), dtype=bool)


def mass_scaling(sys, rng, low=0.7, high=1.3):
  """A Brax ``randomization_fn``: scales every body mass by U(low, high) per env."""
  scale = jax.vmap(lambda k: jax.random.uniform(k, (), minval=low, maxval=high))(rng)
  sys_v = sys.tree_replace({"body_mass": scale[:, None] * sys.body_mass[None]})
  in_axes = jax.tree_util.tree_map(lambda _: None, sys)
  in_axes = in_axes.tree_replace({"body_mass": 0})
  return sys_v, in_axes


@pytest.mark.slow
def test_apg_runs_on_a_differentiable_env():
  env = envs.make("pendulum_swingup", differentiable=True)
  progress = []
  network_factory = functools.partial(apg_networks.make_apg_networks,
                                      hidden_layer_sizes=(16,))
  _, params, metrics = apg.train(
      env, episode_length=16, policy_updates=2, horizon_length=8, num_envs=2,
      # one evaluation, after training (2 adds one of the initial policy)
      num_evals=1, num_eval_envs=2, network_factory=network_factory,
      progress_fn=lambda step, m: progress.append((step, m)), seed=0)
  assert progress[-1][0] == 1
  grad_norm = float(metrics["training/grad_norm"])
  assert np.isfinite(grad_norm) and grad_norm > 0.0  # APG got a real gradient
  leaves = jax.tree_util.tree_leaves(params)
  assert all(np.isfinite(np.asarray(x)).all() for x in leaves)


def test_termination_autoreset_and_mass_randomization_in_differentiable_mode():
  """Brax's wrap() with a randomization_fn around a differentiable cart-pole
  that terminates on every step.

  Every step ends an episode, so the reward of step t may depend on action t
  only: gradients must be exactly zero across the auto-reset and finite.
  """
  B, steps = 2, 3
  env = EveryStepEnds(CartpoleConfig(n_frames=10), differentiable=True)
  assert env.mj_model.jnt_limited.any()  # the rail end stop: a constraint
  rng = jax.random.split(jax.random.PRNGKey(3), B)
  wrapped = brax_training.wrap(env, episode_length=1000,
                               randomization_fn=functools.partial(mass_scaling, rng=rng))
  # the same reset key for both envs: only the masses differ
  state = jax.jit(wrapped.reset)(jnp.stack([jax.random.PRNGKey(0)] * B))
  actions = 0.5 * jnp.ones((steps, B, env.action_size))

  def rewards(actions):
    def body(s, a):
      s = wrapped.step(s, a)
      return s, (s.reward, s.done)

    _, out = jax.lax.scan(body, state, actions)
    return out

  @jax.jit
  def run(actions):  # one program: rewards, dones and d(last reward)/d(actions)
    def last_reward(a):
      r, done = rewards(a)
      return r[-1].sum(), (r, done)
    (_, (r, done)), grad = jax.value_and_grad(last_reward, has_aux=True)(actions)
    return r, done, grad

  r, done, grad = run(actions)
  grad = np.asarray(grad)
  assert (np.asarray(done) == 1.0).all()
  assert np.isfinite(np.asarray(r)).all()
  assert not np.isclose(r[0, 0], r[0, 1]), "mass scaling did not change the dynamics"
  assert np.isfinite(grad).all()
  assert (grad[:-1] == 0).all(), "gradient leaked across an auto-reset"
  assert (np.abs(grad[-1]).max(axis=-1) > 0).all()
