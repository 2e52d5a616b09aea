"""Contract tests for envs.physics (differentiable MJX stepping)."""

from __future__ import annotations

import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx
from mujoco.mjx._src import solver as mjx_solver

from envs import physics

ASSETS = Path(physics.__file__).parent / "assets" / "physics"


def load(name: str) -> mujoco.MjModel:
  return mujoco.MjModel.from_xml_path(str(ASSETS / f"{name}.xml"))


def rollout(step_fn, model, data, ctrl):
  """Scans ``step_fn`` over ctrl [T, nu]; returns (final data, qpos [T, nq])."""

  def body(d, u):
    d = step_fn(model, d.replace(ctrl=u))
    return d, d.qpos

  return jax.lax.scan(body, data, ctrl)


def initial_data(model, nv, qvel_scale=0.3, seed=0):
  qvel = qvel_scale * np.random.default_rng(seed).standard_normal(nv)
  return mjx.make_data(model).replace(qvel=jnp.asarray(qvel, dtype=jnp.float32))


# --------------------------------------------------------------------------
# host-side API
# --------------------------------------------------------------------------


def test_differentiable_model_copies_and_configures():
  mj = load("ball")
  before = (mj.opt.tolerance, mj.opt.iterations, mj.opt.ls_iterations)
  out = physics.differentiable_model(mj, iterations=6, ls_iterations=3)
  assert (mj.opt.tolerance, mj.opt.iterations, mj.opt.ls_iterations) == before
  assert out is not mj
  assert (out.opt.tolerance, out.opt.iterations, out.opt.ls_iterations) == (0.0, 6, 3)
  assert physics.is_differentiable(out) and not physics.is_differentiable(mj)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_differentiable_model_rejects_bad_iterations(bad):
  with pytest.raises(ValueError, match="positive integer"):
    physics.differentiable_model(load("ball"), iterations=bad)


def test_put_model_makes_tolerance_static():
  m = physics.put_model(physics.differentiable_model(load("ball")))
  assert isinstance(m.opt, physics.StaticToleranceOption)
  assert isinstance(m.opt, mjx.Option)
  leaves = jax.tree_util.tree_leaves(m.opt)
  assert all(leaf is not m.opt.tolerance for leaf in leaves)

  seen = []

  @jax.jit
  def f(model):
    seen.append(model.opt.tolerance)  # runs at trace time
    return model.opt.timestep

  f(m)
  assert seen == [0.0] and isinstance(seen[0], float)
  assert physics.is_differentiable(m)


def test_static_tolerance_rejects_traced():
  m = mjx.put_model(load("ball"))
  with pytest.raises(TypeError, match="outside jit"):
    jax.jit(lambda mm: physics.static_tolerance(mm).opt.timestep)(m)


def test_has_constraint_rows():
  """Rows from a contact, from a joint limit, and none without either."""
  assert physics.has_constraint_rows(physics.put_model(load("ball")))
  hinge = ("<mujoco><worldbody><body><joint type='hinge' {}/>"
           "<geom size='.1' contype='0' conaffinity='0'/></body></worldbody></mujoco>")
  limited = mujoco.MjModel.from_xml_string(hinge.format("range='-1 1' limited='true'"))
  free = mujoco.MjModel.from_xml_string(hinge.format(""))
  assert physics.has_constraint_rows(physics.put_model(limited))
  assert not physics.has_constraint_rows(physics.put_model(free))


# --------------------------------------------------------------------------
# forward equality with mjx.step
# --------------------------------------------------------------------------


def _variant(name, solver=None, warmstart=True, cone=None, frictionloss=None):
  mj = physics.differentiable_model(load(name), iterations=4, ls_iterations=6)
  if solver is not None:
    mj.opt.solver = solver
  if not warmstart:
    mj.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_WARMSTART
  if cone is not None:
    mj.opt.cone = cone
  if frictionloss is not None:
    mj.dof_frictionloss[-3:] = frictionloss
  return mj


FORWARD_CASES = {
    # contacts, joint limits and friction loss; Newton with warm start
    "hopper-newton-limits-frictionloss": lambda: _variant("hopper_like", frictionloss=0.3),
    # contacts with an elliptic cone; CG without warm start
    "ball-cg-elliptic-nowarm": lambda: _variant(
        "ball", solver=mujoco.mjtSolver.mjSOL_CG, warmstart=False,
        cone=mujoco.mjtCone.mjCONE_ELLIPTIC),
    # an equality constraint and no contacts; Newton
    "chain-equality": lambda: _variant("chain"),
}


