"""The training driver shared by APG, SHAC and SAPO: :func:`train` (device mesh,
compile, logging windows, progress and checkpoint callbacks) and
:func:`train_in_run` (the same with orbax checkpoints, periodic evaluation
and the saved policy, driven by an ``agents.RunContext``, as ``train.py``
runs it).

An agent is a module with ``NAME``, ``Config``, ``init(env, config, key)``
and ``make_update(env, config, episode_length, constrain)``, which returns a
pure ``update(train_state, env_carry) -> (train_state, env_carry, metrics)``;
this module only drives it.

Scale-out: the env batch axis is sharded over ``jax.devices()`` with a 1-D
``jax.sharding.Mesh`` (axis ``"batch"``); the train state is replicated. jit
then partitions the rollout per device and inserts the cross-device mean of
the loss (hence of the gradients) itself. The same code runs multi-process
(``jax.distributed``, see trainlib/startup.py): every process computes
the same initial train state and reset keys, ``jax.device_put`` turns these
identical host values into global arrays, and each process only holds its
own devices' part of the env batch.
"""

from __future__ import annotations

import collections
import threading
import math
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from agents import networks
from agents import rollout as rollout_lib
from agents.contract import ProgressFn, RunContext

BATCH_AXIS = "batch"


def raw_key(key: jax.Array) -> jax.Array:
  """Returns a raw ``uint32[2]`` key (accepts ``jax.random.key`` keys too).

  Raw keys keep the train state a plain array pytree that orbax can save.
  """
  key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
  if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(key)
  if key.shape != (2,) or key.dtype != jnp.uint32:
    raise TypeError(f"key must be jax.random.key(seed) or jax.random.PRNGKey(seed);"
                    f" got dtype {key.dtype} shape {key.shape}")
  return key


def make_mesh(num_envs: int) -> Mesh:
  """1-D mesh over all ``jax.devices()`` on axis ``"batch"``.

  In a multi-process run (``jax.distributed``) ``jax.devices()`` lists every
  process's devices, so every process builds the same global mesh.

  Raises:
    ValueError: if ``num_envs`` is not a multiple of the device count.
  """
  devices = jax.devices()
  if num_envs % len(devices):
    where = (f" over {jax.process_count()} processes" if jax.process_count() > 1
             else "")
    raise ValueError(f"num_envs={num_envs} must be a multiple of the number of "
                     f"devices ({len(devices)}{where}) to shard the env batch; "
                     f"set num_envs to a multiple of {len(devices)}")
  return Mesh(np.asarray(devices), (BATCH_AXIS,))


def shardings(mesh: Mesh) -> tuple[NamedSharding, NamedSharding]:
  """``(replicated, batch)`` shardings: ``P()`` and ``P('batch')``."""
  return (NamedSharding(mesh, PartitionSpec()),
          NamedSharding(mesh, PartitionSpec(BATCH_AXIS)))


def batch_constraint(mesh: Mesh) -> Callable[[Any], Any]:
  """Function pinning a batched array's leading axis to the mesh."""
  sharding = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
  return lambda x: jax.lax.with_sharding_constraint(x, sharding)


def resolve_episode_length(env: Any, configured: int | None) -> int:
  """Config value if set, else the env's ``episode_length`` (or
  ``env.config.episode_length``), else 1000."""
  if configured is not None:
    return int(configured)
  for e in (env, rollout_lib.unwrap(env)):
    for holder in (e, getattr(e, "config", None)):
      value = getattr(holder, "episode_length", None)
      if isinstance(value, (int, np.integer)) and value > 0:
        return int(value)
  return 1000


# Keys of update metrics that are summed (not averaged) over a logging window.
SUM_KEYS = ("_episode_return_sum", "_episodes_finished")
# Keys reported as their last value in the window.
LAST_KEYS = ("train/skipped_updates",)


