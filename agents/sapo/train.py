"""SAPO: Soft Analytic Policy Optimization (Xing, Luk and Oh, "Stabilizing
Reinforcement Learning in Differentiable Multiphysics Simulation", ICLR
2025) on MJX: SHAC (:mod:`agents.shac`) with a maximum-entropy objective.

One update:

1. ``# rollout``: ``horizon`` steps of the stochastic tanh-Gaussian policy in
   ``num_envs`` envs, each action with its log-probability
   (:func:`agents.networks.sample_with_log_prob`). The actor loss is SHAC's
   (:func:`agents.shac.losses.actor_loss`) on the soft rewards
   ``r_t - alpha * log pi(a_t | s_t)`` (:func:`agents.sapo.losses.soft_rewards`,
   ``alpha`` a constant there), bootstrapped from the minimum over the
   target critics, differentiated through ``env.step``.
2. ``# actor update``: clip + Adam, skipped on a NaN/inf gradient.
3. ``# temperature update``: one Adam step of ``log(alpha)`` on
   :func:`agents.sapo.losses.temperature_loss` with the rollout's entropy
   estimate.
4. ``# critic update``: soft TD(lambda) targets from the minimum over the
   target critics, then ``critic_epochs`` x ``critic_minibatches`` MSE
   steps of every critic on the same targets (each critic with its own Adam
   state, clip and NaN/inf skip).
5. ``# target critics`` soft update, ``# normaliser`` update.

The outer loop (devices, logging, checkpoints) is :func:`agents.loop.train`,
shared with SHAC and APG.
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
from agents.sapo import losses
from agents.sapo.config import Config
from agents.shac import losses as shac_losses

NAME = "sapo"


@struct.dataclass
class TrainState:
  """Everything SAPO carries between updates (a plain array pytree, orbax-savable).

  Attributes:
    policy: policy-network params.
    value: params of the ``num_critics`` critics, stacked on a leading axis.
    target_value: target-critic params, stacked the same way.
    policy_opt_state: optax state of the actor optimiser.
    value_opt_state: optax states of the critic optimisers (leading critic axis).
    log_temperature: ``[]`` float32 ``log(alpha)``.
    temperature_opt_state: optax state of the temperature optimiser.
    normalizer: observation statistics.
    key: raw ``uint32[2]`` PRNG key.
    iteration: ``[]`` int32 updates done (env steps are
      ``iteration * config.steps_per_update``, computed in Python).
    skipped_updates: ``[]`` int32 actor, temperature or critic steps skipped
      for NaN/inf.
  """

  policy: Any
  value: Any
  target_value: Any
  policy_opt_state: Any
  value_opt_state: Any
  log_temperature: jax.Array
  temperature_opt_state: Any
  normalizer: normalizer_lib.NormalizerState
  key: jax.Array
  iteration: jax.Array
  skipped_updates: jax.Array


def _optimizers(config: Config):
  """``(actor, critic, temperature)``; the critic's is applied to each critic."""
  actor, critic = optim.actor_and_critic(config)
  temperature = optim.make_optimizer(config.temperature_learning_rate, 0.0,
                                     config.num_updates, config.end_learning_rate,
                                     config.adam_betas)
  return actor, critic, temperature


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
  value = jax.vmap(lambda k: networks.init_value(
      spec.obs_size, config.critic_hidden_sizes, k))(
          jax.random.split(vkey, config.num_critics))
  actor_opt, critic_opt, temperature_opt = _optimizers(config)
  log_temperature = jnp.log(jnp.asarray(config.init_temperature, jnp.float32))
  zero = jnp.zeros((), jnp.int32)
  return TrainState(
      policy=policy, value=value, target_value=value,
      policy_opt_state=actor_opt.init(policy),
      value_opt_state=jax.vmap(critic_opt.init)(value),
      log_temperature=log_temperature,
      temperature_opt_state=temperature_opt.init(log_temperature),
      normalizer=normalizer_lib.init(spec.obs_size), key=key,
      iteration=zero, skipped_updates=zero)


