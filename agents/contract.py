"""The contract between a run and an agent: :class:`RunContext` (what a run
gives ``train``) and :class:`Algorithm` (one row of ``agents.ALGORITHMS``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["Algorithm", "ProgressFn", "RunContext"]

ProgressFn = Callable[[int, dict[str, float]], None]


@dataclasses.dataclass(frozen=True)
class RunContext:
  """What a run gives an agent's ``train(env, config, context)`` besides the
  env and the agent's config.

  Attributes:
    seed: PRNG seed of the run.
    checkpoint_dir: where the agent keeps its train-state checkpoints.
    policy_path: where the final policy goes (the agent's ``policy_file``).
    best_policy_path: where the best-evaluated policy goes.
    resume: continue from the latest checkpoint in ``checkpoint_dir``.
    checkpoint_every: updates between checkpoints (0 = only at the end).
    eval_every: updates between deterministic evaluations (0 = none).
    evaluate: the run's evaluation program (``agents.rollout.
      evaluation_program``): ``evaluate(params, key) -> EvalResult``, the
      deterministic policy on the default-mode env; the final evaluation
      runs the same compiled program. None: no periodic evaluation.
    progress_fn: ``progress_fn(env_steps, metrics)`` at every report.
    log: where status lines go.
    should_stop: asked after every update (SHAC/APG) or evaluation (PPO);
      True ends training there as if the budget were spent (the final
      checkpoint and policy are written).
    preflight: a check to run before the first update (the gradient health
      check, for the differentiable agents); SHAC and APG run it while their
      update compiles. An exception it raises stops the run before training.
  """
  seed: int
  checkpoint_dir: Path
  policy_path: Path
  best_policy_path: Path
  resume: bool = False
  checkpoint_every: int = 0
  eval_every: int = 0
  evaluate: Callable[[Any, Any], Any] | None = None
  progress_fn: ProgressFn | None = None
  log: Callable[[str], None] = print
  should_stop: Callable[[], bool] | None = None
  preflight: Callable[[], None] | None = None


@dataclasses.dataclass(frozen=True)
class Algorithm:
  """One row of the agent table.

  Attributes:
    name: the agent's name ("shac", "apg", "sapo", "ppo").
    config_class: its frozen config dataclass.
    train: ``train(env, config, context: RunContext)`` trains, checkpoints,
      keeps the best-evaluated policy and writes the final policy.
    load_params: ``load_params(policy_path) -> params`` of a saved policy.
    make_apply: ``make_apply(env, config) -> apply`` with ``apply(params,
      obs [..., obs_size], key) -> action`` (deterministic); the parameters
      are an argument, so one compiled evaluation serves several policies.
    policy_file: name of the saved policy (file or directory) in a run dir.
    best_policy_file: name of the best-evaluated policy in a run dir.
    differentiable: trains on ``envs.make(name, differentiable=True)``
      (False: on the default-mode env).
    multi_process: can train over several processes (``jax.distributed``).
    unused_run_fields: ``configs.RunConfig`` fields this agent does not use,
      each with the reason; setting one is an error that gives it.
    init: ``init(env, config, key) -> TrainState``, the state a run starts
      from (None where the trainer is not ours: PPO).
    train_loop: ``train_loop(env, config, key, progress_fn, should_stop=...)``,
      the trainer without a run directory (what the benchmarks drive; None
      for PPO, which they run through Brax's ``ppo.train``).
  """
  name: str
  config_class: type
  train: Callable[[Any, Any, RunContext], None]
  load_params: Callable[[Path], Any]
  make_apply: Callable[[Any, Any], Callable]
  policy_file: str
  best_policy_file: str
  differentiable: bool
  multi_process: bool
  unused_run_fields: Mapping[str, str] = dataclasses.field(default_factory=dict)
  init: Callable[..., Any] | None = None
  train_loop: Callable[..., Any] | None = None