@pytest.mark.parametrize("case", sorted(FORWARD_CASES))
def test_forward_matches_mjx_step(case):
  """100+ steps at tolerance 0: physics.step == mjx.step."""
  mj = FORWARD_CASES[case]()
  m = physics.put_model(mj)
  d0 = initial_data(m, mj.nv)
  ctrl = 0.5 * jnp.sin(jnp.arange(120)[:, None] * 0.1 + jnp.arange(max(mj.nu, 1))[None])
  ctrl = ctrl[:, : mj.nu]

  @jax.jit
  def both(d0, ctrl):
    return rollout(physics.step, m, d0, ctrl)[1], rollout(mjx.step, m, d0, ctrl)[1]

  ours, theirs = both(d0, ctrl)
  assert np.all(np.isfinite(ours))
  np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
  # the trajectory actually moved
  assert np.abs(np.asarray(ours[-1] - ours[0])).max() > 1e-2


def test_iterations_one_at_tolerance_zero():
  """iterations == 1 also takes the fixed loop: same values, finite gradients."""
  mj = physics.differentiable_model(load("ball"), iterations=1)
  m = physics.put_model(mj)
  d0 = initial_data(m, mj.nv)
  assert physics.is_differentiable(m)

  def drop(step_fn, v):
    d = d0.replace(qvel=d0.qvel.at[2].set(v))
    return rollout(step_fn, m, d, jnp.zeros((30, 0)))[0].qpos[2]

  # one program for our value and gradient (a plain forward would be a third
  # compile of ~15 CPU-s)
  ours, g = jax.jit(jax.value_and_grad(lambda v: drop(physics.step, v)))(-1.0)
  np.testing.assert_allclose(ours, jax.jit(lambda v: drop(mjx.step, v))(-1.0),
                             rtol=1e-6, atol=1e-6)
  assert np.isfinite(g) and g != 0


# --------------------------------------------------------------------------
# default mode is untouched
# --------------------------------------------------------------------------


def _primitives(jaxpr) -> set[str]:
  names = set()
  for eqn in jaxpr.eqns:
    names.add(eqn.primitive.name)
    for sub in jax.core.jaxprs_in_params(eqn.params):
      names |= _primitives(sub)
  return names


def test_default_mode_keeps_mjx_while_loop_and_results():
  mj = load("hopper_like")  # tolerance 1e-8, iterations 4
  m = physics.put_model(mj)
  d0 = initial_data(m, mj.nv)
  assert "while" in _primitives(jax.make_jaxpr(physics.step)(m, d0).jaxpr)
  ours = jax.jit(physics.step)(m, d0)
  theirs = jax.jit(mjx.step)(m, d0)
  for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(theirs)):
    np.testing.assert_array_equal(a, b)


def test_differentiable_mode_has_no_solver_while_loop():
  mj = physics.differentiable_model(load("hopper_like"))
  m = physics.put_model(mj)
  d0 = initial_data(m, mj.nv)
  assert "while" not in _primitives(jax.make_jaxpr(physics.step)(m, d0).jaxpr)
  assert "while" in _primitives(jax.make_jaxpr(mjx.step)(m, d0).jaxpr)


def test_traced_plain_model_warns_and_falls_back():
  mj = physics.differentiable_model(load("ball"))
  plain = mjx.put_model(mj)  # tolerance is an ordinary (traced) leaf
  d0 = initial_data(plain, mj.nv)
  with pytest.warns(RuntimeWarning, match="put_model"):
    jaxpr = jax.make_jaxpr(physics.step)(plain, d0)
  assert "while" in _primitives(jaxpr.jaxpr)


# --------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------


@pytest.fixture
def x64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


def _fd_setup(name, steps):
  mj = physics.differentiable_model(load(name), iterations=4, ls_iterations=8)
  m = physics.put_model(mj)
  d0 = initial_data(m, mj.nv)
  d0 = jax.tree_util.tree_map(lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, d0)
  return mj, m, d0


def _value_and_grad(loss):
  """``(f, grad)`` from one compiled ``value_and_grad``: the finite
  differences are of the very forward whose gradient is checked, and the
  test compiles one program instead of two."""
  vg = jax.jit(jax.value_and_grad(loss))
  return (lambda x: vg(x)[0]), (lambda x: vg(x)[1])


def _central_fd(f, x, eps):
  x = np.asarray(x, dtype=np.float64)
  g = np.zeros_like(x)
  for i in np.ndindex(x.shape):
    e = np.zeros_like(x)
    e[i] = eps
    g[i] = (float(f(x + e)) - float(f(x - e))) / (2 * eps)
  return g


