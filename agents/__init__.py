"""Agents that train policies on MJX envs, reached through one table.

``ALGORITHMS`` maps an agent's name to an :class:`Algorithm`: its config
class, the function that trains it in a run directory and the function that
loads its saved policy. ``train.py``, ``evaluate.py`` and the presets find
every agent here and nowhere else.

Shared pieces live here once:
  agents.config      AgentConfig: the hyperparameters SHAC and APG share
  agents.rollout     vmapped + scanned rollout with auto-reset (APG, SHAC,
                     evaluation)
  agents.loop        the training driver shared by APG and SHAC
  agents.networks    ELU+LayerNorm MLPs, tanh-Gaussian policy, value net
  agents.normalizer  running observation normaliser
  agents.optim       clip + Adam + linear decay; NaN/inf-skipping update
  agents.checkpoint  save_policy / load_policy, orbax train-state checkpoints
Algorithms: agents.shac, agents.apg (differentiable), agents.ppo (Brax PPO
baseline on the default-mode env).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ALGORITHMS", "Algorithm", "algorithm"]


@dataclasses.dataclass(frozen=True)
class Algorithm:
  """One row of the algorithm table.

  Attributes:
    name: the agent's name ("shac", "apg", "ppo").
    config_class: its frozen config dataclass.
    differentiable: True if it trains on ``envs.make(name,
      differentiable=True)``, False for the default-mode env.
    policy_file: name of the saved policy (file or directory) in a run dir.
    train_in_dir: ``train_in_dir(env, config, *, seed, checkpoint_dir,
      policy_path, resume, checkpoint_every, progress_fn, log, eval_env,
      eval_every, eval_episodes, best_policy_path)`` trains, checkpoints,
      keeps the best-evaluated policy at ``best_policy_path`` and writes the
      final policy to ``policy_path``.
    load_params: ``load_params(policy_path) -> params`` of a saved policy.
    make_apply: ``make_apply(env, config) -> apply`` with ``apply(params,
      obs [..., obs_size], key) -> action`` (deterministic); the parameters
      are an argument, so one compiled evaluation serves several policies.
    best_policy_file: name of the best-evaluated policy in a run dir.
  """
  name: str
  config_class: type
  differentiable: bool
  policy_file: str
  train_in_dir: Callable[..., None]
  load_params: Callable[[Path], Any]
  make_apply: Callable[[Any, Any], Callable]
  best_policy_file: str


def _differentiable(module) -> Algorithm:
  from agents import checkpoint, loop, networks  # pylint: disable=import-outside-toplevel

  def train_in_dir(env, config, **kwargs):
    return loop.train_in_dir(module, env, config, **kwargs)

  def make_apply(env, config):
    del env, config  # a PolicyParams describes itself

    def apply(params, obs, key=None):
      return networks.make_policy(params, deterministic=True)(obs, key)

    return apply

  return Algorithm(name=module.NAME, config_class=module.Config,
                   differentiable=True, policy_file="policy.msgpack",
                   train_in_dir=train_in_dir,
                   load_params=checkpoint.load_policy, make_apply=make_apply,
                   best_policy_file="policy_best.msgpack")


def _table() -> dict[str, Algorithm]:
  from agents import apg, ppo, shac  # pylint: disable=import-outside-toplevel
  return {
      "shac": _differentiable(shac),
      "apg": _differentiable(apg),
      "ppo": Algorithm(name=ppo.NAME, config_class=ppo.Config,
                       differentiable=False, policy_file="policy",
                       train_in_dir=ppo.train_in_dir,
                       load_params=ppo.load_params,
                       make_apply=ppo.make_apply,
                       best_policy_file="policy_best"),
  }


ALGORITHMS: dict[str, Algorithm] = _table()


def algorithm(name: str) -> Algorithm:
  """The table row of agent ``name``.

  Raises:
    ValueError: unknown name; the message lists the valid ones.
  """
  try:
    return ALGORITHMS[name]
  except (KeyError, TypeError):
    raise ValueError(f"Unknown agent {name!r}. Valid agents: "
                     f"{', '.join(ALGORITHMS)}.") from None
