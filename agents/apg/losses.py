"""APG loss: negative (optionally discounted) mean reward over a window."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def apg_loss(rewards: jax.Array, gamma: float = 1.0) -> jax.Array:
  """``-mean_{t,b} gamma^t r_{t,b}`` for ``rewards [T, B]`` (t from the window start)."""
  T = rewards.shape[0]
  discounts = gamma ** jnp.arange(T, dtype=rewards.dtype)
  return -jnp.mean(discounts[:, None] * rewards)
