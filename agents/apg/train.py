"""APG: analytic policy gradient by truncated backprop through MJX rollouts.

One update: ``# rollout`` of ``horizon`` steps in ``num_envs`` envs,
differentiating :func:`agents.apg.losses.apg_loss` through ``env.step``;
``# policy update`` with clip + Adam (skipped on NaN/inf); ``# normaliser``
update. The env state carries into the next window without gradient.
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
from agents.networks import PolicyParams, PolicySpec


@struct.dataclass
class TrainState:
  """Everything APG carries between updates (a plain array pytree, orbax-savable).

  Attributes:
    policy: policy-network params.
    policy_opt_state: optax state.
    normalizer: observation statistics.
    key: raw ``uint32[2]`` PRNG key.
    iteration: ``[]`` int32 updates done.
    env_steps: ``[]`` int32 env steps done.
    skipped_updates: ``[]`` int32 updates skipped for NaN/inf gradients.
  """

  policy: Any
  policy_opt_state: Any
  normalizer: normalizer_lib.NormalizerState
  key: jax.Array
  iteration: jax.Array
  env_steps: jax.Array
  skipped_updates: jax.Array


def policy_spec(env: Env, config: Config) -> PolicySpec:
  """Static policy shapes for ``env`` under ``config``."""
  return PolicySpec(int(env.observation_size), int(env.action_size),
                    tuple(config.hidden_sizes), float(config.init_log_std))


def _optimizer(config: Config):
  return optim.make_optimizer(config.learning_rate, config.max_grad_norm,
                              config.num_updates, config.end_learning_rate,
                              config.adam_betas)


def init(env: Env, config: Config, key: jax.Array) -> TrainState:
  """Initial :class:`TrainState` (also a restore target for orbax)."""
  key = loop.raw_key(key)
  key, pkey = jax.random.split(key)
  spec = policy_spec(env, config)
  policy = networks.init_policy(spec, pkey)
  zero = jnp.zeros((), jnp.int32)
  return TrainState(policy=policy, policy_opt_state=_optimizer(config).init(policy),
                    normalizer=normalizer_lib.init(spec.obs_size), key=key,
                    iteration=zero, env_steps=zero, skipped_updates=zero)


def make_update(env: Env, config: Config, episode_length: int,
                constrain: Callable[[Any], Any] | None = None):
  """Returns the pure APG ``update(train_state, carry) -> (train_state, carry, metrics)``."""
  spec = policy_spec(env, config)
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
                        env_steps=ts.env_steps + config.steps_per_update,
                        skipped_updates=ts.skipped_updates + skipped)
    metrics = {
        "train/actor_loss": loss,
        "train/grad_norm": grad_norm,
        "train/skipped_updates": new_ts.skipped_updates,
        **loop.rollout_metrics(tr, policy, episode_length),
    }
    return new_ts, carry, metrics

  return update


def make_policy(policy_params: PolicyParams, deterministic: bool = True
                ) -> Callable[[jax.Array, jax.Array | None], jax.Array]:
  """See :func:`agents.networks.make_policy`."""
  return networks.make_policy(policy_params, deterministic)


def policy_params(env: Env, config: Config, ts: TrainState) -> PolicyParams:
  """The self-describing :class:`PolicyParams` of a train state."""
  return PolicyParams(network=ts.policy, normalizer=ts.normalizer,
                      spec=policy_spec(env, config))


def train(env: Env, config: Config, key: jax.Array,
          progress_fn: Callable[[int, dict[str, float]], None] | None = None, *,
          checkpoint_fn: Callable[[TrainState], None] | None = None,
          checkpoint_every: int = 0,
          initial_state: TrainState | None = None,
          ) -> tuple[PolicyParams, dict[str, float]]:
  """Trains a policy with APG.

  Args:
    env: unbatched Brax env built with ``envs.make(name, differentiable=True)``.
    config: :class:`Config`.
    key: ``jax.random.key(seed)`` or ``jax.random.PRNGKey(seed)``.
    progress_fn: ``progress_fn(env_steps, metrics)`` after the first (compiling)
      update and then every ``config.log_every`` updates. Metrics:
      ``train/episode_return`` (mean return of episodes finished in the
      logging window; repeats the last value when none finished, NaN before
      the first), ``train/episode_return_estimate`` (mean reward per step x
      episode_length), ``train/actor_loss``, ``train/grad_norm``,
      ``train/skipped_updates`` (cumulative), ``train/sps``,
      ``train/update_s``, ``train/policy_std``, ``train/env_steps``,
      ``train/iteration``, ``reward/<term>``, and on the first call only
      ``train/compile_s``. (``train/critic_loss`` does not exist for APG.)
    checkpoint_fn: ``checkpoint_fn(train_state)`` every ``checkpoint_every``
      updates and once at the end.
    checkpoint_every: see ``checkpoint_fn``; 0 = only at the end.
    initial_state: a :class:`TrainState` to resume from (envs are reset fresh).

  Returns:
    ``(policy_params, metrics)``: a :class:`agents.networks.PolicyParams` and
    the last logged metrics.

  Raises:
    ValueError: env not differentiable (build it with
      ``envs.make(name, differentiable=True)``), or ``num_envs`` not a
      multiple of the device count.
    TypeError: not a Brax env, or a ``config`` of the wrong type.
  """
  if not isinstance(config, Config):
    raise TypeError(f"config must be agents.apg.Config, got {type(config).__name__}")
  rollout_lib.check_env(env, "APG")
  mesh = loop.make_mesh(config.num_envs)
  episode_length = loop.resolve_episode_length(env, config.episode_length)
  ts = initial_state if initial_state is not None else init(env, config, key)
  update = make_update(env, config, episode_length, loop.batch_constraint(mesh))
  reset_key = jax.random.fold_in(loop.raw_key(key), 1)
  ts, metrics = loop.run(update, ts, env, reset_key, config.num_envs, mesh=mesh,
                         num_updates=config.num_updates,
                         steps_per_update=config.steps_per_update,
                         log_every=config.log_every, progress_fn=progress_fn,
                         checkpoint_fn=checkpoint_fn, checkpoint_every=checkpoint_every,
                         cache_key=("apg", env, config, episode_length))
  return policy_params(env, config, ts), metrics
