"""Critic regression shared by SHAC and SAPO: ``epochs`` passes over a
window's (observation, TD target) pairs in shuffled minibatches, one
clip + Adam step of the MSE per minibatch, skipped on a NaN/inf gradient."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from agents import optim

StepFn = Callable[[Any, Any, jax.Array, jax.Array], tuple[Any, Any, jax.Array, jax.Array, jax.Array]]


def regression_step(optimizer: optax.GradientTransformation,
                    predict: Callable[[Any, jax.Array], jax.Array],
                    loss: Callable[[jax.Array, jax.Array], jax.Array]) -> StepFn:
  """``step(params, opt_state, obs, targets) -> (params, opt_state, loss,
  grad_norm, skipped)``: one update of ``loss(predict(params, obs), targets)``
  with :func:`agents.optim.safe_update`. ``jax.vmap`` it over stacked
  parameters to fit several critics on the same targets (SAPO)."""
  def step(params, opt_state, obs, targets):
    value, grads = jax.value_and_grad(lambda p: loss(predict(p, obs), targets))(params)
    params, opt_state, grad_norm, skipped = optim.safe_update(
        optimizer, grads, opt_state, params, value)
    return params, opt_state, value, grad_norm, skipped

  return step


def fit(step: StepFn, params: Any, opt_state: Any, obs: jax.Array, targets: jax.Array,
        key: jax.Array, epochs: int, minibatches: int):
  """``epochs`` x ``minibatches`` calls of ``step`` over ``(obs [n, ...],
  targets [n])``, reshuffled every epoch.

  Returns:
    ``(params, opt_state, skipped, losses [epochs, minibatches],
    grad_norms [epochs, minibatches])``; ``skipped`` counts skipped steps
    (summed over stacked critics), losses and norms are averaged over them.
  """
  n = targets.shape[0]
  shape = (minibatches, n // minibatches)

  def minibatch(state, batch):
    params, opt_state, skipped = state
    params, opt_state, loss, grad_norm, sk = step(params, opt_state, *batch)
    return (params, opt_state, skipped + jnp.sum(sk)), (jnp.mean(loss), jnp.mean(grad_norm))

  def epoch(state, k):
    perm = jax.random.permutation(k, n)
    batches = (obs[perm].reshape(shape + obs.shape[1:]), targets[perm].reshape(shape))
    return jax.lax.scan(minibatch, state, batches)

  (params, opt_state, skipped), (losses, norms) = jax.lax.scan(
      epoch, (params, opt_state, jnp.zeros((), jnp.int32)), jax.random.split(key, epochs))
  return params, opt_state, skipped, losses, norms