def test_grad_matches_finite_differences_contact_free(x64):
  """Chain with an active equality constraint, 60 steps: tight agreement."""
  mj, m, d0 = _fd_setup("chain", 60)
  assert mj.neq == 1

  def loss(u):  # u: [2] constant torques
    ctrl = jnp.broadcast_to(u, (60, mj.nu))
    qpos = rollout(physics.step, m, d0, ctrl)[1]
    return jnp.sum(qpos[-1] ** 2) + jnp.mean(qpos[:, 1])

  u0 = jnp.array([0.3, -0.2], dtype=jnp.float64)
  f, grad = _value_and_grad(loss)
  g = grad(u0)
  assert g.dtype == jnp.float64
  fd = _central_fd(f, u0, 1e-6)
  np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)


def test_grad_matches_finite_differences_ball_on_plane(x64):
  """Ball dropped on a plane, 50 steps with sustained contact: looser."""
  mj, m, d0 = _fd_setup("ball", 50)

  def loss(v):  # v: [2] initial horizontal velocity, sliding on the floor
    d = d0.replace(qpos=d0.qpos.at[2].set(0.1), qvel=jnp.zeros(6).at[0:2].set(v))
    final = rollout(physics.step, m, d, jnp.zeros((50, 0), jnp.float64))[0]
    return final.qpos[0] + 2.0 * final.qpos[1] + final.qvel[0]

  v0 = jnp.array([1.0, 0.5], dtype=jnp.float64)
  f, grad = _value_and_grad(loss)
  g = grad(v0)
  fd = _central_fd(f, v0, 1e-5)
  assert np.all(np.isfinite(g))
  assert np.abs(g).max() > 1e-3
  np.testing.assert_allclose(g, fd, rtol=2e-2, atol=2e-3)


def test_grad_through_vmap_over_models_with_different_masses():
  """Domain randomisation: the model is a traced, vmapped argument."""
  mj = physics.differentiable_model(load("ball"), iterations=4, ls_iterations=4)
  m = physics.put_model(mj)
  d0 = initial_data(m, mj.nv)
  scales = jnp.array([0.5, 1.0, 2.0])
  models = jax.vmap(lambda s: m.replace(body_mass=m.body_mass * s))(scales)

  def loss(model, push):  # push: horizontal force on the sliding ball
    d = d0.replace(qpos=d0.qpos.at[2].set(0.1), qvel=jnp.zeros(6),
                   xfrc_applied=d0.xfrc_applied.at[1, 0].set(push))
    final = rollout(physics.step, model, d, jnp.zeros((50, 0)))[0]
    return final.qpos[0]

  grad_fn = jax.jit(jax.vmap(jax.grad(loss, argnums=1), in_axes=(0, None)))
  g = np.asarray(grad_fn(models, 3.0))
  assert np.all(np.isfinite(g))
  # a heavier ball moves less under the same push
  assert g[0] > g[1] > g[2] > 0


@pytest.mark.slow  # 34 s warm (tracing Brax's env twice): over the fast tier's 10 s rule
def test_patch_mjx_on_a_brax_env():
  """Brax's own inverted pendulum (mjx backend; its joint limits put the
  constraint solver in the program) differentiates inside patch_mjx only."""
  # Brax's own class (what brax.envs.get_environment("inverted_pendulum") returns).
  from brax.envs.inverted_pendulum import InvertedPendulum

  def build():
    env = InvertedPendulum(backend="mjx")
    env.sys = env.sys.tree_replace({"opt.tolerance": 0.0})
    return env

  def make_loss(env):
    state0 = env.reset(jax.random.PRNGKey(0))

    def ret(actions):  # [16, action_size]; the sum of observations (its reward is constant)
      def body(state, a):
        state = env.step(state, a)
        return state, jnp.sum(state.obs)
      return jnp.sum(jax.lax.scan(body, state0, actions)[1])

    return jax.jit(jax.grad(ret)), jnp.zeros((16, env.action_size)) + 0.1

  original_solve, original_put = mjx_solver.solve, mjx.put_model
  with physics.patch_mjx():
    env = build()
    assert env.sys.opt.iterations > 1
    grad_fn, actions = make_loss(env)
    g = grad_fn(actions)
  assert np.all(np.isfinite(g)) and np.abs(g).max() > 0
  assert mjx_solver.solve is original_solve and mjx.put_model is original_put

  grad_fn, actions = make_loss(build())
  with pytest.raises(ValueError, match="Reverse-mode differentiation does not work"):
    grad_fn(actions)


