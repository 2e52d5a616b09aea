"""The solver's derivative against finite differences of a converged solve.

envs/physics.py attaches the implicit-function derivative of the solver's
optimum with ``jax.custom_jvp``, so forward and reverse mode agree by
construction and comparing them tests nothing. These tests compare it with
central finite differences of the forward computation instead, in float64
and with enough solver iterations that the solve has converged (the
derivative describes the converged solve, so that is where it must be exact):

* one ``physics.forward`` of the hopper-like model at a state with the foot
  pressed into the floor (active pyramidal friction contacts) and the hip past
  its joint limit (an active limit row), for the Newton and the CG solver,
  along random directions in (qpos, qvel, ctrl), against differences of the
  Newton solve (converged to round-off; CG stops just short of the optimum,
  see the test);
* a 60-step rollout of a bouncing ball: the contact is made, held while the
  ball slides with friction, and broken when it bounces off; the gradient of
  the final state with respect to the initial velocity.

A wrong tangent rule (for example the Hessian taken at another point than the
returned solution, so with the wrong active set) fails both.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from envs import physics

ASSETS = Path(physics.__file__).parent / "assets" / "physics"
ITERATIONS, LS_ITERATIONS = 100, 50  # converged to float64 round-off here
EPS = 1e-6


@pytest.fixture(scope="module", autouse=True)
def x64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


def _f64(tree):
  return jax.tree_util.tree_map(
      lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x,
      tree)


def _model(name, **opt):
  mj = mujoco.MjModel.from_xml_path(str(ASSETS / f"{name}.xml"))
  mj = physics.differentiable_model(mj, iterations=ITERATIONS, ls_iterations=LS_ITERATIONS)
  for k, v in opt.items():
    setattr(mj.opt, k, v)
  return mj


def _hopper_pressed_state(mj):
  """Foot 6 cm into the floor, hip 0.15 rad past its upper limit (0 deg)."""
  m = physics.put_model(mj)
  d = _f64(mjx.make_data(m))
  qpos = np.zeros(mj.nq)
  qpos[1] = -0.1            # rootz: the foot capsule's bottom 6 cm below z = 0
  qpos[3] = 0.15            # hip, range [-150, 0] deg
  qpos[4] = -0.3            # knee, inside its range
  qvel = 0.3 * np.random.default_rng(0).standard_normal(mj.nv)
  qvel[0] = 0.5              # sliding: friction rows active
  ctrl = np.array([0.2, -0.3, 0.1])
  return m, d.replace(qpos=jnp.asarray(qpos), qvel=jnp.asarray(qvel),
                      ctrl=jnp.asarray(ctrl))


SOLVERS = {"newton": mujoco.mjtSolver.mjSOL_NEWTON, "cg": mujoco.mjtSolver.mjSOL_CG}


@pytest.mark.parametrize("solver", ["newton", pytest.param("cg", marks=pytest.mark.slow)])
def test_solver_derivative_matches_finite_differences_at_contacts_and_limits(solver):
  """AD through ``physics.forward`` with ``solver`` vs central differences of
  the Newton solve. Newton converges to round-off here; CG stops about 1e-7
  (relative) short of the optimum, where its exit test finds no more
  decrease, and that stopping point moves non-smoothly with the inputs, so
  differences of CG's own solve are noise at a 1e-6 step. Its derivative
  must still be the optimum's, which Newton's solve gives."""
  mj = _model("hopper_like", solver=SOLVERS[solver])
  m, d0 = _hopper_pressed_state(mj)
  m_ref = physics.put_model(_model("hopper_like", solver=SOLVERS["newton"]))
  nq, nv = mj.nq, mj.nv

  def f(model, x):  # x = [qpos, qvel, ctrl] -> [qacc, qfrc_constraint]
    d = d0.replace(qpos=x[:nq], qvel=x[nq:nq + nv], ctrl=x[nq + nv:])
    d = physics.forward(model, d)
    return jnp.concatenate([d.qacc, d.qfrc_constraint])

  @jax.jit
  def check(x, v):
    y, tangent = jax.jvp(lambda x: f(m, x), (x,), (v,))
    fd = (f(m_ref, x + EPS * v) - f(m_ref, x - EPS * v)) / (2 * EPS)
    d = physics.forward(m, d0)
    return y, f(m_ref, x), tangent, fd, d._impl.efc_type, d._impl.efc_pos, d._impl.efc_force

  x0 = jnp.concatenate([d0.qpos, d0.qvel, d0.ctrl])
  rng = np.random.default_rng(1)
  for i in range(3):
    v = jnp.asarray(rng.standard_normal(x0.shape[0]))
    y, y_ref, tangent, fd, efc_type, efc_pos, efc_force = map(np.asarray, check(x0, v))
    if i == 0:  # the state has what the test is about
      limit = efc_type == mujoco.mjtConstraint.mjCNSTR_LIMIT_JOINT
      contact = efc_type == mujoco.mjtConstraint.mjCNSTR_CONTACT_PYRAMIDAL
      assert (efc_force[limit] != 0).any() and (efc_pos[limit] < 0).any()
      assert (efc_force[contact] != 0).sum() >= 4  # several pyramid edges
      assert np.abs(y[nv:]).max() > 1.0            # constraint forces matter
      # the solve under test reached the optimum (to 1e-6 of its scale)
      np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-6 * np.abs(y_ref).max())
    assert np.all(np.isfinite(tangent))
    scale = np.abs(fd).max()
    assert scale > 1.0
    np.testing.assert_allclose(tangent, fd, rtol=1e-5, atol=1e-6 * scale,
                               err_msg=f"{solver}, direction {i}")


@pytest.mark.slow
def test_rollout_gradient_through_contact_make_and_break():
  mj = _model("ball")
  mj.geom_solref[:] = (0.02, 0.1)  # underdamped contact: the ball bounces off
  m = physics.put_model(mj)
  d0 = _f64(mjx.make_data(m))
  steps = 60

  def run(v0):  # v0 = [vx, vz] initial velocity from 0.3 m above the floor
    d = d0.replace(qpos=d0.qpos.at[2].set(0.3),
                   qvel=jnp.zeros(6, jnp.float64).at[0].set(v0[0]).at[2].set(v0[1]))

    def body(d, _):
      d = physics.step(m, d)
      return d, d._impl.contact.dist[0]

    d, dist = jax.lax.scan(body, d, None, length=steps)
    return jnp.stack([d.qpos[0], d.qpos[2], d.qvel[0], d.qvel[2]]), dist

  @jax.jit
  def check(v0, w):
    loss = lambda v: jnp.dot(w, run(v)[0])
    g = jax.grad(loss)(v0)
    fd = jnp.stack([(loss(v0 + EPS * e) - loss(v0 - EPS * e)) / (2 * EPS)
                    for e in jnp.eye(2)])
    return g, fd, run(v0)[1]

  v0 = jnp.array([0.8, -1.0])
  w = jnp.array([1.0, 2.0, 0.5, 1.5])
  g, fd, dist = map(np.asarray, check(v0, w))
  touching = dist < 0
  first = int(np.argmax(touching))
  assert touching.any() and not touching[0], "the contact is never made"
  assert not touching[first:].all() and not touching[-1], "the contact never breaks"
  assert np.all(np.isfinite(g)) and np.abs(g).max() > 1e-2
  np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)
