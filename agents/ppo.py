"""Brax PPO as a baseline beside SHAC and APG, behind the same interface.

``Config`` holds Brax's PPO hyperparameters under this project's names
(``gamma``, ``lam``, ``policy_hidden_sizes``, ...); :func:`train_in_run`
runs ``brax.training.agents.ppo.train.train`` on the default-mode env with
Brax's own orbax checkpoints at each of its evaluations; :func:`load_params`
and :func:`make_apply` rebuild the saved policy. A resumed run restarts from
the last saved parameters and normaliser (Brax does not save its optimiser
state).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax

from agents.contract import RunContext

NAME = "ppo"
# configs.RunConfig fields Brax PPO has no use for, and why.
UNUSED_RUN_FIELDS = {
    "checkpoint_every": "Brax PPO checkpoints at each of its num_evals "
                        "evaluations; set --num-evals",
    "eval_every": "Brax PPO evaluates num_evals times; set --num-evals",
    "gradient_check": "PPO does not differentiate through the env, so there "
                      "is no gradient to check",
}


class _Stop(Exception):
  """Ends Brax's training loop from its progress callback (should_stop)."""


@dataclasses.dataclass(frozen=True)
class Config:
  """Brax PPO hyperparameters (passed to Brax as ``discounting`` for
  ``gamma`` and ``gae_lambda`` for ``lam``).

  Attributes:
    num_timesteps: total env steps to train for.
    num_envs: parallel environments.
    episode_length: env steps per episode; None uses the env config's.
    action_repeat: times each action is repeated.
    learning_rate: Adam step size.
    entropy_cost: weight of the entropy bonus.
    gamma: discount factor.
    lam: GAE lambda.
    unroll_length: env steps per rollout segment.
    batch_size: segments per minibatch.
    num_minibatches: minibatches per update epoch.
    num_updates_per_batch: epochs over each batch.
    normalize_observations: running mean/std observation normaliser.
    reward_scaling: multiplier on rewards in the losses.
    clipping_epsilon: PPO ratio clip.
    max_grad_norm: global gradient-norm clip; None disables it.
    num_evals: evaluations (= progress reports and checkpoints) in the run.
    num_eval_envs: episodes per evaluation.
    policy_hidden_sizes: policy MLP widths.
    value_hidden_sizes: value MLP widths.
  """
  num_timesteps: int = 5_000_000
  num_envs: int = 64
  episode_length: int | None = None
  action_repeat: int = 1
  learning_rate: float = 3e-4
  entropy_cost: float = 1e-2
  gamma: float = 0.97
  lam: float = 0.95
  unroll_length: int = 20
  batch_size: int = 64
  num_minibatches: int = 4
  num_updates_per_batch: int = 4
  normalize_observations: bool = True
  reward_scaling: float = 0.1
  clipping_epsilon: float = 0.3
  max_grad_norm: float | None = 1.0
  num_evals: int = 20
  num_eval_envs: int = 16
  policy_hidden_sizes: tuple[int, ...] = (64, 64)
  value_hidden_sizes: tuple[int, ...] = (64, 64)

  def __post_init__(self):
    if self.num_timesteps < 1:
      raise ValueError(f"num_timesteps must be >= 1, got {self.num_timesteps}")
    if self.num_envs < 1 or self.num_evals < 1 or self.num_eval_envs < 1:
      raise ValueError("num_envs, num_evals and num_eval_envs must be >= 1")
    if (self.batch_size * self.num_minibatches) % self.num_envs:
      raise ValueError(
          f"batch_size * num_minibatches ({self.batch_size} * "
          f"{self.num_minibatches}) must be a multiple of num_envs "
          f"({self.num_envs}); change one of them")


def _network_factory(config: Config):
  from brax.training.agents.ppo import networks as ppo_networks  # pylint: disable=import-outside-toplevel
  return functools.partial(
      ppo_networks.make_ppo_networks,
      policy_hidden_layer_sizes=tuple(config.policy_hidden_sizes),
      value_hidden_layer_sizes=tuple(config.value_hidden_sizes))


def brax_kwargs(config: Config, episode_length: int) -> dict[str, Any]:
  return dict(
      num_envs=config.num_envs, episode_length=episode_length,
      action_repeat=config.action_repeat,
      learning_rate=config.learning_rate, entropy_cost=config.entropy_cost,
      discounting=config.gamma, gae_lambda=config.lam,
      unroll_length=config.unroll_length, batch_size=config.batch_size,
      num_minibatches=config.num_minibatches,
      num_updates_per_batch=config.num_updates_per_batch,
      normalize_observations=config.normalize_observations,
      reward_scaling=config.reward_scaling,
      clipping_epsilon=config.clipping_epsilon,
      max_grad_norm=config.max_grad_norm, num_evals=config.num_evals,
      num_eval_envs=config.num_eval_envs, deterministic_eval=True,
      network_factory=_network_factory(config))


def _metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
  """Brax names -> this project's namespaces (train/..., eval/...)."""
  out: dict[str, float] = {}
  for k, v in metrics.items():
    try:
      v = float(v)
    except (TypeError, ValueError):
      continue
    if k.startswith("training/"):
      k = "train/" + k[len("training/"):]
    out[k] = v
  if "eval/episode_reward" in out:
    out["eval/episode_return"] = out["eval/episode_reward"]
  return out


def _saved_steps(directory: Path) -> list[Path]:
  return sorted((p for p in Path(directory).glob("[0-9]*") if p.is_dir()),
                key=lambda p: int(p.name))


