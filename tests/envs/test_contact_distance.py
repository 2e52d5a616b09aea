"""Contacts from distance (backward only): ``physics.contacts_from_distance``
and the env config field ``diff_contact_distance`` (issue 15).

Contract: forward values are bitwise those of the option off; gradients of
quantities a contact would change are nonzero before touch; where no contact
is within the distance, or every nearby contact is already active, gradients
equal those of the option off. The physics is checked on a ball
(float64); the env field only has to reach the model (its forward would be
one more contact-model compile of ~25 s).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

import envs
from envs import physics

ASSETS = Path(physics.__file__).parent / "assets" / "physics"
RADIUS = 0.1  # ball.xml
DISTANCE = 0.05
STEPS = 5


# env plumbing (float32; these run before the module's x64 fixture)


def test_env_config_field_applies_in_differentiable_mode_only():
  env = envs.make("hopper", differentiable=True, diff_contact_distance=0.02)
  assert physics.contact_distance(env.sys) == 0.02
  assert physics.contact_distance(envs.make("hopper", differentiable=True).sys) == 0.0
  assert physics.contact_distance(envs.make("hopper", diff_contact_distance=0.02).sys) == 0.0
  with pytest.raises(ValueError, match="diff_contact_distance"):
    envs.make("hopper", differentiable=True, diff_contact_distance=-0.01)


# physics (float64)


@pytest.fixture(scope="module")
def x64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


def _ball(distance: float) -> mjx.Model:
  mj = mujoco.MjModel.from_xml_path(str(ASSETS / "ball.xml"))
  m = physics.put_model(physics.differentiable_model(mj, iterations=4, ls_iterations=8))
  return physics.contacts_from_distance(m, distance)


@pytest.fixture(scope="module")
def ball_fns(x64):
  """For the option off (0.0) and on (DISTANCE), float64: jitted
  ``f(p) -> (final vz + final x, min height)`` of a ball started at height
  ``p[0]`` with x-velocity ``p[1]``, and jitted ``value_and_grad`` of it
  (``((value, min height), gradient)``)."""
  out = {}
  for distance in (0.0, DISTANCE):
    m = _ball(distance)
    d0 = mjx.make_data(m)

    def f(p, m=m, d0=d0):
      z0, vx0 = p[0], p[1]
      d = d0.replace(qpos=d0.qpos.at[2].set(z0), qvel=d0.qvel.at[0].set(vx0))

      def body(d, _):
        d = physics.step(m, d)
        return d, d.qpos[2]

      d, heights = jax.lax.scan(body, d, None, length=STEPS)
      return d.qvel[2] + d.qpos[0], jnp.min(heights)

    out[distance] = (jax.jit(f), jax.jit(jax.value_and_grad(f, has_aux=True)))
  return out


def _grad(fns, distance, p):
  return np.asarray(fns[distance][1](p)[1])


def test_rejects_bad_distance():
  m = _ball(0.0)
  for bad in (-0.1, float("nan"), float("inf")):
    with pytest.raises(ValueError, match="distance"):
      physics.contacts_from_distance(m, bad)


def test_setting_is_static_metadata():
  m = _ball(DISTANCE)
  assert physics.contact_distance(m) == DISTANCE
  assert physics.contact_distance(_ball(0.0)) == 0.0
  assert all(leaf is not m.opt.diff_contact_distance
             for leaf in jax.tree_util.tree_leaves(m))
  seen = []
  jax.jit(lambda model: seen.append(physics.contact_distance(model)) or model.opt.timestep)(m)
  assert seen == [DISTANCE]


def test_gradient_nonzero_before_touch(ball_fns):
  """Ball 3 cm above the floor, falling 5 steps without touching it.

  Off: the final vertical velocity and x do not depend on the start height
  (free fall), so the gradient is exactly 0. On: the ghost contact pushes
  up harder the lower the ball starts, so d vz / d z0 < 0; sliding friction
  of the ghost contact makes x depend on the start height too.
  """
  p = jnp.array([RADIUS + 0.03, 0.5])
  assert float(ball_fns[0.0][0](p)[1]) > RADIUS  # never touches
  g_off, g_on = _grad(ball_fns, 0.0, p), _grad(ball_fns, DISTANCE, p)
  assert g_off[0] == 0.0
  assert np.all(np.isfinite(g_on))
  assert g_on[0] < -1e-3


def test_far_from_contact_gradient_unchanged(ball_fns):
  """Ball 30 cm above the floor: no contact within the distance."""
  p = jnp.array([RADIUS + 0.3, 0.5])
  np.testing.assert_array_equal(_grad(ball_fns, 0.0, p), _grad(ball_fns, DISTANCE, p))


def test_resting_contact_gradient_unchanged(ball_fns):
  """Ball sliding on the floor: its contact is active, no ghost rows."""
  p = jnp.array([RADIUS - 1e-3, 0.5])
  g_off, g_on = _grad(ball_fns, 0.0, p), _grad(ball_fns, DISTANCE, p)
  assert np.abs(g_off).max() > 1e-3
  np.testing.assert_allclose(g_on, g_off, rtol=1e-10, atol=1e-12)


def test_forward_values_bitwise_unchanged(ball_fns):
  """Values with and without the option, forward and as the primal of
  ``value_and_grad``, across the approach and the touch."""
  for z in (RADIUS + 0.03, RADIUS + 0.002, RADIUS - 1e-3):
    p = jnp.array([z, 0.5])
    for program in (0, 1):
      off, on = ball_fns[0.0][program](p), ball_fns[DISTANCE][program](p)
      off, on = (off, on) if program == 0 else (off[0], on[0])
      for x, y in zip(off, on):
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()
