"""Reacher: move a planar two-link arm's fingertip onto a random target.

The target is a mocap body, so it lives in the ``mjx.Data`` and is resampled
by ``reset`` (and by Brax's auto-reset). Reward (per step, in [0, 1]):
``rational(d, target_width)`` with ``d`` the finger-to-target distance.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from mujoco import mjx

from envs import base


@dataclasses.dataclass(frozen=True)
class ReacherConfig(base.EnvConfig):
  """Reacher settings. Contact- and constraint-free (unlimited joints)."""

  n_frames: int = 2
  timestep: float = 0.01
  target_width: float = 0.05
  target_min_radius: float = 0.05
  target_max_radius: float = 0.20


@base.register
class Reacher(base.MjxEnv):
  """``reacher``: obs ``[qpos (2), finger-to-target (2), qvel (2)]`` (6), action (2)."""

  name = "reacher"
  xml_file = "reacher.xml"
  config_cls = ReacherConfig

  def _setup(self):
    self._finger = self.mj_model.site("finger").id

  def _initial_data(self, key):
    c = self.config
    k1, k2, k3 = jax.random.split(key, 3)
    qpos = jax.random.uniform(k1, (2,), minval=-jnp.pi, maxval=jnp.pi)
    radius = jax.random.uniform(k2, (), minval=c.target_min_radius, maxval=c.target_max_radius)
    angle = jax.random.uniform(k3, (), minval=-jnp.pi, maxval=jnp.pi)
    target = jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle), 0.0])
    data = mjx.make_data(self.sys)
    return data.replace(qpos=qpos, qvel=jnp.zeros(2), mocap_pos=target[None])

  def _to_target(self, data: mjx.Data) -> jax.Array:
    return data.mocap_pos[0, :2] - data.site_xpos[self._finger, :2]

  def _observe(self, data: mjx.Data) -> jax.Array:
    return jnp.concatenate([data.qpos, self._to_target(data), data.qvel])

  def _reward_terms(self, prev, data, action):
    d = base.safe_norm(self._to_target(data))
    return {"to_target": base.rational(d, self.config.target_width)}