def train_in_run(env: Any, config: Config, context: RunContext) -> None:
  """Trains with Brax PPO (``agents.Algorithm.train``): checkpoints at each
  of ``config.num_evals`` evaluations into ``context.checkpoint_dir`` and
  saves the final policy into the directory ``context.policy_path``. Brax
  evaluates at each of ``num_evals`` (its own deterministic evaluation); the
  parameters with the best evaluation return so far go to the directory
  ``context.best_policy_path``. ``context.should_stop`` is asked at each
  evaluation. The context's ``checkpoint_every`` and ``eval_every`` are not
  used (``UNUSED_RUN_FIELDS``); ``context.evaluate`` neither (Brax evaluates
  ``num_evals`` times itself). ``context.preflight`` runs before training.
  """
  if context.preflight is not None:
    context.preflight()
  log, progress_fn = context.log, context.progress_fn or (lambda *_: None)
  checkpoint_dir, resume = context.checkpoint_dir, context.resume
  best_policy_path = context.best_policy_path
  from brax.training.agents.ppo import checkpoint as ppo_checkpoint  # pylint: disable=import-outside-toplevel
  from brax.training.agents.ppo import train as ppo  # pylint: disable=import-outside-toplevel
  checkpoint_dir.mkdir(parents=True, exist_ok=True)
  done_steps, restore = 0, None
  if resume:
    saved = _saved_steps(checkpoint_dir)
    if saved:
      restore = saved[-1]
      done_steps = int(restore.name)
      log(f"resumed from checkpoint {restore.name} ({done_steps} env steps; "
          f"PPO restarts its optimiser state)")
    else:
      log("no checkpoint yet: starting from scratch")
  from agents import loop  # pylint: disable=import-outside-toplevel
  kwargs = brax_kwargs(config, loop.resolve_episode_length(env, config.episode_length))
  net_config = ppo_checkpoint.network_config(
      observation_size=env.observation_size, action_size=env.action_size,
      normalize_observations=config.normalize_observations,
      network_factory=kwargs["network_factory"])
  last = [time.perf_counter(), done_steps]
  best = {"return": float("-inf"), "params": None, "step": 0}

  def on_progress(env_steps: int, metrics: Mapping[str, Any]) -> None:
    if done_steps and not env_steps:
      return  # the resumed run's initial eval repeats the checkpoint's row
    steps = done_steps + int(env_steps)
    m = _metrics(metrics)
    ret = m.get("eval/episode_return", float("nan"))
    if (best_policy_path is not None and best["params"] is not None
        and ret > best["return"]):  # Brax hands the params over before the eval
      shutil.rmtree(best_policy_path, ignore_errors=True)
      ppo_checkpoint.save(best_policy_path, best["step"], best["params"], net_config)
      best["return"] = ret
    if math.isfinite(best["return"]):
      m["eval/best_episode_return"] = best["return"]
    now = time.perf_counter()
    if steps > last[1]:
      m["train/sps"] = (steps - last[1]) / max(now - last[0], 1e-9)
    last[:] = [now, steps]
    progress_fn(steps, m)
    if context.should_stop is not None and context.should_stop():
      stopped.append(steps)
      raise _Stop

  def on_params(step: int, make_policy, params) -> None:
    del make_policy
    best.update(params=params, step=done_steps + int(step), latest=params)
    if step == 0:
      return
    ppo_checkpoint.save(checkpoint_dir, done_steps + int(step), params, net_config)
    for old in _saved_steps(checkpoint_dir)[:-2]:
      shutil.rmtree(old, ignore_errors=True)

  stopped: list[int] = []
  try:
    _, params, _ = ppo.train(
        environment=env, num_timesteps=max(config.num_timesteps - done_steps, 0),
        seed=context.seed, progress_fn=on_progress, policy_params_fn=on_params,
        restore_checkpoint_path=str(restore) if restore is not None else None,
        **kwargs)
  except _Stop:
    params = best["latest"]  # handed over before the evaluation that stopped
  ppo_checkpoint.save(context.policy_path, stopped[0] if stopped
                      else config.num_timesteps, params, net_config)


def load_params(policy_path: Path) -> Any:
  """The parameters saved in the directory ``policy_path`` (Brax's format:
  ``(normaliser, policy, value)``).

  Raises:
    FileNotFoundError: no policy saved under ``policy_path``.
  """
  from brax.training.agents.ppo import checkpoint as ppo_checkpoint  # pylint: disable=import-outside-toplevel
  steps = _saved_steps(policy_path)
  if not steps:
    raise FileNotFoundError(f"{policy_path} holds no policy")
  return ppo_checkpoint.load(steps[-1])


def make_apply(env: Any, config: Config
               ) -> Callable[[Any, jax.Array, jax.Array | None], jax.Array]:
  """``apply(params, obs, key) -> action``: the deterministic PPO policy,
  with the network rebuilt from ``config`` (Brax 0.14.2's own
  ``ppo.checkpoint.load_policy`` fails on the config Brax itself saves when
  ``mean_kernel_init_fn`` is None)."""
  from brax.training.acme import running_statistics  # pylint: disable=import-outside-toplevel
  from brax.training.agents.ppo import networks as ppo_networks  # pylint: disable=import-outside-toplevel
  network = ppo_networks.make_ppo_networks(
      env.observation_size, env.action_size,
      preprocess_observations_fn=(running_statistics.normalize
                                  if config.normalize_observations
                                  else lambda x, y: x),
      policy_hidden_layer_sizes=tuple(config.policy_hidden_sizes),
      value_hidden_layer_sizes=tuple(config.value_hidden_sizes))
  make_inference = ppo_networks.make_inference_fn(network)
  dummy = jax.random.PRNGKey(0)

  def apply(params, obs, key=None):
    del key
    return make_inference(tuple(params[:2]), deterministic=True)(obs, dummy)[0]

  return apply