def rollout_metrics(tr: Any, policy: Any, episode_length: int) -> dict[str, jax.Array]:
  """Metrics every agent logs about its rollout ``tr`` ([T, B] leaves) and policy.

  ``_episode_return_sum`` / ``_episodes_finished`` are consumed by :func:`run`'s
  window aggregation; env metrics are namespaced ``reward/<term>``.
  """
  metrics = {
      "train/reward_per_step": jnp.mean(tr.reward),
      "train/episode_return_estimate": jnp.mean(tr.reward) * episode_length,
      "train/policy_std": jnp.mean(jnp.exp(policy["params"]["log_std"])),
      "_episode_return_sum": jnp.sum(tr.episode_return),
      "_episodes_finished": jnp.sum(tr.done),
  }
  for name, value in tr.metrics.items():
    key = name if name.startswith(("reward/", "train/")) else f"reward/{name}"
    metrics[key] = jnp.mean(value)
  return metrics


def _aggregate(window: list[dict[str, Any]], last_return: float) -> dict[str, float]:
  host = jax.device_get(window)
  out: dict[str, float] = {}
  for k in host[0]:
    values = np.asarray([m[k] for m in host], np.float64)
    if k in SUM_KEYS:
      out[k] = float(values.sum())
    elif k in LAST_KEYS:
      out[k] = float(values[-1])
    else:
      out[k] = float(values.mean())
  for k in [k for k in out if k.endswith("grad_norm")]:
    out[k + "_max"] = float(np.max([m[k] for m in host]))
  n = out.pop("_episodes_finished", 0.0)
  total = out.pop("_episode_return_sum", 0.0)
  out["train/episode_return"] = total / n if n > 0 else last_return
  out["train/episodes_finished"] = n
  return out


# Compiled executables of recent runs, so that repeated train() calls with the
# same env object and config (tests, sweeps over seeds) compile once.
_COMPILED: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 8


def _cached(key: Any, build: Callable[[], Any]) -> Any:
  try:
    hash(key)
  except TypeError:  # e.g. an env that defines __eq__ without __hash__
    key = None
  if key is None:
    return build()
  if key in _COMPILED:
    _COMPILED.move_to_end(key)
    return _COMPILED[key]
  value = build()
  _COMPILED[key] = value
  while len(_COMPILED) > _CACHE_SIZE:
    _COMPILED.popitem(last=False)
  return value


def _beside(main: Callable[[], Any], preflight: Callable[[], None] | None) -> Any:
  """``main()`` on a daemon thread while ``preflight()`` runs on this one.

  The gradient health check compiles its own program; run beside the
  update's compile, the two share the cores instead of running one after
  the other (XLA:CPU already uses more than one core per compile, so the
  gain is smaller than the check's time: docs/envs.md, "Gradient health
  check").
  Tracing stays safe: differentiable mode installs its solver under a lock
  (``envs.physics``). If ``preflight`` raises, the exception propagates at
  once and the compile is abandoned (a daemon thread does not hold the
  process at exit).
  """
  if preflight is None:
    return main()
  result: dict[str, Any] = {}

  def work():
    try:
      result["value"] = main()
    except BaseException as e:  # pylint: disable=broad-except
      result["error"] = e

  thread = threading.Thread(target=work, name="compile-update", daemon=True)
  thread.start()
  preflight()
  thread.join()
  if "error" in result:
    raise result["error"]
  return result["value"]


