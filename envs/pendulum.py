"""Pendulum swing-up: swing a torque-limited pole up and hold it upright.

Reward (per step, in [0, 1]): ``upright * small_velocity`` where
``upright = ((1 + cos theta) / 2)^2`` and ``small_velocity`` is a wide
Gaussian of the angular velocity mixed with 1 (so it never vanishes). The
motor cannot lift the pole directly (max torque 1 Nm against ~5 Nm of
gravity torque), so the policy must pump energy.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from mujoco import mjx

from envs import base


@dataclasses.dataclass(frozen=True)
class PendulumConfig(base.EnvConfig):
  """Pendulum settings. Contact- and constraint-free, so the solver settings
  do nothing; differentiable mode equals default mode here."""

  n_frames: int = 2
  timestep: float = 0.01
  velocity_width: float = 8.0


@base.register
class PendulumSwingup(base.MjxEnv):
  """``pendulum_swingup``: obs ``[cos, sin, angular velocity]`` (3), action (1)."""

  name = "pendulum_swingup"
  xml_file = "pendulum.xml"
  config_cls = PendulumConfig

  def _initial_qpos_qvel(self, key):
    angle = jax.random.uniform(key, (1,), minval=-jnp.pi, maxval=jnp.pi)
    return angle, jnp.zeros(1)

  def _observe(self, data: mjx.Data) -> jax.Array:
    angle = data.qpos[0]
    return jnp.stack([jnp.cos(angle), jnp.sin(angle), data.qvel[0]])

  def _reward_terms(self, prev, data, action):
    upright = jnp.square(0.5 * (1.0 + jnp.cos(data.qpos[0])))
    small_velocity = 0.5 * (1.0 + base.gaussian(data.qvel[0], self.config.velocity_width))
    return {"upright": upright, "small_velocity": small_velocity}

  def _combine(self, terms):
    return terms["upright"] * terms["small_velocity"]
