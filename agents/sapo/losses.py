"""SAPO losses (Xing, Luk and Oh, ICLR 2025) as pure functions of time-major
arrays.

SAPO's actor loss, TD(lambda) targets and critic regression are SHAC's
(:mod:`agents.shac.losses`) applied to *soft* rewards; this module holds
only what the maximum-entropy objective adds.

Shapes: ``T`` = horizon, ``B`` = number of envs, ``K`` = number of critics.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def soft_rewards(rewards: jax.Array, log_probs: jax.Array,
                 temperature: jax.Array | float) -> jax.Array:
  """Entropy-augmented rewards ``r_t - alpha * log pi(a_t | s_t)``.

  ``-log pi(a_t | s_t)`` is a one-sample estimate of the policy's entropy at
  ``s_t``, so the soft return is ``sum_t gamma^t (r_t + alpha H_t)``.

  Args:
    rewards: ``[T, B]``.
    log_probs: ``[T, B]`` log-probabilities of the actions taken (keep their
      gradient: the actor maximises the entropy bonus too).
    temperature: ``alpha``, a scalar; treated as a constant (no gradient
      flows into it from here).

  Returns:
    ``[T, B]`` soft rewards.
  """
  return rewards - jax.lax.stop_gradient(temperature) * log_probs


def min_over_critics(values: jax.Array) -> jax.Array:
  """Clipped ensemble value: the minimum over the critic axis, ``[K, ...] -> [...]``."""
  return jnp.min(values, axis=0)


def entropy_estimate(log_probs: jax.Array) -> jax.Array:
  """Scalar ``-mean(log pi)`` over any shape: the policy's mean entropy
  estimated from its own samples."""
  return -jnp.mean(log_probs)


def temperature_loss(log_temperature: jax.Array, entropy: jax.Array,
                     target_entropy: float) -> jax.Array:
  """Loss of the learned temperature, ``log(alpha) * (H - H_target)``.

  Its gradient in ``log(alpha)`` is ``H - H_target`` (``entropy`` is
  treated as a constant): a descent step lowers ``alpha`` while the policy's
  entropy is above the target and raises it while below (Soft
  Actor-Critic's automatic temperature, Haarnoja et al., 2018, written for
  ``log(alpha)``).

  Args:
    log_temperature: ``[]`` ``log(alpha)``.
    entropy: ``[]`` entropy estimate (:func:`entropy_estimate`).
    target_entropy: ``H_target``.

  Returns:
    Scalar loss.
  """
  return log_temperature * (jax.lax.stop_gradient(entropy) - target_entropy)
