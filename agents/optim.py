"""Optimiser set-up and the NaN/inf-safe parameter update shared by all agents."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

Params = Any


def make_optimizer(learning_rate: float, max_grad_norm: float, total_steps: int,
                   end_learning_rate: float = 0.0,
                   betas: tuple[float, float] = (0.9, 0.999)
                   ) -> optax.GradientTransformation:
  """``clip_by_global_norm -> adam`` with a linear learning-rate decay.

  Args:
    learning_rate: initial learning rate.
    max_grad_norm: global-norm clip threshold (``<= 0`` disables clipping).
    total_steps: number of optimiser steps over which the rate decays linearly
      from ``learning_rate`` to ``end_learning_rate``.
    end_learning_rate: final learning rate.
    betas: Adam's ``(b1, b2)``.
  """
  schedule = optax.linear_schedule(learning_rate, end_learning_rate,
                                   max(int(total_steps), 1))
  parts = [optax.clip_by_global_norm(max_grad_norm)] if max_grad_norm > 0 else []
  parts.append(optax.adam(schedule, b1=betas[0], b2=betas[1]))
  return optax.chain(*parts)


def all_finite(tree: Any) -> jax.Array:
  """Scalar bool: every element of every leaf is finite."""
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.asarray(True)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def safe_update(optimizer: optax.GradientTransformation, grads: Params,
                opt_state: Any, params: Params, loss: jax.Array | None = None
                ) -> tuple[Params, Any, jax.Array, jax.Array]:
  """Applies one optimiser step unless the gradient (or loss) is not finite.

  Args:
    optimizer: the optax transformation.
    grads: gradient pytree, same structure as ``params``.
    opt_state: optimiser state.
    params: current parameters.
    loss: optional scalar loss, also required to be finite.

  Returns:
    ``(params, opt_state, grad_norm, skipped)``: on a non-finite gradient the
    parameters and optimiser state are returned unchanged (so they can never
    become NaN) and ``skipped`` is 1 (int32), else 0. ``grad_norm`` is the
    global norm before clipping (may itself be inf/NaN when skipped).
  """
  finite = all_finite(grads)
  if loss is not None:
    finite = finite & jnp.isfinite(loss)
  grad_norm = optax.global_norm(grads)
  # Zero the bad gradient so the discarded branch stays cheap and quiet.
  clean = jax.tree.map(lambda g: jnp.where(finite, g, jnp.zeros_like(g)), grads)
  updates, new_opt_state = optimizer.update(clean, opt_state, params)
  new_params = optax.apply_updates(params, updates)
  keep = lambda new, old: jnp.where(finite, new, old)
  params = jax.tree.map(keep, new_params, params)
  opt_state = jax.tree.map(keep, new_opt_state, opt_state)
  return params, opt_state, grad_norm, (~finite).astype(jnp.int32)


def actor_and_critic(config: Any) -> tuple[optax.GradientTransformation,
                                           optax.GradientTransformation]:
  """The actor's and the critic's optimisers of SHAC and SAPO (a
  ``shac.Config``): clip + Adam with linear decay over the run's
  ``num_updates`` actor steps and ``num_updates * critic_epochs *
  critic_minibatches`` critic steps."""
  actor = make_optimizer(config.learning_rate, config.max_grad_norm,
                         config.num_updates, config.end_learning_rate,
                         config.adam_betas)
  critic_steps = config.num_updates * config.critic_epochs * config.critic_minibatches
  critic = make_optimizer(config.critic_learning_rate, config.max_grad_norm,
                          critic_steps, config.end_learning_rate, config.adam_betas)
  return actor, critic
