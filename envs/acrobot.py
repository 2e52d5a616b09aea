"""Acrobot swing-up: a two-link pendulum actuated only at the elbow.

Reward (per step, in [0, 1]): ``rational(d, target_width)`` where ``d`` is the
distance from the lower link's tip to the upright tip position. Heavy-tailed,
so the gradient never vanishes even with the arm hanging down.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from mujoco import mjx

from envs import base


@dataclasses.dataclass(frozen=True)
class AcrobotConfig(base.EnvConfig):
  """Acrobot settings. Contact- and constraint-free."""

  n_frames: int = 1
  timestep: float = 0.01
  target_width: float = 0.4


@base.register
class AcrobotSwingup(base.MjxEnv):
  """``acrobot_swingup``: obs ``[cos, sin of both joints, velocities]`` (6), action (1)."""

  name = "acrobot_swingup"
  xml_file = "acrobot.xml"
  config_cls = AcrobotConfig

  def _setup(self):
    self._tip = self.mj_model.site("tip").id
    self._target = self.mj_model.site("target").id

  def _initial_qpos_qvel(self, key):
    qpos = jax.random.uniform(key, (2,), minval=-jnp.pi, maxval=jnp.pi)
    return qpos, jnp.zeros(2)

  def _observe(self, data: mjx.Data) -> jax.Array:
    return jnp.concatenate([jnp.cos(data.qpos), jnp.sin(data.qpos), data.qvel])

  def _reward_terms(self, prev, data, action):
    d = base.safe_norm(data.site_xpos[self._tip] - data.site_xpos[self._target])
    return {"to_target": base.rational(d, self.config.target_width)}
