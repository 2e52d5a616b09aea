"""Agents that train policies on MJX envs, reached through one table.

``ALGORITHMS`` maps an agent's name to an :class:`Algorithm`: its config
class, what it supports, the function that trains it in a run
(``train(env, config, context)`` with a :class:`RunContext`) and the
functions that load and apply its saved policy. ``train.py``,
``evaluate.py``, the presets and the benchmarks find every agent here and
nowhere else.

Shared pieces live here once:
  agents.config      AgentConfig: the hyperparameters SHAC, SAPO and APG share
  agents.rollout     vmapped + scanned rollout with auto-reset (APG, SHAC,
                     SAPO, evaluation)
  agents.loop        the training driver shared by APG, SHAC and SAPO
  agents.networks    ELU+LayerNorm MLPs, tanh-Gaussian policy (and its
                     log-probability), value net
  agents.normalizer  running observation normaliser
  agents.optim       clip + Adam + linear decay; NaN/inf-skipping update
  agents.checkpoint  save_policy / load_policy, orbax train-state checkpoints
Algorithms: agents.shac, agents.apg, agents.sapo (SHAC with a maximum-entropy
objective; differentiable), agents.ppo (Brax PPO baseline on the
default-mode env).
"""

from __future__ import annotations

from agents.contract import Algorithm, ProgressFn, RunContext

__all__ = ["ALGORITHMS", "Algorithm", "ProgressFn", "RunContext", "algorithm"]


def _differentiable(module) -> Algorithm:
  from agents import checkpoint, loop, networks  # pylint: disable=import-outside-toplevel

  def train(env, config, context: RunContext) -> None:
    loop.train_in_run(module, env, config, context)

  def make_apply(env, config):
    del env, config  # a PolicyParams describes itself

    def apply(params, obs, key=None):
      return networks.make_policy(params, deterministic=True)(obs, key)

    return apply

  return Algorithm(name=module.NAME, config_class=module.Config, train=train,
                   load_params=checkpoint.load_policy, make_apply=make_apply,
                   policy_file="policy.msgpack",
                   best_policy_file="policy_best.msgpack",
                   differentiable=True, multi_process=True,
                   init=module.init, train_loop=module.train)


def _table() -> dict[str, Algorithm]:
  from agents import apg, ppo, sapo, shac  # pylint: disable=import-outside-toplevel
  return {
      "shac": _differentiable(shac),
      "apg": _differentiable(apg),
      "sapo": _differentiable(sapo),
      "ppo": Algorithm(name=ppo.NAME, config_class=ppo.Config,
                       train=ppo.train_in_run, load_params=ppo.load_params,
                       make_apply=ppo.make_apply, policy_file="policy",
                       best_policy_file="policy_best", differentiable=False,
                       multi_process=False,
                       unused_run_fields=ppo.UNUSED_RUN_FIELDS),
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