def run(update: Callable, train_state: Any, env: Any, key: jax.Array, num_envs: int, *,
        mesh: Mesh, num_updates: int, steps_per_update: int, log_every: int,
        progress_fn: ProgressFn | None,
        checkpoint_fn: Callable[[Any, rollout_lib.EnvCarry], None] | None,
        checkpoint_every: int, cache_key: Any = None,
        initial_carry: rollout_lib.EnvCarry | None = None,
        evaluate_fn: Callable[[Any], dict[str, float]] | None = None,
        evaluate_every: int = 0,
        should_stop: Callable[[Any], bool] | None = None,
        preflight: Callable[[], None] | None = None
        ) -> tuple[Any, dict[str, float]]:
  """Drives ``update`` from ``train_state.iteration`` to ``num_updates``.

  Args:
    update: pure ``update(train_state, carry) -> (train_state, carry, metrics)``
      (not yet jitted). ``metrics`` is a dict of scalars; ``_episode_return_sum``
      and ``_episodes_finished`` are summed over a logging window into
      ``train/episode_return`` (the last value is repeated while no episode
      finishes; NaN before the first).
    train_state: must have an ``iteration`` field.
    env: the unbatched env (reset here with one jitted ``vmap(env.reset)``,
      which also refreshes ``EnvCarry.reset_state`` before every update).
    key: base key of the env resets (reset keys are
      ``fold_in(key, iteration)``, so runs are reproducible and resumable).
    num_envs: env batch size.
    mesh: device mesh; ``train_state`` is replicated, the env batch sharded.
    num_updates: total updates of the run.
    steps_per_update: env steps per update (``num_envs * horizon``).
    log_every: updates per ``progress_fn`` call (the first update is always
      logged and carries ``train/compile_s``).
    progress_fn: ``progress_fn(env_steps, metrics)``.
    checkpoint_fn: ``checkpoint_fn(train_state, env_carry)`` every
      ``checkpoint_every`` updates (if > 0) and at the end: the train state
      and the envs' state after the same update, which together make a
      resumed run continue exactly as an uninterrupted one.
    checkpoint_every: see above.
    cache_key: hashable identity of ``update`` (e.g. agent name, env object,
      config); runs with equal keys reuse the compiled update. None: no reuse.
    initial_carry: the envs' state saved with ``train_state`` (resume); None
      resets the envs.
    evaluate_fn: ``evaluate_fn(train_state) -> metrics`` merged into the
      logged metrics every ``evaluate_every`` updates (rounded up to a
      logging window) and after the last update.
    evaluate_every: see ``evaluate_fn``; 0 = never.
    should_stop: ``should_stop(train_state)`` after every update; True ends
      the run there (logged, evaluated and checkpointed as a last update is).
    preflight: run on this thread while the update compiles on another
      (:func:`_beside`), e.g. the gradient health check; an exception it
      raises stops the run before the first update.

  Returns:
    ``(train_state, metrics)`` with the last logged metrics;
    ``train/compile_s`` is the update's compile (and the envs' reset), not
    the preflight.
  """
  replicated, batch = shardings(mesh)
  if jax.process_count() > 1:
    # every process holds the same value; device_put builds the global array
    # from host copies (arrays committed to one device, e.g. restored from a
    # checkpoint, would count as a cross-host transfer)
    train_state = jax.tree.map(np.asarray, train_state)
  train_state = jax.device_put(train_state, replicated)
  start = int(jax.device_get(train_state.iteration))
  key = raw_key(key)
  t0 = time.perf_counter()
  reset_fn = _cached(
      None if cache_key is None else ("reset", env, num_envs, mesh),
      lambda: jax.jit(lambda k: rollout_lib.reset_batch(env, k, num_envs),
                      out_shardings=batch))
  state = reset_fn(jax.random.fold_in(key, start))
  if initial_carry is not None:  # as after update `start` of the saved run
    carry = jax.device_put(initial_carry, batch).replace(reset_state=state)
  else:
    carry = rollout_lib.EnvCarry(
        state=state, steps=jax.device_put(jnp.zeros((num_envs,), jnp.int32), batch),
        episode_return=jax.device_put(jnp.zeros((num_envs,), jnp.float32), batch),
        reset_state=state)
  avals = jax.tree.map(lambda x: (x.shape, str(x.dtype)), (train_state, carry))
  avals = (jax.tree.structure(avals), tuple(jax.tree.leaves(avals)))
  def build():  # -> (compiled update, seconds since t0)
    compiled = _cached(
        None if cache_key is None else ("update", cache_key, mesh, avals),
        lambda: jax.jit(update, in_shardings=(replicated, batch),
                        out_shardings=(replicated, batch, replicated)
                        ).lower(train_state, carry).compile())
    return compiled, time.perf_counter() - t0

  compiled, compile_s = _beside(build, preflight)
  window: list[dict[str, Any]] = []
  last_return = math.nan
  metrics: dict[str, float] = {}
  first = True
  t_window = time.perf_counter()
  last_ckpt = -1
  last_eval = start
  skipped_before = float(jax.device_get(getattr(train_state, "skipped_updates", 0)))
  end = num_updates
  for it in range(start, num_updates):
    if it > start:
      carry = carry.replace(reset_state=reset_fn(jax.random.fold_in(key, it)))
    train_state, carry, m = compiled(train_state, carry)
    window.append(m)
    if should_stop is not None and should_stop(train_state):
      end = it + 1
    if first or (it + 1) % max(log_every, 1) == 0 or it + 1 == end:
      metrics = _aggregate(window, last_return)
      elapsed = time.perf_counter() - t_window
      metrics["train/sps"] = len(window) * steps_per_update / max(elapsed, 1e-9)
      metrics["train/update_s"] = elapsed / len(window)
      if first:
        metrics["train/compile_s"] = compile_s
      last_return = metrics["train/episode_return"]
      env_steps = (it + 1) * steps_per_update  # a Python int: never wraps
      metrics["train/env_steps"] = float(env_steps)
      metrics["train/iteration"] = float(it + 1)
      if "train/skipped_updates" in metrics:  # NaN/inf steps in this window
        metrics["train/skipped_in_window"] = (metrics["train/skipped_updates"]
                                              - skipped_before)
        skipped_before = metrics["train/skipped_updates"]
      if evaluate_fn is not None and evaluate_every > 0 and (
          it + 1 - last_eval >= evaluate_every or it + 1 == end):
        metrics.update(evaluate_fn(train_state))
        last_eval = it + 1
      if progress_fn is not None:
        progress_fn(env_steps, dict(metrics))
      window = []
      first = False
      t_window = time.perf_counter()
    if checkpoint_fn is not None and checkpoint_every > 0 and (it + 1) % checkpoint_every == 0:
      checkpoint_fn(train_state, carry)
      last_ckpt = it + 1
    if it + 1 == end:
      break
  if checkpoint_fn is not None and last_ckpt != end:
    checkpoint_fn(train_state, carry)
  if not metrics:  # resumed at the end: nothing ran
    metrics = {"train/compile_s": compile_s}
  return train_state, metrics


