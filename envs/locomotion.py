"""Shared logic of the locomotion tasks (SHAC benchmark form).

Reward terms (all smooth; weights in each task's config):

* ``forward``: ``forward_weight * torso x-velocity`` (m/s);
* ``ctrl``: ``-ctrl_cost_weight * sum(action^2)``;
* ``height``: ``height_weight * (torso z - termination_height)`` (tasks that
  can fall);
* ``upright``: ``upright_weight * (torso z-axis . world z)``;
* ``fall`` (off by default): ``-fall_penalty_weight * (d_h^2 + d_u^2)``, where
  ``d_h`` is how far the torso is into the ``fall_height_margin`` band above
  ``termination_height``, as a fraction of the band (0 above it, 1 at the
  termination height), and ``d_u`` the same for the uprightness and
  ``fall_upright_margin`` above ``min_upright``. It is smooth (C1) and
  non-zero only near a termination, so it gives the short-horizon gradient a
  slope towards staying up before the fall ends the episode.
* ``healthy`` (off by default): ``healthy_reward`` on every step that does
  not terminate (Gym's and Brax's ``healthy_reward``). Constant, so it has
  no gradient; it changes what the critic learns: a state from which the
  policy falls early is worth less by the bonus it will not collect.

The reward is their sum. Tasks that can fall terminate when the torso drops
below ``termination_height`` or tilts past ``min_upright``; termination is a
``done`` flag, never a reward term.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from mujoco import mjx

from envs import base


@dataclasses.dataclass(frozen=True)
class LocomotionConfig(base.EnvConfig):
  """Locomotion settings on top of :class:`envs.base.EnvConfig`.

  Attributes:
    forward_weight: weight of the forward-velocity term.
    ctrl_cost_weight: weight of the squared-action cost.
    height_weight: weight of the torso-height term (0 disables it).
    upright_weight: weight of the torso-uprightness term (0 disables it).
    termination_height: the episode ends when the torso z is below this;
      ``None`` never terminates on height.
    min_upright: the episode ends when the torso's z-axis has a world-z
      component below this (``-1`` disables it).
    fall_penalty_weight: weight of the ``fall`` term (0 disables it): the
      penalty per step at a termination boundary, per condition.
    fall_height_margin: width (m) of the band above ``termination_height``
      in which the ``fall`` term is non-zero.
    fall_upright_margin: width of the band above ``min_upright`` in which
      the ``fall`` term is non-zero.
    healthy_reward: reward per step that does not terminate (0 disables the
      term; only tasks that can fall may set it).
  """

  forward_weight: float = 1.0
  ctrl_cost_weight: float = 0.1
  height_weight: float = 0.0
  upright_weight: float = 0.0
  termination_height: float | None = None
  min_upright: float = -1.0
  fall_penalty_weight: float = 0.0
  fall_height_margin: float = 0.15
  fall_upright_margin: float = 0.2
  healthy_reward: float = 0.0

  def __post_init__(self):
    super().__post_init__()
    if self.healthy_reward and (self.termination_height is None
                                and self.min_upright <= -1.0):
      raise ValueError(
          f"healthy_reward={self.healthy_reward} on a task that never "
          "terminates is a constant added to every step: leave it at 0, or "
          "set termination_height or min_upright")
    if self.fall_penalty_weight < 0:
      raise ValueError(
          f"fall_penalty_weight={self.fall_penalty_weight} is negative; it is "
          "the size of a penalty: pass a value >= 0 (0 disables the term)")
    for name in ("fall_height_margin", "fall_upright_margin"):
      if getattr(self, name) <= 0:
        raise ValueError(f"{name}={getattr(self, name)} must be > 0: it is "
                         "the width of the band where the fall term acts")


class LocomotionEnv(base.MjxEnv):
  """A locomotion task whose first body is the torso.

  ``planar`` tasks have root joints ``(x, z, pitch)``; others a free joint.
  Observation: the root-relative ``qpos`` (without the x, or x and y,
  position) and the full ``qvel``.
  """

  planar: bool = True

  def _setup(self):
    self._torso = 1  # body 0 is the world

  def _initial_qpos_qvel(self, key):
    k1, k2 = jax.random.split(key)
    s = self.config.reset_noise_scale
    nq, nv = self.mj_model.nq, self.mj_model.nv
    noise = jax.random.uniform(k1, (nq,), minval=-s, maxval=s)
    if not self.planar:  # keep the free joint's position and unit quaternion
      noise = noise.at[:7].set(0.0)
    qvel = jax.random.uniform(k2, (nv,), minval=-s, maxval=s)
    return self._init_qpos + noise, qvel

  def _observe(self, data: mjx.Data) -> jax.Array:
    skip = 1 if self.planar else 2
    return jnp.concatenate([data.qpos[skip:], data.qvel])

  def _torso_height(self, data: mjx.Data) -> jax.Array:
    return data.xpos[self._torso, 2]

  def _upright(self, data: mjx.Data) -> jax.Array:
    return data.xmat[self._torso, 2, 2]

  def _reward_terms(self, prev, data, action):
    c = self.config
    terms = {
        "forward": c.forward_weight * data.qvel[0],
        "ctrl": -c.ctrl_cost_weight * jnp.sum(jnp.square(action)),
    }
    if c.height_weight:
      floor = 0.0 if c.termination_height is None else c.termination_height
      terms["height"] = c.height_weight * (self._torso_height(data) - floor)
    if c.upright_weight:
      terms["upright"] = c.upright_weight * self._upright(data)
    if c.fall_penalty_weight:
      terms["fall"] = -c.fall_penalty_weight * self._fall_closeness(data)
    if c.healthy_reward:
      terms["healthy"] = jnp.where(self._terminated(data), 0.0,
                                   c.healthy_reward)
    return terms

  def _fall_closeness(self, data: mjx.Data) -> jax.Array:
    """Sum of the squared depths into the bands above the termination
    thresholds, each as a fraction of its band (0 when clear of both)."""
    c = self.config

    def depth_squared(value, threshold, margin):
      return jnp.square(jnp.maximum((threshold + margin - value) / margin, 0.0))

    total = jnp.zeros(())
    if c.termination_height is not None:
      total += depth_squared(self._torso_height(data), c.termination_height,
                             c.fall_height_margin)
    if c.min_upright > -1.0:
      total += depth_squared(self._upright(data), c.min_upright,
                             c.fall_upright_margin)
    return total

  def _terminated(self, data: mjx.Data) -> jax.Array:
    c = self.config
    done = self._upright(data) < c.min_upright
    if c.termination_height is not None:
      done = done | (self._torso_height(data) < c.termination_height)
    return done
