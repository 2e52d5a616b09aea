"""Gradient of the contact-free tasks' returns against finite differences.

The gradient is the one the smoke test compiles (``env_runs.differentiable``:
a vmapped ``value_and_grad`` of the 32-step return of a 200-step rollout), and
the finite differences are evaluated by that same compiled function: both
rows of the batch start from the same reset state, one with the actions
``a + eps v`` and one with ``a - eps v``. So this test compiles nothing of
its own.

``v`` is a random unit direction over the actions of the steps inside the
return (0 .. H-1), zero where ``|a| > 0.9`` so that the action clip at +-1 is
the identity over the stencil. Measured (float32, eps 1e-2, when acrobot,
reacher and swimmer were still compiled here): AD and FD agree to 0.03-0.7 %
of the directional derivative (0.002-0.23), 1.4e-5 absolute at worst
(acrobot). The cart-pole's rail end stop
is inactive along these rollouts (checked below). Contact tasks are checked
in float64 elsewhere (tests/envs/test_gradient_fidelity.py,
tests/envs/test_solver_implicit.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

# the tasks without contacts whose differentiable program the smoke test
# compiles (the cart-pole's rail end stop is a joint limit); acrobot, reacher
# and swimmer have no constraint rows at all, so their differentiable program
# is not compiled (tests/envs/test_envs_smoke.py)
CONTACT_FREE = ["pendulum_swingup", "cartpole_swingup", "cartpole_balance"]
EPS = 1e-2


@pytest.mark.parametrize("name", [
    n if n in ("pendulum_swingup", "cartpole_swingup")
    else pytest.param(n, marks=pytest.mark.slow) for n in CONTACT_FREE])
def test_return_gradient_matches_finite_differences(name, env_runs):
  run = env_runs.differentiable(name)
  H = env_runs.H
  (_, (obs, _, _)), grad = run.out
  if name.startswith("cartpole"):  # the rail end stops at +-1.8 m stay inactive
    assert np.abs(np.asarray(obs)[:, :H, 0]).max() < 1.5
  a = np.asarray(run.actions)[0]                        # [T, nu]
  g = np.asarray(grad)[0]
  rng = np.random.default_rng(0)
  v = np.zeros_like(a)
  v[:H] = rng.standard_normal((H, a.shape[1]))
  v[np.abs(a) > 0.9] = 0.0
  v /= np.linalg.norm(v)
  ad = float(np.sum(g * v))
  # central differences from the same compiled program: row 0 = a + eps v,
  # row 1 = a - eps v, both from env 0's reset state
  state = jax.tree_util.tree_map(lambda x: jnp.stack([x[0], x[0]]), run.state0)
  actions = jnp.asarray(np.stack([a + EPS * v, a - EPS * v]), jnp.float32)
  (value, _), _ = run.fn(state, actions)
  value = np.asarray(value, np.float64)
  fd = (value[0] - value[1]) / (2 * EPS)
  assert abs(ad) > 1e-3, f"{name}: directional derivative {ad} too small to test"
  # float32 return of 32 steps: FD noise ~1e-5 absolute, O(eps^2) bias
  np.testing.assert_allclose(ad, fd, rtol=2e-2, atol=3e-5)
