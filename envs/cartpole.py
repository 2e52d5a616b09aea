"""Cart-pole swing-up and balance: move a cart so its pole stays upright.

Both tasks share the model and the reward; they differ in the start state
(``swingup``: pole hanging down; ``balance``: pole near upright).

The cart runs on a rail with soft end stops at +-1.8 m (a joint limit, as in
DM Control's cart-pole). Without them every SHAC and APG policy we trained
balanced the pole while the cart ran off at constant acceleration with the pole
tilted ~0.27 rad (measured: x = 40 m after 10 s), where the centring term is
flat; no reward shape we tried (heavy-tailed centring, a cart-velocity term,
quadratic costs, a longer control period) fixed that, the end stops did.
In differentiable mode the limit goes through the tolerance-0 solver like any
other constraint; away from the end stops it is inactive.

Reward (per step, in [0, 1]) is the product of four smooth terms:

* ``upright = (1 + cos theta) / 2``;
* ``centered = (1 + gaussian(cart position, centered_width)) / 2``;
* ``small_control = (4 + rational(action, 1)) / 5``;
* ``small_velocity = (1 + gaussian(pole angular velocity, velocity_width)) / 2``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from mujoco import mjx

from envs import base


@dataclasses.dataclass(frozen=True)
class CartpoleConfig(base.EnvConfig):
  """Cart-pole settings. Contact-free; the only constraint is the rail's end stop."""

  n_frames: int = 1
  timestep: float = 0.01
  centered_width: float = 1.0
  velocity_width: float = 5.0
  start_angle: float = float(jnp.pi)   # pole angle at reset (0 = upright)
  start_angle_noise: float = 0.1
  start_position_noise: float = 0.1


class _Cartpole(base.MjxEnv):
  """Shared cart-pole logic: obs ``[x, cos, sin, x_dot, theta_dot]`` (5), action (1)."""

  xml_file = "cartpole.xml"
  config_cls = CartpoleConfig

  def _initial_qpos_qvel(self, key):
    c = self.config
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.uniform(k1, (), minval=-c.start_position_noise, maxval=c.start_position_noise)
    angle = c.start_angle + jax.random.uniform(
        k2, (), minval=-c.start_angle_noise, maxval=c.start_angle_noise)
    qvel = 0.01 * jax.random.normal(k3, (2,))
    return jnp.stack([x, angle]), qvel

  def _observe(self, data: mjx.Data) -> jax.Array:
    x, angle = data.qpos
    return jnp.stack([x, jnp.cos(angle), jnp.sin(angle), data.qvel[0], data.qvel[1]])

  def _reward_terms(self, prev, data, action):
    c = self.config
    return {
        "upright": 0.5 * (1.0 + jnp.cos(data.qpos[1])),
        "centered": 0.5 * (1.0 + base.gaussian(data.qpos[0], c.centered_width)),
        "small_control": (4.0 + base.rational(action[0], 1.0)) / 5.0,
        "small_velocity": 0.5 * (1.0 + base.gaussian(data.qvel[1], c.velocity_width)),
    }

  def _combine(self, terms):
    return (terms["upright"] * terms["centered"] * terms["small_control"]
            * terms["small_velocity"])


@base.register
class CartpoleSwingup(_Cartpole):
  """``cartpole_swingup``: the pole starts hanging down."""

  name = "cartpole_swingup"


@dataclasses.dataclass(frozen=True)
class CartpoleBalanceConfig(CartpoleConfig):
  start_angle: float = 0.0
  start_angle_noise: float = 0.05


@base.register
class CartpoleBalance(_Cartpole):
  """``cartpole_balance``: the pole starts near upright."""

  name = "cartpole_balance"
  config_cls = CartpoleBalanceConfig
