"""SHAC: Short-Horizon Actor-Critic (Xu et al., ICLR 2022) on MJX.

One update:

1. ``# rollout``: ``horizon`` steps of the stochastic policy in ``num_envs``
   envs, differentiating the actor loss (:func:`agents.shac.losses.actor_loss`,
   terminal value from the target critic) through ``env.step``.
2. ``# actor update``: clip + Adam, skipped on a NaN/inf gradient.
3. ``# critic update``: TD(lambda) targets from the target critic, then
   ``critic_epochs`` x ``critic_minibatches`` MSE steps.
4. ``# target critic`` soft update, ``# normaliser`` update.

The outer loop (devices, logging, checkpoints) is :func:`agents.loop.train`,
shared with APG.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from brax.envs.base import Env
from flax import struct

from agents import critic as critic_lib
from agents import loop, networks, normalizer as normalizer_lib, optim
from agents import rollout as rollout_lib
from agents.shac import losses
from agents.shac.config import Config

NAME = "shac"


@struct.dataclass
class TrainState:
  """Everything SHAC carries between updates (a plain array pytree, orbax-savable).

  Attributes:
    policy: policy-network params.
    value: critic params.
    target_value: target-critic params.
    policy_opt_state: optax state of the actor optimiser.
    value_opt_state: optax state of the critic optimiser.
    normalizer: observation statistics.
    key: raw ``uint32[2]`` PRNG key.
    iteration: ``[]`` int32 updates done (env steps are
      ``iteration * config.steps_per_update``, computed in Python).
    skipped_updates: ``[]`` int32 actor or critic steps skipped for NaN/inf.
  """

  policy: Any
  value: Any
  target_value: Any
  policy_opt_state: Any
  value_opt_state: Any
  normalizer: normalizer_lib.NormalizerState
  key: jax.Array
  iteration: jax.Array
  skipped_updates: jax.Array


def init(env: Env, config: Config, key: jax.Array) -> TrainState:
  """Initial :class:`TrainState` (also a restore target for orbax).

  Args:
    env: the training env (only its sizes are read).
    config: hyperparameters.
    key: ``jax.random.key`` or ``jax.random.PRNGKey``.
  """
  key = loop.raw_key(key)
  key, pkey, vkey = jax.random.split(key, 3)
  spec = networks.policy_spec(env, config)
  policy = networks.init_policy(spec, pkey)
  value = networks.init_value(spec.obs_size, config.critic_hidden_sizes, vkey)
  actor_opt, critic_opt = optim.actor_and_critic(config)
  zero = jnp.zeros((), jnp.int32)
  return TrainState(
      policy=policy, value=value, target_value=value,
      policy_opt_state=actor_opt.init(policy), value_opt_state=critic_opt.init(value),
      normalizer=normalizer_lib.init(spec.obs_size), key=key,
      iteration=zero, skipped_updates=zero)


def make_update(env: Env, config: Config, episode_length: int,
                constrain: Callable[[Any], Any] | None = None):
  """Returns the pure SHAC ``update(train_state, carry) -> (train_state, carry, metrics)``."""
  spec = networks.policy_spec(env, config)
  actor_opt, critic_opt = optim.actor_and_critic(config)
  value_fn = lambda params, norm, obs: networks.value_apply(
      config.critic_hidden_sizes, params, norm, obs)

  def update(ts: TrainState, carry: rollout_lib.EnvCarry):
    key, rollout_key, critic_key = jax.random.split(ts.key, 3)

    # rollout + actor loss
    def loss_fn(policy_params):
      def policy(obs, k):
        return networks.policy_apply(spec, policy_params, ts.normalizer, obs, k, False)
      new_carry, tr = rollout_lib.rollout(
          env, policy, carry, rollout_key, config.horizon, episode_length,
          constrain, cut_at_contact=config.contact_truncation)
      next_values = value_fn(ts.target_value, ts.normalizer, tr.next_obs)
      loss = losses.actor_loss(tr.reward, next_values, tr.terminated,
                               tr.truncated, config.gamma, tr.cut,
                               config.terminal_gradient)
      return loss, (new_carry, jax.lax.stop_gradient((tr, next_values)))

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (actor_loss, (carry, (tr, next_values))), grads = grad_fn(ts.policy)

    # actor update
    policy, policy_opt_state, grad_norm, actor_skipped = optim.safe_update(
        actor_opt, grads, ts.policy_opt_state, ts.policy, actor_loss)

    # critic update
    targets = losses.td_lambda_targets(tr.reward, next_values, tr.terminated,
                                       tr.truncated, config.gamma, config.lam)
    n = config.horizon * config.num_envs
    step = critic_lib.regression_step(
        critic_opt, lambda p, obs: value_fn(p, ts.normalizer, obs), losses.critic_loss)
    value, value_opt_state, critic_skipped, critic_losses, critic_norms = critic_lib.fit(
        step, ts.value, ts.value_opt_state, tr.obs.reshape(n, -1), targets.reshape(n),
        critic_key, config.critic_epochs, config.critic_minibatches)

    # target critic
    target_value = jax.tree.map(lambda t, v: (1.0 - config.tau) * t + config.tau * v,
                                ts.target_value, value)

    # normaliser
    norm = ts.normalizer
    if config.normalize_observations:
      norm = normalizer_lib.update(norm, tr.obs)

    skipped = ts.skipped_updates + actor_skipped + critic_skipped
    new_ts = TrainState(
        policy=policy, value=value, target_value=target_value,
        policy_opt_state=policy_opt_state, value_opt_state=value_opt_state,
        normalizer=norm, key=key, iteration=ts.iteration + 1,
        skipped_updates=skipped)
    metrics = {
        "train/actor_loss": actor_loss,
        "train/critic_loss": critic_losses[-1].mean(),
        "train/grad_norm": grad_norm,
        "train/critic_grad_norm": critic_norms.mean(),
        "train/skipped_updates": skipped,
        "train/value": jnp.mean(next_values),
        **loop.rollout_metrics(tr, policy, episode_length),
    }
    if tr.cut is not None:
      metrics["train/contact_cut_rate"] = jnp.mean(tr.cut)
    return new_ts, carry, metrics

  return update


def train(env: Env, config: Config, key: jax.Array,
          progress_fn: loop.ProgressFn | None = None, **kwargs):
  """Trains a policy with SHAC: :func:`agents.loop.train` with this module.

  SHAC adds ``train/critic_loss``, ``train/critic_grad_norm`` and
  ``train/value`` to the metrics; everything else (arguments, metrics,
  return value, errors) is as documented there.
  """
  import sys  # pylint: disable=import-outside-toplevel
  return loop.train(sys.modules[__name__], env, config, key, progress_fn, **kwargs)
