"""The training driver behind ``train.py``, in one direction:
build the env and agent from the resolved config -> train -> evaluate.

The agent comes from the algorithm table (``agents.ALGORITHMS``); its
``train_in_dir`` trains, checkpoints and saves its policy, and
:func:`trainlib.evaluation.evaluate_run` evaluates that policy with
``agents.rollout.evaluate``. This module writes the run directory's config,
metrics and learning curve.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import configs
from configs import Resolved
from trainlib.progress import Progress
from trainlib.rundir import MetricsLog, RunPaths, plot_learning_curve, write_config

__all__ = ["make_env", "train_run"]


def make_env(resolved: Resolved, differentiable: bool = False):
  """The run's env, built from ``resolved.env_config`` itself."""
  import envs  # pylint: disable=import-outside-toplevel
  return envs.env_class(resolved.env_name)(resolved.env_config,
                                           differentiable=differentiable)


def train_run(resolved: Resolved, run_dir: Path, *, resume: bool = False,
              log: Callable[[str], None] = print) -> dict[str, Any]:
  """Trains, saves the final policy, plots, then evaluates and renders.

  In a multi-process run (``trainlib.distributed``) every process calls this
  with the same arguments; all train and checkpoint together, then leave the
  run, and process 0 alone writes the other files and evaluates (the others
  return only the training summary).

  Args:
    resolved: validated configs (from the CLI, or the run's config.yaml).
    run_dir: the run directory (created if missing).
    resume: continue from the last checkpoint in ``run_dir``.
    log: where status lines go.

  Returns:
    A summary: wall_s, train_s, compile_s, final_train_return and the
    eval.json dict (process 0).
  """
  import agents  # pylint: disable=import-outside-toplevel
  from trainlib import distributed  # pylint: disable=import-outside-toplevel
  from trainlib.evaluation import evaluate_run  # pylint: disable=import-outside-toplevel
  t0 = time.perf_counter()
  algo = agents.algorithm(resolved.agent)
  paths = RunPaths(Path(run_dir))
  primary = distributed.is_primary()
  if distributed.is_active():
    if not algo.differentiable:
      raise configs.ConfigError(
          f"--agent {algo.name} runs in one process; drop the multi-process "
          f"flags or train with --agent shac/apg")
    distributed.check_same("config", repr(resolved))
    if not primary:
      log = lambda _: None  # process 0 reports
  if primary:
    paths.root.mkdir(parents=True, exist_ok=True)
    write_config(paths.config, resolved)
  log(f"run dir: {paths.root}")

  # build the envs (training; evaluation in default mode)
  with distributed.local_model_device():
    env = make_env(resolved, differentiable=algo.differentiable)
    eval_env = (make_env(resolved, differentiable=False) if algo.differentiable
                else env)  # PPO trains in default mode already

  # train (process 0 writes metrics and progress)
  metrics_log = MetricsLog(paths, resume=resume) if primary else None
  progress = Progress(resolved.agent_config.num_timesteps,
                      desc=f"{resolved.env_name}/{resolved.agent}",
                      file=None if primary else open(os.devnull, "w"))  # pylint: disable=consider-using-with

  def progress_fn(env_steps: int, metrics: dict[str, float]) -> None:
    if primary:
      metrics_log.log(env_steps, metrics)
      progress(env_steps, metrics)

  try:
    algo.train_in_dir(env, resolved.agent_config, seed=resolved.run.seed,
                      checkpoint_dir=paths.checkpoints,
                      policy_path=paths.policy(resolved.agent), resume=resume,
                      checkpoint_every=int(resolved.run.checkpoint_every),
                      progress_fn=progress_fn, log=log, eval_env=eval_env,
                      eval_every=int(resolved.run.eval_every),
                      eval_episodes=int(resolved.run.eval_episodes),
                      best_policy_path=paths.best_policy(resolved.agent))
  finally:
    progress.close()
    if metrics_log is not None:
      metrics_log.close()
  summary: dict[str, Any] = {"compile_s": progress.compile_s or math.nan,
                             "final_train_return": progress.latest_return}
  # the other processes are done; process 0 evaluates alone
  distributed.finish()
  if not primary:
    return summary
  plot_learning_curve(metrics_log.rows, paths.learning_curve,
                      f"{resolved.env_name} / {resolved.agent}")

  # evaluate
  train_s = time.perf_counter() - t0
  log(f"training done in {train_s:.1f}s; evaluating the final policy")
  result = evaluate_run(paths.root, log=log)
  summary.update(train_s=train_s, wall_s=time.perf_counter() - t0, eval=result)
  log(f"done in {summary['wall_s']:.1f}s: {paths.root}")
  return summary