def abstract_carry(env: Any, num_envs: int, mesh: Mesh) -> rollout_lib.EnvCarry:
  """The shapes, dtypes and batch sharding of the envs' state in a run (what
  a checkpoint's env part is restored into); compiles nothing."""
  _, batch = shardings(mesh)
  shapes = jax.eval_shape(lambda k: rollout_lib.reset(env, k, num_envs),
                          jax.random.PRNGKey(0))
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                     sharding=batch), shapes)


def policy_params(env: Any, config: Any, train_state: Any) -> networks.PolicyParams:
  """The self-describing :class:`agents.networks.PolicyParams` of a train state."""
  return networks.PolicyParams(network=train_state.policy,
                               normalizer=train_state.normalizer,
                               spec=networks.policy_spec(env, config))


def train(agent: ModuleType, env: Any, config: Any, key: jax.Array,
          progress_fn: ProgressFn | None = None, *,
          checkpoint_fn: Callable[[Any, rollout_lib.EnvCarry], None] | None = None,
          checkpoint_every: int = 0, initial_state: Any | None = None,
          initial_carry: rollout_lib.EnvCarry | None = None,
          evaluate_fn: Callable[[networks.PolicyParams], dict[str, float]] | None = None,
          evaluate_every: int = 0,
          should_stop: Callable[[Any], bool] | None = None,
          preflight: Callable[[], None] | None = None,
          ) -> tuple[networks.PolicyParams, dict[str, float]]:
  """Trains a policy with ``agent`` (``agents.shac``, ``agents.apg`` or ``agents.sapo``).

  Args:
    agent: the agent module (``NAME``, ``Config``, ``init``, ``make_update``).
    env: unbatched Brax env built with ``envs.make(name, differentiable=True)``.
    config: an instance of ``agent.Config``.
    key: ``jax.random.key(seed)`` or ``jax.random.PRNGKey(seed)``.
    progress_fn: ``progress_fn(env_steps, metrics)`` after the first (compiling)
      update and then every ``config.log_every`` updates. Metrics:
      ``train/episode_return`` (mean return of episodes finished in the
      logging window; repeats the last value when none finished, NaN before
      the first), ``train/episode_return_estimate`` (mean reward per step x
      episode_length), ``train/actor_loss``, ``train/grad_norm``,
      ``train/grad_norm_max`` (largest in the window, before clipping),
      ``train/skipped_updates`` (cumulative NaN/inf skips) and
      ``train/skipped_in_window``, ``train/sps``,
      ``train/update_s``, ``train/policy_std``, ``train/env_steps``,
      ``train/iteration``, ``reward/<term>``, the agent's own (SHAC:
      ``train/critic_loss``, ``train/critic_grad_norm(_max)``,
      ``train/value``), ``evaluate_fn``'s metrics when it ran, and on the
      first call only ``train/compile_s``.
    checkpoint_fn: ``checkpoint_fn(train_state, env_carry)`` every
      ``checkpoint_every`` updates and once at the end.
    checkpoint_every: see ``checkpoint_fn``; 0 = only at the end.
    initial_state: a train state to resume from.
    initial_carry: the envs' state saved with ``initial_state``; None resets
      the envs (the run then differs from an uninterrupted one).
    evaluate_fn: ``evaluate_fn(policy_params) -> metrics`` (e.g. a
      deterministic evaluation, see :func:`make_evaluator`), run every
      ``evaluate_every`` updates and at the end, logged with the metrics.
    evaluate_every: see ``evaluate_fn``; 0 = never.
    should_stop: ``should_stop(train_state)`` after every update; True ends
      training there (a time budget, for example).
    preflight: run while the first update compiles (see :func:`run`); an
      exception it raises stops training before the first update.

  Returns:
    ``(policy_params, metrics)``: a :class:`agents.networks.PolicyParams` for
    :func:`agents.networks.make_policy` / ``agents.checkpoint.save_policy``,
    and the last logged metrics.

  Raises:
    ValueError: env not differentiable (build it with
      ``envs.make(name, differentiable=True)``), or ``num_envs`` not a
      multiple of the device count.
    TypeError: not a Brax env, or a ``config`` of the wrong type.
  """
  if not isinstance(config, agent.Config):
    raise TypeError(f"config must be agents.{agent.NAME}.Config, got "
                    f"{type(config).__module__}.{type(config).__name__}")
  rollout_lib.check_env(env, agent.NAME.upper())
  mesh = make_mesh(config.num_envs)
  episode_length = resolve_episode_length(env, config.episode_length)
  ts = initial_state if initial_state is not None else agent.init(env, config, key)
  update = agent.make_update(env, config, episode_length, batch_constraint(mesh))
  reset_key = jax.random.fold_in(raw_key(key), 1)
  ts, metrics = run(update, ts, env, reset_key, config.num_envs, mesh=mesh,
                    num_updates=config.num_updates,
                    steps_per_update=config.steps_per_update,
                    log_every=config.log_every, progress_fn=progress_fn,
                    checkpoint_fn=checkpoint_fn, checkpoint_every=checkpoint_every,
                    cache_key=(agent.NAME, env, config, episode_length),
                    initial_carry=initial_carry,
                    evaluate_fn=(None if evaluate_fn is None else
                                 lambda t: evaluate_fn(policy_params(env, config, t))),
                    evaluate_every=evaluate_every, should_stop=should_stop,
                    preflight=preflight)
  return policy_params(env, config, ts), metrics


