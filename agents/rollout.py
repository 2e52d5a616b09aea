"""The one rollout used by APG, SHAC, SAPO and evaluation.

A batch of ``B`` copies of an (unbatched) Brax env is stepped with
``jax.vmap`` and scanned over ``T`` steps with ``jax.lax.scan``; gradients flow
through ``env.step`` and the policy. Episode bookkeeping (time limit,
auto-reset, returns) lives here, not in wrappers:

* ``terminated``: the env set ``state.done`` (early termination) and it is not
  a time-limit truncation reported in ``state.info['truncation']``.
* ``truncated``: the episode hit ``episode_length`` steps (or the env reported
  ``info['truncation']``) without terminating.
* On either, the env is replaced by its entry of ``EnvCarry.reset_state``, a
  batch of fresh reset states. Reset states are ``stop_gradient``-ed and
  selected with ``jnp.where`` (whose VJP is a select, never ``0 * inf``), so
  no gradient crosses an episode boundary.
* ``Transition.next_obs`` is the observation *before* the reset, so a critic
  can bootstrap truncated episodes from it.
* Optional contact truncation (``cut_at_contact=True``, SHAC's
  ``contact_truncation``): where the set of active contacts changes in a
  step, the carried state is ``stop_gradient``-ed, so no gradient crosses a
  contact event, and ``Transition.cut`` marks the step for the loss.

The reset batch is drawn *outside* the rollout (:func:`reset_batch`, one
jitted ``vmap(env.reset)``), so the differentiable update does not compile a
second copy of the env's reset/forward (on MJX that is a large share of
compile time), and it is reused for any env that finishes inside a window.
``agents.loop`` draws a fresh batch before every update.

:func:`evaluate` runs the same :func:`rollout` for one episode per env and
counts each env only until its first ``done``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from brax.envs.base import Env, State
from flax import struct

PolicyFn = Callable[[jax.Array, jax.Array], jax.Array | tuple[jax.Array, Any]]


@struct.dataclass
class EnvCarry:
  """Batched env state carried between rollouts (never differentiated).

  Attributes:
    state: Brax ``State`` with a leading batch axis ``[B, ...]`` on every leaf.
    steps: ``[B]`` int32 steps taken in the current episode.
    episode_return: ``[B]`` undiscounted return of the current episode so far.
    reset_state: Brax ``State`` ``[B, ...]`` that an env takes when its
      episode ends.
  """

  state: State
  steps: jax.Array
  episode_return: jax.Array
  reset_state: State


@struct.dataclass
class Transition:
  """One rollout, time-major.

  Attributes:
    obs: ``[T, B, obs_size]`` observation the action was chosen from.
    action: ``[T, B, action_size]``.
    reward: ``[T, B]``.
    next_obs: ``[T, B, obs_size]`` observation after the step, before any reset.
    terminated: ``[T, B]`` float 1.0 on early termination (no bootstrap).
    truncated: ``[T, B]`` float 1.0 on a time-limit end (bootstrap from
      ``next_obs``).
    episode_return: ``[T, B]`` return of the episode that ended at this step
      (0 where none ended).
    metrics: ``dict[str, [T, B]]`` the env's per-step metrics (reward terms).
    extras: ``record(state)`` of the state after each step, before any reset
      (``[T, B, ...]`` leaves), when :func:`rollout` was given ``record``;
      else None.
    cut: ``[T, B]`` float 1.0 where the step made or broke a contact and the
      gradient was cut there (``cut_at_contact=True``); else None.
    policy_extras: the second output of a policy that returns
      ``(action, extras)`` (``[T, B, ...]`` leaves; SAPO: the action's
      log-probability ``[T, B]``); None for a policy that returns the action
      alone.
  """

  obs: jax.Array
  action: jax.Array
  reward: jax.Array
  next_obs: jax.Array
  terminated: jax.Array
  truncated: jax.Array
  episode_return: jax.Array
  metrics: dict[str, jax.Array]
  extras: Any = None
  cut: Any = None
  policy_extras: Any = None

  @property
  def done(self) -> jax.Array:
    """``[T, B]`` 1.0 where an episode ended (terminated or truncated)."""
    return jnp.maximum(self.terminated, self.truncated)


def unwrap(env: Any) -> Any:
  """Follows ``.env`` links of wrappers down to the innermost env."""
  seen = 0
  while hasattr(env, "env") and seen < 64:
    env = env.env
    seen += 1
  return env


def is_differentiable(env: Any) -> bool:
  """True if the env (or any wrapper around it) says ``differentiable=True``."""
  e = env
  for _ in range(64):
    if getattr(e, "differentiable", False) is True:
      return True
    if not hasattr(e, "env"):
      break
    e = e.env
  return False


def check_env(env: Any, agent: str, require_differentiable: bool = True) -> None:
  """Validates an env before training, with errors that say how to fix it.

  Raises:
    TypeError: not a Brax env, or dict observations.
    ValueError: not in differentiable mode (when required).
  """
  for attr in ("reset", "step", "observation_size", "action_size"):
    if not hasattr(env, attr):
      raise TypeError(f"{agent} needs a brax.envs.base.Env (missing .{attr}); "
                      f"build one with envs.make(name, differentiable=True)")
  if require_differentiable and not is_differentiable(env):
    name = type(unwrap(env)).__name__
    raise ValueError(
        f"{agent} backpropagates through the simulator, but env {name} is not "
        f"in differentiable mode. Build it with envs.make(name, "
        f"differentiable=True).")
  if not isinstance(env.observation_size, int):
    raise TypeError(f"{agent} needs a flat observation vector; this env's "
                    f"observation_size is {env.observation_size!r}")


def reset_batch(env: Env, key: jax.Array, num_envs: int) -> State:
  """``vmap(env.reset)`` over ``num_envs`` keys split from ``key`` (no gradient)."""
  return jax.lax.stop_gradient(jax.vmap(env.reset)(jax.random.split(key, num_envs)))


def reset(env: Env, key: jax.Array, num_envs: int) -> EnvCarry:
  """Resets ``num_envs`` copies of ``env``; returns a batched :class:`EnvCarry`.

  The initial states also serve as the first batch of reset states.
  """
  state = reset_batch(env, key, num_envs)
  return EnvCarry(state=state, steps=jnp.zeros((num_envs,), jnp.int32),
                  episode_return=jnp.zeros((num_envs,), jnp.float32),
                  reset_state=state)


def active_contacts(pipeline_state: Any) -> jax.Array | None:
  """``[..., ncon]`` bool, the candidate contacts the constraint solver treats
  as active (``dist < includemargin``), or None if ``pipeline_state`` has no
  MJX contacts (not an ``mjx.Data``, or a model with no contact pairs)."""
  contact = getattr(pipeline_state, "contact", None)
  dist = getattr(contact, "dist", None)
  if dist is None or dist.shape[-1] == 0:
    return None
  return dist < contact.includemargin


def _select(mask: jax.Array, on_true: Any, on_false: Any) -> Any:
  """Per-env ``where`` over two pytrees with a leading batch axis."""
  def pick(a, b):
    m = mask.reshape(mask.shape + (1,) * (b.ndim - mask.ndim))
    return jnp.where(m, a, b)
  return jax.tree.map(pick, on_true, on_false)


def rollout(env: Env, policy: PolicyFn, carry: EnvCarry, key: jax.Array,
            horizon: int, episode_length: int,
            constrain: Callable[[Any], Any] | None = None,
            record: Callable[[State], Any] | None = None,
            cut_at_contact: bool = False,
            ) -> tuple[EnvCarry, Transition]:
  """Runs ``policy`` for ``horizon`` steps in every env of the batch.

  Args:
    env: an unbatched Brax env (this function vmaps it).
    policy: ``policy(obs [B, obs_size], key) -> action [B, action_size]``;
      close over parameters to differentiate through the rollout. A policy
      may also return ``(action, extras)``: ``extras`` (a pytree of ``[B,
      ...]`` leaves, e.g. the action's log-probability) is returned in
      ``Transition.policy_extras``, with its gradient.
    carry: batched env state from :func:`reset` or a previous rollout.
    key: PRNG key (action noise).
    horizon: ``T``, number of steps.
    episode_length: time limit after which episodes are truncated and reset.
    constrain: optional function applied to batched arrays to pin their
      sharding (``jax.lax.with_sharding_constraint``); identity if None.
    record: optional ``record(state) -> pytree`` of one (unbatched) env state;
      its value after every step (before any reset) is returned in
      ``Transition.extras``. Evaluation records positions for videos and
      forward velocity; training passes None.
    cut_at_contact: where a step changes the set of active contacts
      (:func:`active_contacts`), carry the state on without gradient and mark
      the step in ``Transition.cut``. The step's reward and ``next_obs`` keep
      their gradient, so a loss can bootstrap a value there.

  Returns:
    ``(carry, transition)``: the env state after ``T`` steps and the
    time-major :class:`Transition` ``[T, B, ...]``.

  Raises:
    ValueError: if the env's reset and step states have different structure,
      or ``cut_at_contact`` is set for an env without MJX contacts.
  """
  constrain = constrain or (lambda x: x)
  reset_state = jax.lax.stop_gradient(carry.reset_state)
  if cut_at_contact and active_contacts(carry.state.pipeline_state) is None:
    raise ValueError(
        f"cut_at_contact (SHAC's contact_truncation) needs an env whose "
        f"pipeline_state is an mjx.Data with contact pairs; "
        f"{type(unwrap(env)).__name__} has none. Turn it off "
        f"(--no-contact-truncation, or contact_truncation: false in the preset).")

  def step(c: EnvCarry, step_key: jax.Array):
    state = c.state
    action = policy(state.obs, step_key)
    action, policy_extras = action if isinstance(action, tuple) else (action, None)
    nstate = jax.vmap(env.step)(state, action)
    steps = c.steps + 1
    env_trunc = nstate.info.get("truncation") if isinstance(nstate.info, dict) else None
    done_flag = nstate.done.astype(jnp.float32)
    if env_trunc is not None:
      env_trunc = jax.lax.stop_gradient(env_trunc).astype(jnp.float32)
      terminated = done_flag * (1.0 - env_trunc)
    else:
      env_trunc = jnp.zeros_like(done_flag)
      terminated = done_flag
    terminated = jax.lax.stop_gradient(terminated)
    timeout = (steps >= episode_length).astype(jnp.float32)
    truncated = jnp.maximum(env_trunc, timeout) * (1.0 - terminated)
    done = jnp.maximum(terminated, truncated)
    ep_ret = c.episode_return + jax.lax.stop_gradient(nstate.reward)
    cut = None
    if cut_at_contact:
      changed = active_contacts(state.pipeline_state) != active_contacts(nstate.pipeline_state)
      cut = jax.lax.stop_gradient(jnp.any(changed, axis=-1).astype(jnp.float32))
    trans = Transition(
        obs=state.obs, action=action, reward=nstate.reward,
        next_obs=nstate.obs, terminated=terminated, truncated=truncated,
        episode_return=ep_ret * done, metrics=dict(nstate.metrics),
        extras=None if record is None else jax.vmap(record)(nstate), cut=cut,
        policy_extras=policy_extras)
    # auto-reset: the reset state carries no gradient
    if jax.tree.structure(reset_state) != jax.tree.structure(nstate):
      raise ValueError(
          "env.reset and env.step return States of different structure "
          f"({jax.tree.structure(reset_state)} vs {jax.tree.structure(nstate)}); "
          "the env must set the same info/metrics keys in reset and step")
    is_done = done > 0
    if cut is not None:  # no gradient crosses a contact event
      nstate = _select(cut > 0, jax.lax.stop_gradient(nstate), nstate)
    new_state = _select(is_done, reset_state, nstate)
    new_state = new_state.replace(done=jnp.zeros_like(nstate.done))
    new_carry = EnvCarry(
        state=jax.tree.map(constrain, new_state),
        steps=jnp.where(is_done, 0, steps),
        episode_return=jnp.where(is_done, 0.0, ep_ret),
        reset_state=c.reset_state)
    return new_carry, trans

  keys = jax.random.split(key, horizon)
  carry, transitions = jax.lax.scan(step, carry, keys)
  return carry, transitions


@struct.dataclass
class EvalResult:
  """Episodes of :func:`evaluate`, one per env (``N`` = ``num_envs``).

  Attributes:
    returns: ``[N]`` undiscounted return of each env's first episode.
    lengths: ``[N]`` int32 steps of that episode.
    terminated: ``[N]`` bool, the episode ended by termination (a fall)
      before ``episode_length``.
    start: ``record(state)`` of the reset states (``[N, ...]`` leaves), or
      None without ``record``.
    trajectory: ``record(state)`` after every step (``[T, N, ...]``), or None.
      Entries at ``t >= lengths[i]`` belong to env ``i``'s later episodes:
      ignore them.
  """

  returns: jax.Array
  lengths: jax.Array
  terminated: jax.Array
  start: Any = None
  trajectory: Any = None


def evaluate(env: Env, policy: PolicyFn, key: jax.Array, num_envs: int,
             episode_length: int, record: Callable[[State], Any] | None = None
             ) -> EvalResult:
  """One episode per env with :func:`rollout`, each env counted until its
  first ``done`` (an early-terminated env's later steps are ignored).

  The reset states are ``reset_batch(env, k, num_envs)`` with ``k`` the first
  half of ``jax.random.split(key)``, so the same ``key`` gives the same
  initial states wherever it is used (``train.py``'s eval.json, benchmarks).
  Jit-able (``env``, ``policy``, ``num_envs``, ``episode_length``, ``record``
  static).

  Args:
    env: an unbatched Brax env.
    policy: ``policy(obs [B, obs_size], key) -> action [B, action_size]``.
    key: PRNG key of the initial states and of the policy's noise.
    num_envs: ``N`` episodes, run in parallel.
    episode_length: ``T``, the time limit.
    record: optional ``record(state) -> pytree`` of positions etc. to return
      for every step (see :class:`EvalResult`).

  Returns:
    An :class:`EvalResult`.
  """
  reset_key, key = jax.random.split(key)
  carry = reset(env, reset_key, num_envs)
  _, tr = rollout(env, policy, carry, key, episode_length, episode_length,
                  record=record)
  done = tr.done
  # alive[t] = no episode ended strictly before t
  alive = jnp.cumprod(1.0 - jnp.concatenate([jnp.zeros_like(done[:1]), done[:-1]]), axis=0)
  first_end = alive * done  # 1.0 at each env's first done
  return EvalResult(
      returns=jnp.sum(tr.reward * alive, axis=0),
      lengths=jnp.sum(alive, axis=0).astype(jnp.int32),
      terminated=jnp.sum(first_end * tr.terminated, axis=0) > 0,
      start=None if record is None else jax.vmap(record)(carry.state),
      trajectory=tr.extras)


def evaluation_program(env: Env, apply: Callable[[Any, jax.Array, jax.Array], jax.Array],
                       num_envs: int, episode_length: int,
                       record: Callable[[State], Any] | None = None
                       ) -> Callable[[Any, jax.Array], EvalResult]:
  """A run's one evaluation program: ``program(params, key) -> EvalResult``,
  :func:`evaluate` of the policy ``apply(params, obs, key)``, jitted with the
  parameters and the key as arguments. ``train.py`` builds it once and uses
  it for the periodic evaluations during training and for the final and
  best policies' evaluation (eval.json), so a run compiles one evaluation.
  """
  def evaluation(params, key):
    return evaluate(env, lambda obs, k: apply(params, obs, k), key, num_envs,
                    episode_length, record)

  return jax.jit(evaluation)