def test_patch_mjx_restores_on_error():
  original = mjx_solver.solve
  with pytest.raises(RuntimeError):
    with physics.patch_mjx():
      with physics.patch_mjx():
        assert mjx_solver.solve is not original
      assert mjx_solver.solve is not original
      raise RuntimeError("boom")
  assert mjx_solver.solve is original


# --------------------------------------------------------------------------
# fwd_position's Jacobian path (small models)
# --------------------------------------------------------------------------


def _spy_on_the_path(monkeypatch) -> list:
  """Records every trace that takes the Jacobian path."""
  calls = []
  plan = physics._position_plan

  def spy(m, d):
    calls.append(d.qpos.shape)
    return plan(m, d)

  monkeypatch.setattr(physics, "_position_plan", spy)
  return calls


def test_jacobian_path_gives_mjx_gradients(x64, monkeypatch):
  """The chain (nq = 3, an equality constraint, so the constraint rows read
  qvel) through the Jacobian path: the gradient equals MJX's reverse pass
  and central finite differences, and forward mode works through it."""
  mj, m, d0 = _fd_setup("chain", 8)

  def loss(u):
    ctrl = jnp.broadcast_to(u, (8, mj.nu))
    final, qpos = rollout(physics.step, m, d0, ctrl)
    return jnp.sum(qpos[-1] ** 2) + jnp.mean(qpos[:, 1]) + jnp.sum(final.qvel)

  u0 = jnp.array([0.3, -0.2], dtype=jnp.float64)
  calls = _spy_on_the_path(monkeypatch)
  monkeypatch.setattr(physics, "JACOBIAN_MAX_QPOS", -1)
  g_mjx = jax.jit(jax.grad(loss))(u0)
  assert not calls
  monkeypatch.setattr(physics, "JACOBIAN_MAX_QPOS", mj.nq)
  f, grad = _value_and_grad(loss)
  g = grad(u0)
  assert calls  # the path was taken
  np.testing.assert_allclose(g, g_mjx, rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(g, _central_fd(f, u0, 1e-6), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(jax.jit(jax.jacfwd(loss))(u0), g, rtol=1e-9, atol=1e-12)


MOCAP_XML = """
<mujoco>
  <option timestep="0.01"/>
  <worldbody>
    <body name="arm" pos="0 0 1">
      <joint name="hinge" type="hinge" axis="0 1 0" damping="0.1"/>
      <geom type="capsule" fromto="0 0 0 0.5 0 0" size="0.05" mass="1"/>
      <site name="tip" pos="0.5 0 0"/>
    </body>
    <body name="target" mocap="true" pos="0.4 0 0.8">
      <geom type="sphere" size="0.05" contype="0" conaffinity="0"/>
    </body>
  </worldbody>
  <actuator><motor joint="hinge" gear="1"/></actuator>
</mujoco>
"""


def test_jacobian_path_keeps_mocap_and_model_gradients(monkeypatch):
  """A mocap target and a model parameter are inputs of fwd_position too: the
  Jacobian path's gradients w.r.t. them equal MJX's reverse pass."""
  mj = physics.differentiable_model(mujoco.MjModel.from_xml_string(MOCAP_XML))
  assert mj.nq <= physics.JACOBIAN_MAX_QPOS and mj.nmocap == 1
  m = physics.put_model(mj)
  d0 = mjx.make_data(m)

  def loss(target, mass):
    model = m.replace(body_mass=m.body_mass.at[1].set(mass))
    d = d0.replace(mocap_pos=target[None], ctrl=jnp.array([0.5]))
    d, _ = jax.lax.scan(lambda d, _: (physics.step(model, d), None), d, None,
                        length=3)
    return jnp.sum((d.site_xpos[0] - d.xpos[2]) ** 2) + d.qvel[0]

  args = (jnp.array([0.4, 0.0, 0.8]), jnp.float32(1.3))
  calls = _spy_on_the_path(monkeypatch)
  grads = {}
  for limit in (-1, physics.JACOBIAN_MAX_QPOS):
    monkeypatch.setattr(physics, "JACOBIAN_MAX_QPOS", limit)
    grads[limit] = jax.jit(jax.grad(loss, argnums=(0, 1)))(*args)
  off, on = grads[-1], grads[physics.JACOBIAN_MAX_QPOS]
  assert calls  # the second program took the path
  assert np.abs(np.asarray(off[0])).max() > 1e-3 and abs(float(off[1])) > 1e-4
  for a, b in zip(on, off):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
