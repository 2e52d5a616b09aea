"""APG: analytic policy gradient by truncated backprop through MJX rollouts.

One update: ``# rollout`` of ``horizon`` steps in ``num_envs`` envs,
differentiating :func:`agents.apg.losses.apg_loss` through ``env.step``;
``# policy update`` with clip + Adam (skipped on NaN/inf); ``# normaliser``
update. The env state carries into the next window without gradient. The
outer loop (devices, logging, checkpoints) is :func:`agents.loop.train`,
shared with SHAC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from brax.envs.base import Env
from flax import struct

from agents import loop, networks, normalizer as normalizer_lib, optim
from agents import rollout as rollout_lib
from agents.apg import losses
from agents.apg.config import Config

NAME = "apg"


@struct.dataclass
class TrainState:
  """Everything APG carries between updates (a plain array pytree, orbax-savable).

  Attributes:
    policy: policy-network params.
    policy_opt_state: optax state.
    normalizer: observation statistics.
    key: raw ``uint32[2]`` PRNG key.
    iteration: ``[]`` int32 updates done (env steps are
      ``iteration * config.steps_per_update``, computed in Python).
    skipped_updates: ``[]`` int32 updates skipped for NaN/inf gradients.
  """

  policy: Any
  policy_opt_state: Any
  normalizer: normalizer_lib.NormalizerState
  key: jax.Array
  iteration: jax.Array
  skipped_updates: jax.Array


def _optimizer(config: Config):
  return optim.make_optimizer(config.learning_rate, config.max_grad_norm,
                              config.num_updates, config.end_learning_rate,
                              config.adam_betas)


def init(env: Env, config: Config, key: jax.Array) -> TrainState:
  """Initial :class:`TrainState` (also a restore target for orbax)."""
  key = loop.raw_key(key)
  key, pkey = jax.random.split(key)
  spec = networks.policy_spec(env, config)
  policy = networks.init_policy(spec, pkey)
  zero = jnp.zeros((), jnp.int32)
  return TrainState(policy=policy, policy_opt_state=_optimizer(config).init(policy),
                    normalizer=normalizer_lib.init(spec.obs_size), key=key,
                    iteration=zero, skipped_updates=zero)


def make_update(env: Env, config: Config, episode_length: int,
                constrain: Callable[[Any], Any] | None = None):
  """Returns the pure APG ``update(train_state, carry) -> (train_state, carry, metrics)``."""
  spec = networks.policy_spec(env, config)
  opt = _optimizer(config)

  def update(ts: TrainState, carry: rollout_lib.EnvCarry):
    key, rollout_key = jax.random.split(ts.key)

    # rollout
    def loss_fn(params):
      def policy(obs, k):
        return networks.policy_apply(spec, params, ts.normalizer, obs, k,
                                     config.deterministic_rollout)
      new_carry, tr = rollout_lib.rollout(env, policy, carry, rollout_key,
                                          config.horizon, episode_length, constrain)
      loss = losses.apg_loss(tr.reward, config.gamma)
      return loss, (new_carry, jax.lax.stop_gradient(tr))

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (carry, tr)), grads = grad_fn(ts.policy)

    # policy update
    policy, opt_state, grad_norm, skipped = optim.safe_update(
        opt, grads, ts.policy_opt_state, ts.policy, loss)

    # normaliser
    norm = ts.normalizer
    if config.normalize_observations:
      norm = normalizer_lib.update(norm, tr.obs)

    new_ts = TrainState(policy=policy, policy_opt_state=opt_state, normalizer=norm,
                        key=key, iteration=ts.iteration + 1,
                        skipped_updates=ts.skipped_updates + skipped)
    metrics = {
        "train/actor_loss": loss,
        "train/grad_norm": grad_norm,
        "train/skipped_updates": new_ts.skipped_updates,
        **loop.rollout_metrics(tr, policy, episode_length),
    }
    return new_ts, carry, metrics

  return update


def train(env: Env, config: Config, key: jax.Array,
          progress_fn: loop.ProgressFn | None = None, **kwargs):
  """Trains a policy with APG: :func:`agents.loop.train` with this module.

  ``train/critic_loss`` does not exist for APG; everything else (arguments,
  metrics, return value, errors) is as documented there.
  """
  import sys  # pylint: disable=import-outside-toplevel
  return loop.train(sys.modules[__name__], env, config, key, progress_fn, **kwargs)