def make_evaluator(program: Callable[[networks.PolicyParams, jax.Array], Any],
                   key: jax.Array
                   ) -> Callable[[networks.PolicyParams], dict[str, float]]:
  """A deterministic evaluation for :func:`train`'s ``evaluate_fn``: the
  run's evaluation program (``agents.rollout.evaluation_program``) from the
  same initial states every time (``key``).

  Returns ``evaluate_fn(policy_params) -> {"eval/episode_return",
  "eval/episode_return_std", "eval/episode_length"}``.
  """
  def evaluate_fn(params: networks.PolicyParams) -> dict[str, float]:
    out = jax.device_get(program(params, key))
    returns = np.asarray(out.returns, np.float64)
    return {"eval/episode_return": float(np.mean(returns)),
            "eval/episode_return_std": float(np.std(returns)),
            "eval/episode_length": float(np.mean(out.lengths))}

  return evaluate_fn


def train_in_run(agent: ModuleType, env: Any, config: Any,
                 context: RunContext) -> None:
  """:func:`train` as a run does it (``agents.Algorithm.train`` of SHAC/APG):
  orbax checkpoints in ``context.checkpoint_dir``, the final policy written
  to ``context.policy_path``.

  ``context.resume``: continue from the latest complete checkpoint (orbax
  writes each into a temporary directory and renames it when complete). In
  a multi-process run every process calls this; all save and restore the
  checkpoints together, process 0 alone writes the policy.

  Every ``context.eval_every`` updates (0 = never) the policy is evaluated
  deterministically with ``context.evaluate`` (the run's evaluation
  program, on the default-mode env), always from the same initial states, and the best so far is written to ``context.best_policy_path``
  with a JSON file beside it (``<name>.json``: its evaluation return), which
  a resumed run reads back. (In a multi-process run every process evaluates
  the same replicated parameters on its own device; process 0 writes.)
  """
  import json  # pylint: disable=import-outside-toplevel
  import os  # pylint: disable=import-outside-toplevel
  from agents import checkpoint  # pylint: disable=import-outside-toplevel
  key = jax.random.PRNGKey(context.seed)
  log = context.log
  # orbax creates the directory up front; a run that stops before its first
  # checkpoint (a failed gradient check) removes it again if it made it
  fresh_dir = not Path(context.checkpoint_dir).exists()
  ckpts = checkpoint.StateCheckpoints(context.checkpoint_dir)
  initial_state = initial_carry = None
  if context.resume and ckpts.latest_step() is not None:
    initial_state, initial_carry, step, damaged = ckpts.restore(
        agent.init(env, config, key),
        abstract_carry(env, config.num_envs, make_mesh(config.num_envs)))
    for text in damaged:
      log(f"skipped {text}: it cannot be read")
    log(f"resumed from checkpoint at update {step} "
        f"({step * config.steps_per_update} env steps)")
    if initial_carry is None:
      log("that checkpoint holds no env state (an older format): the envs "
          "start afresh, so this run will not repeat an uninterrupted one")
  elif context.resume:
    log("no checkpoint yet: starting from scratch")

  evaluate_fn = None
  if context.evaluate is not None and context.eval_every > 0:
    evaluate = make_evaluator(context.evaluate, jax.random.fold_in(key, 2))
    best_path = context.best_policy_path
    best_meta = Path(str(best_path) + ".json")
    best = {"return": -math.inf}
    if context.resume and best_meta.exists():
      try:
        best.update(json.loads(best_meta.read_text()))
      except ValueError:
        pass  # damaged: the next evaluation writes a new one

    def evaluate_fn(params):
      # a host copy: in a multi-process run the parameters are global
      # (replicated) arrays; each process evaluates on its own device
      params = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), params)
      m = evaluate(params)
      ret = m["eval/episode_return"]
      if math.isfinite(ret) and ret > best["return"]:
        best["return"] = ret
        if jax.process_index() == 0:
          checkpoint.save_policy(best_path, params)
          tmp = best_meta.with_name(best_meta.name + ".tmp")
          tmp.write_text(json.dumps({"return": ret}) + "\n")
          os.replace(tmp, best_meta)
      m["eval/best_episode_return"] = best["return"]
      return m

  try:
    params, _ = train(agent, env, config, key, context.progress_fn,
                      checkpoint_fn=ckpts.save,
                      checkpoint_every=context.checkpoint_every,
                      initial_state=initial_state, initial_carry=initial_carry,
                      evaluate_fn=evaluate_fn,
                      evaluate_every=context.eval_every,
                      should_stop=(None if context.should_stop is None else
                                   lambda _: context.should_stop()),
                      preflight=context.preflight)
  finally:
    ckpts.close()
    if fresh_dir:
      try:
        Path(context.checkpoint_dir).rmdir()  # only if still empty
      except OSError:
        pass
  if jax.process_index() == 0:
    checkpoint.save_policy(context.policy_path, params)
