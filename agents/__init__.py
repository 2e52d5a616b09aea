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
      policy_path, resume, checkpoint_every, progress_fn, log)`` trains,
      checkpoints and writes the final policy to ``policy_path``.
    load_policy: ``load_policy(policy_path, env, config) -> policy`` with
      ``policy(obs [..., obs_size], key) -> action`` (deterministic).
  """
  name: str
  config_class: type
  differentiable: bool
  policy_file: str
  train_in_dir: Callable[..., None]
  load_policy: Callable[[Path, Any, Any], Callable]


def _differentiable(module) -> Algorithm:
  from agents import checkpoint, loop, networks  # pylint: disable=import-outside-toplevel

  def train_in_dir(env, config, **kwargs):
    return loop.train_in_dir(module, env, config, **kwargs)

  def load_policy(policy_path, env, config):
    del env, config  # a saved PolicyParams describes itself
    return networks.make_policy(checkpoint.load_policy(policy_path),
                                deterministic=True)

  return Algorithm(name=module.NAME, config_class=module.Config,
                   differentiable=True, policy_file="policy.msgpack",
                   train_in_dir=train_in_dir, load_policy=load_policy)


def _table() -> dict[str, Algorithm]:
  from agents import apg, ppo, shac  # pylint: disable=import-outside-toplevel
  return {
      "shac": _differentiable(shac),
      "apg": _differentiable(apg),
      "ppo": Algorithm(name=ppo.NAME, config_class=ppo.Config,
                       differentiable=False, policy_file="policy",
                       train_in_dir=ppo.train_in_dir,
                       load_policy=ppo.load_policy),
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
