"""Swimmer: a four-link snake in a dense, viscous fluid swims its nose to a target.

Propulsion comes from MuJoCo's inertia-box fluid model (``opt.density`` and
``opt.viscosity``), which MJX implements. The target is a mocap body placed
at a random point at ``target_distance`` from the start. Reward (per step, in
[0, 1]): ``rational(d, target_width)`` with ``d`` the nose-to-target distance.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from mujoco import mjx

from envs import base


@dataclasses.dataclass(frozen=True)
class SwimmerConfig(base.EnvConfig):
  """Swimmer settings. Contact- and constraint-free (unlimited joints)."""

  n_frames: int = 4
  timestep: float = 0.005
  target_width: float = 0.2
  target_distance: float = 0.6


@base.register
class Swimmer(base.MjxEnv):
  """``swimmer``: obs ``[joint angles (3), nose-frame to-target (2), qvel (6)]`` (11), action (3)."""

  name = "swimmer"
  xml_file = "swimmer.xml"
  config_cls = SwimmerConfig

  def _setup(self):
    self._nose = self.mj_model.site("nose").id
    self._head = self.mj_model.body("head").id

  def _initial_data(self, key):
    c = self.config
    k1, k2, k3 = jax.random.split(key, 3)
    yaw = jax.random.uniform(k1, (), minval=-jnp.pi, maxval=jnp.pi)
    joints = jax.random.uniform(k2, (3,), minval=-0.3, maxval=0.3)
    qpos = jnp.concatenate([jnp.zeros(2), yaw[None], joints])
    angle = jax.random.uniform(k3, (), minval=-jnp.pi, maxval=jnp.pi)
    target = c.target_distance * jnp.stack([jnp.cos(angle), jnp.sin(angle), 0.0])
    data = mjx.make_data(self.sys)
    return data.replace(qpos=qpos, qvel=jnp.zeros(6), mocap_pos=target[None])

  def _to_target(self, data: mjx.Data) -> jax.Array:
    return data.mocap_pos[0] - data.site_xpos[self._nose]

  def _observe(self, data: mjx.Data) -> jax.Array:
    local = data.xmat[self._head].T @ self._to_target(data)
    return jnp.concatenate([data.qpos[3:], local[:2], data.qvel])

  def _reward_terms(self, prev, data, action):
    d = base.safe_norm(self._to_target(data)[:2])
    return {"to_target": base.rational(d, self.config.target_width)}
