"""Test-session set-up shared by every test package.

JAX's persistent compilation cache is on for the test session (directory
``$MJX_DIFFRL_TEST_JAX_CACHE``, default ``~/.cache/mjx-diffrl/jax-tests``; set
it to an empty string to turn it off). On a machine that has run the suite
before, this skips most XLA compiles; a cold run compiles everything.

Compiled env rollouts are shared by every test file through the
session-scoped ``env_runs`` fixture (one compiled program per env and mode;
see :class:`EnvRuns`). Build new env tests on it rather than compiling
another rollout of the same env.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import pytest

_cache = os.environ.get("MJX_DIFFRL_TEST_JAX_CACHE",
                        str(Path("~/.cache/mjx-diffrl/jax-tests").expanduser()))
if _cache.strip():
  Path(_cache).mkdir(parents=True, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", _cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


@dataclasses.dataclass(frozen=True)
class DefaultRun:
  """A compiled default-mode rollout of one env.

  ``rollout(state0, actions)``: ``state0`` a batch of ``B`` reset states,
  ``actions [B, T, nu]`` -> ``(obs, reward, done)`` each ``[B, T, ...]``.
  ``out = (obs0, (obs, reward, done))`` is its result for ``keys``/``actions``.
  """
  env: Any
  reset: Any
  rollout: Any
  keys: jax.Array
  actions: jax.Array
  out: Any


@dataclasses.dataclass(frozen=True)
class DiffRun:
  """A compiled differentiable-mode rollout plus gradient of one env.

  ``fn(state0, actions)`` -> ``((value [B], (obs [B, T, obs], reward [B, T],
  done [B, T])), grad [B, T, nu])`` where ``value`` is the return of the first
  ``H`` steps and ``grad`` its gradient with respect to ``actions``.
  ``out`` is its result for ``state0 = reset(keys)`` and ``actions``.
  """
  env: Any
  reset: Any
  fn: Any
  keys: jax.Array
  actions: jax.Array
  state0: Any
  out: Any


class EnvRuns:
  """One compiled program per (env name, mode), built on first use.

  Both programs take the reset state as an argument (reset is compiled on
  its own), so tasks that differ only in their reset (cartpole_swingup and
  cartpole_balance) trace the same program and share its entry in the
  persistent compilation cache.
  """

  B = 2     # envs per vmapped batch
  T = 200   # rollout steps
  H = 32    # gradient horizon: the differentiated return is of steps [0, H)

  def __init__(self):
    self._default: dict[str, DefaultRun] = {}
    self._diff: dict[str, DiffRun] = {}

  def _inputs(self, env):
    keys = jax.random.split(jax.random.PRNGKey(0), self.B)
    actions = jax.random.uniform(jax.random.PRNGKey(1),
                                 (self.B, self.T, env.action_size),
                                 minval=-1.0, maxval=1.0)
    return keys, actions

  def default(self, name: str) -> DefaultRun:
    if name not in self._default:
      import envs  # pylint: disable=import-outside-toplevel
      env = envs.make(name)
      reset = jax.jit(jax.vmap(env.reset))

      @jax.jit
      def rollout(state0, actions):
        def one(state, acts):
          def body(s, a):
            s = env.step(s, a)
            return s, (s.obs, s.reward, s.done)
          return jax.lax.scan(body, state, acts)[1]
        return jax.vmap(one)(state0, actions)

      keys, actions = self._inputs(env)
      state0 = reset(keys)
      out = jax.block_until_ready((state0.obs, rollout(state0, actions)))
      self._default[name] = DefaultRun(env, reset, rollout, keys, actions, out)
    return self._default[name]

  def differentiable(self, name: str) -> DiffRun:
    if name not in self._diff:
      import envs  # pylint: disable=import-outside-toplevel
      env = envs.make(name, differentiable=True)
      reset = jax.jit(jax.vmap(env.reset))
      horizon = self.H

      def ret(actions, state):
        def body(s, a):
          s = env.step(s, a)
          return s, (s.obs, s.reward, s.done)
        _, (obs, reward, done) = jax.lax.scan(body, state, actions)
        return jnp.sum(reward[:horizon]), (obs, reward, done)

      grad_fn = jax.vmap(jax.value_and_grad(ret, has_aux=True))
      fn = jax.jit(lambda state0, actions: grad_fn(actions, state0))
      keys, actions = self._inputs(env)
      state0 = reset(keys)
      out = jax.block_until_ready(fn(state0, actions))
      self._diff[name] = DiffRun(env, reset, fn, keys, actions, state0, out)
    return self._diff[name]


@pytest.fixture(scope="session")
def env_runs() -> EnvRuns:
  """The session's :class:`EnvRuns` (compiled rollouts by env and mode)."""
  return EnvRuns()
