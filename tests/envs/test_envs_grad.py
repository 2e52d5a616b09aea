"""Gradient contract of differentiable mode on the contact-free tasks:
reverse-mode AD against forward-mode AD and central finite differences for one
env step (reward plus a random projection of the next observation).

The cart-pole's rail end stop (a joint limit) is inactive at these states.
cartpole_balance is left out: it is the same model and step as
cartpole_swingup (only the reset differs), and each case costs a ~40 s compile.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs

CONTACT_FREE = ["pendulum_swingup", "cartpole_swingup", "acrobot_swingup",
                "reacher", "swimmer"]
EPS = 1e-2


@pytest.mark.parametrize("name", CONTACT_FREE)
def test_one_step_ad_matches_finite_differences(name):
  env = envs.make(name, differentiable=True)
  k0, k1, k2, k3 = jax.random.split(jax.random.PRNGKey(7), 4)
  state = jax.jit(env.reset)(k0)
  w = jax.random.normal(k1, (env.observation_size,))
  # inside (-1, 1) so the action clip is the identity over the FD stencil
  a0 = jax.random.uniform(k2, (env.action_size,), minval=-0.5, maxval=0.5)
  v = jax.random.normal(k3, (env.action_size,))
  v = v / jnp.linalg.norm(v)

  def f(a):
    s = env.step(state, a)
    return s.reward + jnp.dot(w, s.obs)

  @jax.jit
  def check(a, v):
    grad = jax.grad(f)(a)
    _, jvp = jax.jvp(f, (a,), (v,))
    fd = (f(a + EPS * v) - f(a - EPS * v)) / (2 * EPS)
    return grad, jvp, fd

  grad, jvp, fd = map(np.asarray, check(a0, v))
  assert np.isfinite(grad).all() and np.abs(grad).max() > 0
  # reverse mode == forward mode (directional derivative)
  np.testing.assert_allclose(grad @ np.asarray(v), jvp, rtol=1e-4, atol=1e-6)
  # AD == central finite differences (float32: FD error ~1e-5 absolute)
  np.testing.assert_allclose(jvp, fd, rtol=2e-3, atol=5e-5)
