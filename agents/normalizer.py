"""Running observation normaliser (mean/variance over every observation seen).

State is a ``flax.struct`` pytree so it can live inside a train state, be
sharded/replicated like any parameter and be saved with the policy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class NormalizerState:
  """Running statistics of observations.

  Attributes:
    mean: ``[obs_size]`` running mean.
    var: ``[obs_size]`` running (population) variance.
    count: ``[]`` number of observations folded in (float32, so that the
      batched Chan et al. update needs no integer overflow care).
  """

  mean: jax.Array
  var: jax.Array
  count: jax.Array


def init(obs_size: int) -> NormalizerState:
  """Identity normaliser: mean 0, variance 1, count 0."""
  return NormalizerState(
      mean=jnp.zeros((obs_size,), jnp.float32),
      var=jnp.ones((obs_size,), jnp.float32),
      count=jnp.zeros((), jnp.float32),
  )


def update(state: NormalizerState, obs: jax.Array) -> NormalizerState:
  """Folds a batch of observations into the statistics (no gradient).

  Args:
    state: current statistics.
    obs: ``[..., obs_size]`` observations; all leading axes are batch axes.

  Returns:
    The updated statistics (parallel-variance combination of the old
    statistics and the batch's).
  """
  obs = jax.lax.stop_gradient(obs).reshape(-1, state.mean.shape[-1])
  n = jnp.asarray(obs.shape[0], jnp.float32)
  batch_mean = jnp.mean(obs, axis=0)
  batch_var = jnp.var(obs, axis=0)
  total = state.count + n
  delta = batch_mean - state.mean
  mean = state.mean + delta * (n / total)
  # m2 of the old statistics is zero while count == 0, so the initial var=1
  # does not leak into the result.
  m2 = state.var * state.count + batch_var * n + delta**2 * state.count * n / total
  return NormalizerState(mean=mean, var=m2 / total, count=total)


def normalize(state: NormalizerState, obs: jax.Array, eps: float = 1e-5) -> jax.Array:
  """``(obs - mean) / sqrt(var + eps)``, differentiable in ``obs``.

  Args:
    state: statistics.
    obs: ``[..., obs_size]``.
  """
  return (obs - state.mean) / jnp.sqrt(state.var + eps)