def make_update(env: Env, config: Config, episode_length: int,
                constrain: Callable[[Any], Any] | None = None):
  """Returns the pure SAPO ``update(train_state, carry) -> (train_state, carry, metrics)``."""
  spec = networks.policy_spec(env, config)
  actor_opt, critic_opt, temperature_opt = _optimizers(config)
  target_entropy = config.target_entropy_for(spec.action_size)

  def value_fn(params, norm, obs):  # one critic: obs [..., obs_size] -> [...]
    return networks.value_apply(config.critic_hidden_sizes, params, norm, obs)

  def values_fn(params, norm, obs):  # every critic: -> [K, ...]
    return jax.vmap(value_fn, in_axes=(0, None, None))(params, norm, obs)

  def update(ts: TrainState, carry: rollout_lib.EnvCarry):
    key, rollout_key, critic_key = jax.random.split(ts.key, 3)
    temperature = jnp.exp(ts.log_temperature)

    # rollout + actor loss
    def loss_fn(policy_params):
      def policy(obs, k):  # -> (action, log_prob)
        return networks.sample_with_log_prob(spec, policy_params, ts.normalizer, obs, k)
      new_carry, tr = rollout_lib.rollout(
          env, policy, carry, rollout_key, config.horizon, episode_length,
          constrain, cut_at_contact=config.contact_truncation)
      rewards = losses.soft_rewards(tr.reward, tr.policy_extras, temperature)
      next_values = losses.min_over_critics(
          values_fn(ts.target_value, ts.normalizer, tr.next_obs))
      loss = shac_losses.actor_loss(rewards, next_values, tr.terminated,
                                    tr.truncated, config.gamma, tr.cut,
                                    config.terminal_gradient)
      return loss, (new_carry, jax.lax.stop_gradient((tr, rewards, next_values)))

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (actor_loss, (carry, (tr, rewards, next_values))), grads = grad_fn(ts.policy)

    # actor update
    policy, policy_opt_state, grad_norm, actor_skipped = optim.safe_update(
        actor_opt, grads, ts.policy_opt_state, ts.policy, actor_loss)

    # temperature update
    entropy = losses.entropy_estimate(tr.policy_extras)
    temperature_loss, temperature_grad = jax.value_and_grad(losses.temperature_loss)(
        ts.log_temperature, entropy, target_entropy)
    log_temperature, temperature_opt_state, _, temperature_skipped = optim.safe_update(
        temperature_opt, temperature_grad, ts.temperature_opt_state,
        ts.log_temperature, temperature_loss)

    # critic update
    targets = shac_losses.td_lambda_targets(rewards, next_values, tr.terminated,
                                            tr.truncated, config.gamma, config.lam)
    n = config.horizon * config.num_envs
    step = critic_lib.regression_step(
        critic_opt, lambda p, obs: value_fn(p, ts.normalizer, obs), shac_losses.critic_loss)
    value, value_opt_state, critic_skipped, critic_losses, critic_norms = critic_lib.fit(
        jax.vmap(step, in_axes=(0, 0, None, None)), ts.value, ts.value_opt_state,
        tr.obs.reshape(n, -1), targets.reshape(n), critic_key, config.critic_epochs,
        config.critic_minibatches)

    # target critics
    target_value = jax.tree.map(lambda t, v: (1.0 - config.tau) * t + config.tau * v,
                                ts.target_value, value)

    # normaliser
    norm = ts.normalizer
    if config.normalize_observations:
      norm = normalizer_lib.update(norm, tr.obs)

    skipped = ts.skipped_updates + actor_skipped + temperature_skipped + critic_skipped
    new_ts = TrainState(
        policy=policy, value=value, target_value=target_value,
        policy_opt_state=policy_opt_state, value_opt_state=value_opt_state,
        log_temperature=log_temperature,
        temperature_opt_state=temperature_opt_state,
        normalizer=norm, key=key, iteration=ts.iteration + 1,
        skipped_updates=skipped)
    metrics = {
        "train/actor_loss": actor_loss,
        "train/critic_loss": critic_losses[-1].mean(),
        "train/grad_norm": grad_norm,
        "train/critic_grad_norm": critic_norms.mean(),
        "train/skipped_updates": skipped,
        "train/value": jnp.mean(next_values),
        "train/temperature": temperature,
        "train/entropy": entropy,
        **loop.rollout_metrics(tr, policy, episode_length),
    }
    if tr.cut is not None:
      metrics["train/contact_cut_rate"] = jnp.mean(tr.cut)
    return new_ts, carry, metrics

  return update


def train(env: Env, config: Config, key: jax.Array,
          progress_fn: loop.ProgressFn | None = None, **kwargs):
  """Trains a policy with SAPO: :func:`agents.loop.train` with this module.

  SAPO logs SHAC's metrics (``train/critic_loss`` and
  ``train/critic_grad_norm`` averaged over the critics, ``train/value`` the
  clipped bootstrap value) plus ``train/temperature`` (``alpha`` of the
  update's rollout) and ``train/entropy`` (the rollout's ``-mean log pi``);
  everything else (arguments, metrics, return value, errors) is as
  documented there.
  """
  import sys  # pylint: disable=import-outside-toplevel
  return loop.train(sys.modules[__name__], env, config, key, progress_fn, **kwargs)
