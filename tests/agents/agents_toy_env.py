"""A tiny pure-JAX differentiable Brax env for fast agent tests.

Torque-limited pendulum swing-up (semi-implicit Euler), obs
``[cos, sin, omega]``, reward ``((1 + cos theta) / 2)^2`` in [0, 1].
Options make it terminate early or produce NaN gradients on demand.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from brax.envs.base import Env, State
from flax import struct


class ToyPendulum(Env):
  """Pure-JAX pendulum; ``differentiable`` is just an attribute here."""

  def __init__(self, differentiable: bool = True, episode_length: int = 200,
               terminate_below: float | None = None, nan_grad: bool = False,
               dt: float = 0.05, max_torque: float = 2.0):
    self.differentiable = differentiable
    self.episode_length = episode_length
    self.terminate_below = terminate_below
    self.nan_grad = nan_grad
    self.dt = dt
    self.max_torque = max_torque

  @property
  def observation_size(self) -> int:
    return 3

  @property
  def action_size(self) -> int:
    return 1

  @property
  def backend(self) -> str:
    return "jax"

  def _obs(self, q):
    return jnp.stack([jnp.cos(q[0]), jnp.sin(q[0]), q[1]])

  def reset(self, rng: jax.Array) -> State:
    th = jax.random.uniform(rng, (), minval=-jnp.pi, maxval=jnp.pi)
    q = jnp.stack([th, 0.0])
    zero = jnp.zeros(())
    return State(pipeline_state=q, obs=self._obs(q), reward=zero, done=zero,
                 metrics={"reward/upright": zero}, info={})

  def step(self, state: State, action: jax.Array) -> State:
    q = state.pipeline_state
    u = self.max_torque * jnp.clip(action[0], -1.0, 1.0)
    omega = q[1] + self.dt * (-9.81 * jnp.sin(q[0]) + u - 0.1 * q[1])
    th = q[0] + self.dt * omega
    q = jnp.stack([th, omega])
    upright = jnp.square(0.5 * (1.0 + jnp.cos(th)))
    reward = upright
    if self.nan_grad:
      # finite value, infinite gradient: d/du sqrt(u - u) at 0
      reward = reward + jnp.sqrt(jnp.abs(u) - jnp.abs(u))
    done = jnp.zeros(())
    if self.terminate_below is not None:
      done = (upright < self.terminate_below).astype(jnp.float32)
    return state.replace(pipeline_state=q, obs=self._obs(q), reward=reward, done=done,
                         metrics={"reward/upright": upright})


@struct.dataclass
class ToyContact:
  """The two fields of ``mjx.Contact`` that contact truncation reads."""
  dist: jax.Array
  includemargin: jax.Array


@struct.dataclass
class ToyBallState:
  q: jax.Array  # [height, velocity]
  contact: ToyContact


class ToyBall(ToyPendulum):
  """A ball dropped on a stiff, damped floor (one contact: ``dist`` = height).

  ``pipeline_state`` carries a ``contact`` with ``dist``/``includemargin``
  like an ``mjx.Data``, so contact truncation can be tested without MJX.
  Sizes and flags come from :class:`ToyPendulum`; obs is ``[height, velocity]``.
  """

  @property
  def observation_size(self) -> int:
    return 2

  def _state(self, q):
    return ToyBallState(q=q, contact=ToyContact(dist=q[:1], includemargin=jnp.zeros(1)))

  def reset(self, rng: jax.Array) -> State:
    q = jnp.stack([jax.random.uniform(rng, (), minval=0.2, maxval=0.4), 0.0])
    zero = jnp.zeros(())
    return State(pipeline_state=self._state(q), obs=q, reward=zero, done=zero,
                 metrics={}, info={})

  def step(self, state: State, action: jax.Array) -> State:
    h, v = state.pipeline_state.q
    push = jnp.maximum(-h, 0.0)
    acc = -9.81 + 2.0 * action[0] + 4000.0 * push - 40.0 * v * (h < 0)
    v = v + 0.02 * acc
    q = jnp.stack([h + 0.02 * v, v])
    return state.replace(pipeline_state=self._state(q), obs=q, reward=-jnp.square(q[0] - 0.3))
