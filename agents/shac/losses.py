"""SHAC losses (Xu et al., ICLR 2022) as pure functions of time-major arrays.

Shapes: ``T`` = horizon, ``B`` = number of envs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def actor_loss(rewards: jax.Array, next_values: jax.Array, terminated: jax.Array,
               truncated: jax.Array, gamma: float,
               cut: jax.Array | None = None,
               terminal_gradient: bool = False) -> jax.Array:
  """Short-horizon actor loss ``-(sum_t gamma^t r_t + gamma^h V(s_h)) / (T*B)``.

  The window of each env is split into segments at episode ends. A segment
  that starts at step ``s`` and ends at step ``e`` (an episode end, or the last
  step ``T-1``) contributes
  ``-(sum_{t=s..e} gamma^(t-s) r_t + gamma^(e-s+1) V_e)``, where ``V_e`` is
  ``next_values[e]`` zeroed on early termination. ``next_values`` must be
  computed from the observation *before* any reset (``Transition.next_obs``),
  so time-limit truncation bootstraps from the pre-reset state. The sum of
  all contributions is divided by ``T * B``.

  With ``cut`` (contact truncation), a segment also ends at a step marked in
  ``cut`` and bootstraps from ``V_e`` there; the episode goes on, and the next
  segment starts with discount 1, like a new short-horizon window.

  Args:
    rewards: ``[T, B]`` differentiable rewards.
    next_values: ``[T, B]`` ``V(s_{t+1})`` (differentiable through ``s_{t+1}``).
    terminated: ``[T, B]`` 1.0 on early termination (value replaced by 0).
    truncated: ``[T, B]`` 1.0 on time-limit truncation (value kept).
    gamma: discount.
    cut: optional ``[T, B]`` 1.0 where the rollout cut the gradient at a
      contact event (``Transition.cut``).
    terminal_gradient: keep the critic's gradient (not its value) at early
      terminations.

  Returns:
    Scalar loss.
  """
  T, B = rewards.shape
  done = jnp.maximum(terminated, truncated)
  if cut is not None:
    done = jnp.maximum(done, cut)
  done = done > 0
  at_end = (next_values - jax.lax.stop_gradient(next_values)
            if terminal_gradient else 0.0)
  values = jnp.where(terminated > 0, at_end, next_values)
  last = jnp.arange(T) == T - 1

  def step(carry, xs):
    acc, disc, total = carry
    r, v, d, is_last = xs
    acc = acc + disc * r
    ends = d | is_last
    total = total + jnp.sum(jnp.where(ends, acc + gamma * disc * v, 0.0))
    acc = jnp.where(d, 0.0, acc)
    disc = jnp.where(d, 1.0, disc * gamma)
    return (acc, disc, total), None

  init = (jnp.zeros((B,), rewards.dtype), jnp.ones((B,), rewards.dtype),
          jnp.zeros((), rewards.dtype))
  (_, _, total), _ = jax.lax.scan(step, init, (rewards, values, done, last))
  return -total / (T * B)


def td_lambda_targets(rewards: jax.Array, next_values: jax.Array,
                      terminated: jax.Array, truncated: jax.Array,
                      gamma: float, lam: float) -> jax.Array:
  """TD(lambda) value targets for the critic.

  Recursion (backwards over the window)::

      G_t = r_t + gamma * v_t                                  if the episode ends at t
      G_t = r_t + gamma * ((1 - lam) * v_t + lam * G_{t+1})    otherwise,
      G_{T-1} = r_{T-1} + gamma * v_{T-1}                      (window end),

  with ``v_t = next_values[t]`` (value of the pre-reset next state) set to 0
  where ``terminated``. Equivalent to the lam-weighted average of n-step
  returns truncated at the episode or window end.

  Args:
    rewards: ``[T, B]``.
    next_values: ``[T, B]`` target-critic values of ``s_{t+1}``.
    terminated: ``[T, B]`` 1.0 on early termination.
    truncated: ``[T, B]`` 1.0 on time-limit truncation.
    gamma: discount.
    lam: TD(lambda) mixing coefficient.

  Returns:
    ``[T, B]`` targets (no gradient).
  """
  rewards, next_values = jax.lax.stop_gradient((rewards, next_values))
  done = jnp.maximum(terminated, truncated)
  values = next_values * (1.0 - terminated)

  def step(g_next, xs):
    r, v, d = xs
    cont = lam * (1.0 - d)
    g = r + gamma * ((1.0 - cont) * v + cont * g_next)
    return g, g

  _, targets = jax.lax.scan(step, values[-1], (rewards, values, done), reverse=True)
  return targets


def critic_loss(predicted: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean squared error ``mean((V(s_t) - G_t)^2)`` over any shape."""
  return jnp.mean(jnp.square(predicted - targets))
