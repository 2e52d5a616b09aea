"""Gradient fidelity at a task's default differentiable settings (issue 10).

The derivative attached to the constraint solve is that of the *converged*
solve (implicit function theorem). If a task's fixed iteration budget stops
short of convergence at resting contact, AD stops describing the simulation
the env runs. This test rolls the task out from a resting state in float64
and compares forward-mode AD with central finite differences of the same
forward along a few random directions. ``python -m benchmarks.gradients
--fidelity`` runs the full check (every task, 32 steps, more states).

Half-cheetah is the case: at its earlier setting (4 solver / 2 line-search
iterations) this check gave a cosine of -0.5 at resting contact.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import envs
from envs import physics

TASK = "half_cheetah"
HORIZON = 8
N_DIRECTIONS = 4
EPS = 1e-6
SETTLE_STEPS = 300


@pytest.fixture(scope="module")
def x64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


def resting_qpos_qvel(env: envs.MjxEnv) -> tuple[np.ndarray, np.ndarray, int]:
  """``qpos0`` settled at zero control in C MuJoCo with a converged solver."""
  m = physics.differentiable_model(env.mj_model, 100, 50)
  m.opt.tolerance = 1e-12
  d = mujoco.MjData(m)
  for _ in range(SETTLE_STEPS):
    mujoco.mj_step(m, d)
  mujoco.mj_forward(m, d)
  return d.qpos.copy(), d.qvel.copy(), int(d.ncon)


def fidelity(name: str, **overrides) -> tuple[float, float, int]:
  """(cosine, relative error, contacts) of AD vs FD directional derivatives of
  ``w . [qpos, qvel]`` after ``HORIZON`` env steps from resting contact.

  Must run with x64 enabled. ``overrides`` are config fields, e.g.
  ``diff_iterations=4, diff_ls_iterations=2``.
  """
  env = envs.make(name, differentiable=True, **overrides)
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  state = jax.jit(env.reset)(keys[0])
  qpos, qvel, ncon = resting_qpos_qvel(env)
  data = state.pipeline_state.replace(qpos=jnp.asarray(qpos), qvel=jnp.asarray(qvel))
  state = state.replace(pipeline_state=jax.jit(physics.forward)(env.sys, data))
  w = jax.random.normal(keys[1], (env.mj_model.nq + env.mj_model.nv,))
  actions = jax.random.uniform(keys[2], (HORIZON, env.action_size),
                               minval=-0.2, maxval=0.2)
  v = jax.random.normal(keys[3], (N_DIRECTIONS, HORIZON, env.action_size))
  v = v / jnp.linalg.norm(v.reshape(N_DIRECTIONS, -1), axis=1)[:, None, None]

  def f(a):
    final = jax.lax.scan(lambda s, u: (env.step(s, u), None), state, a)[0]
    return jnp.dot(w, jnp.concatenate([final.pipeline_state.qpos,
                                       final.pipeline_state.qvel]))

  # One compiled forward-mode program: its primal outputs at a +- eps v are the
  # finite-difference samples, its tangents at a the AD directional derivatives.
  points = jnp.concatenate([actions + EPS * v, actions - EPS * v,
                            jnp.broadcast_to(actions, v.shape)])
  tangents = jnp.concatenate([v, v, v])
  values, derivs = jax.jit(jax.vmap(lambda a, t: jax.jvp(f, (a,), (t,))))(
      points, tangents)
  assert values.dtype == jnp.float64
  k = N_DIRECTIONS
  fd = np.asarray(values[:k] - values[k:2 * k]) / (2 * EPS)
  ad = np.asarray(derivs[2 * k:])
  assert np.isfinite(ad).all()
  cosine = float(ad @ fd / (np.linalg.norm(ad) * np.linalg.norm(fd)))
  rel_err = float(np.linalg.norm(ad - fd) / np.linalg.norm(fd))
  return cosine, rel_err, ncon


def test_default_settings_give_exact_gradients_at_resting_contact(x64):
  cosine, rel_err, ncon = fidelity(TASK)
  assert ncon >= 4, f"expected a resting contact, got {ncon} contacts"
  assert cosine >= 0.999 and rel_err <= 1e-3, (
      f"{TASK}: AD vs FD cosine {cosine:.6f}, relative error {rel_err:.2e} at "
      f"its default differentiable settings; raise diff_iterations / "
      f"diff_ls_iterations (python -m benchmarks.gradients --fidelity finds them).")
