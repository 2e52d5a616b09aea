"""The training driver behind ``train.py``: run dir, progress, checkpoints,
resume, and the final evaluation.

APG and SHAC run through their ``train(env, config, key, progress_fn, *,
checkpoint_fn, checkpoint_every, initial_state)``; their ``TrainState`` is
checkpointed with an orbax ``CheckpointManager`` (atomic: orbax writes into a
temporary directory and renames it when complete). PPO runs Brax's
``ppo.train`` on the default-mode env and checkpoints with Brax's own orbax
checkpoints at each of its evaluations; a resumed PPO run restarts from the
last saved parameters and normaliser (Brax does not save its optimiser state).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import configs
from configs import Resolved
from trainlib.rundir import (MetricsLog, RunPaths, plot_learning_curve,
                             write_config)

__all__ = ["CACHE_ENV", "Progress", "enable_compilation_cache", "train_run"]

CACHE_ENV = "MJX_DIFFRL_JAX_CACHE"
DEFAULT_CACHE = Path("~/.cache/mjx-diffrl/jax").expanduser()


def enable_compilation_cache(path: str | Path | None = None) -> Path | None:
  """Turns on JAX's persistent compilation cache.

  The directory is ``path``, else ``$MJX_DIFFRL_JAX_CACHE``, else
  ``~/.cache/mjx-diffrl/jax``; setting the variable to an empty string turns
  the cache off. Returns the directory in use (None when off).
  """
  import jax  # pylint: disable=import-outside-toplevel
  if path is None:
    env = os.environ.get(CACHE_ENV)
    if env is not None and not env.strip():
      return None
    path = env or DEFAULT_CACHE
  path = Path(path).expanduser()
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path


# --------------------------------------------------------------------------
# Progress bar
# --------------------------------------------------------------------------


RETURN_KEYS = ("train/episode_return", "eval/episode_return")


class Progress:
  """tqdm bar: env steps / total, latest return, steps/s and ETA.

  The bar starts at the first progress report, after compilation, so its
  rate and ETA exclude compile time; the compile time is printed on its own
  line.
  """

  def __init__(self, total: int, initial: int = 0, desc: str = "train",
               file=None):
    self.total = int(total)
    self.initial = int(initial)
    self.desc = desc
    self.file = file if file is not None else sys.stderr
    self.bar = None
    self.t_start = time.perf_counter()
    self.compile_s: float | None = None
    self.latest_return = math.nan
    self._write(f"{desc}: compiling (the first update includes XLA "
                f"compilation; cached runs start faster)...")

  def _write(self, msg: str) -> None:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    tqdm.write(msg, file=self.file)

  def __call__(self, env_steps: int, metrics: Mapping[str, float]) -> None:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    env_steps = int(env_steps)
    for key in RETURN_KEYS:
      value = metrics.get(key)
      if value is not None and math.isfinite(float(value)):
        self.latest_return = float(value)
    if self.bar is None:
      first_s = time.perf_counter() - self.t_start
      if "train/compile_s" in metrics:
        self.compile_s = float(metrics["train/compile_s"])
        self._write(f"{self.desc}: compiled in {self.compile_s:.1f}s "
                    f"(first report after {first_s:.1f}s)")
      else:
        self.compile_s = first_s
        self._write(f"{self.desc}: first report after {first_s:.1f}s "
                    f"(compile + first iteration)")
      self.bar = tqdm(total=self.total, initial=min(env_steps, self.total),
                      desc=self.desc, unit="step", unit_scale=True,
                      dynamic_ncols=True, smoothing=0.3, file=self.file,
                      mininterval=0.5)
    else:
      self.bar.update(max(0, min(env_steps, self.total) - self.bar.n))
    postfix = {"return": (f"{self.latest_return:.1f}"
                          if math.isfinite(self.latest_return) else "-")}
    sps = metrics.get("train/sps")
    if sps is not None:
      postfix["sps"] = f"{float(sps):.0f}"
    self.bar.set_postfix(postfix, refresh=True)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()


# --------------------------------------------------------------------------
# APG / SHAC
# --------------------------------------------------------------------------


def _agent_module(agent: str):
  if agent == "shac":
    from agents import shac  # pylint: disable=import-outside-toplevel
    return shac
  from agents import apg  # pylint: disable=import-outside-toplevel
  return apg


class _StateCheckpoints:
  """orbax CheckpointManager for an agent TrainState, keyed by iteration."""

  def __init__(self, directory: Path, max_to_keep: int = 2):
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    self._ocp = ocp
    self.mngr = ocp.CheckpointManager(
        directory.absolute(),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=True))

  def latest_step(self) -> int | None:
    return self.mngr.latest_step()

  def save(self, train_state: Any, meta: dict[str, Any]) -> int:
    import jax  # pylint: disable=import-outside-toplevel
    step = int(jax.device_get(train_state.iteration))
    ocp = self._ocp
    self.mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(train_state),
        meta=ocp.args.JsonSave(meta)))
    return step

  def restore(self, template: Any, step: int | None = None
              ) -> tuple[Any, dict[str, Any]]:
    ocp = self._ocp
    step = self.mngr.latest_step() if step is None else step
    out = self.mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(template),
        meta=ocp.args.JsonRestore()))
    return out.state, dict(out.meta)

  def close(self) -> None:
    self.mngr.wait_until_finished()
    self.mngr.close()


def _train_diff(resolved: Resolved, paths: RunPaths, resume: bool,
                log: Callable[[str], None]) -> dict[str, float]:
  import jax  # pylint: disable=import-outside-toplevel
  from trainlib import distributed  # pylint: disable=import-outside-toplevel
  from agents import checkpoint as policy_ckpt  # pylint: disable=import-outside-toplevel
  from trainlib.evaluation import make_env  # pylint: disable=import-outside-toplevel

  module = _agent_module(resolved.agent)
  config = resolved.agent_config
  with distributed.local_model_device():
    env = make_env(resolved, differentiable=True)
  key = jax.random.PRNGKey(resolved.run.seed)
  steps_per_update = int(config.steps_per_update)

  # every process saves and restores (orbax coordinates them); only
  # process 0 writes metrics, progress and the policy
  primary = distributed.is_primary()
  ckpts = _StateCheckpoints(paths.checkpoints)
  initial_state = None
  start_steps = 0
  if resume and ckpts.latest_step() is not None:
    template = module.init(env, config, key)
    initial_state, meta = ckpts.restore(template)
    start_steps = int(meta.get("env_steps", 0))
    log(f"resumed from checkpoint at update {ckpts.latest_step()} "
        f"({start_steps} env steps)")
  elif resume:
    log("no checkpoint yet: starting from scratch")

  metrics_log = (MetricsLog(paths, resume_step=start_steps if resume else None)
                 if primary else None)
  total = config.num_updates * steps_per_update
  progress = Progress(total, initial=start_steps,
                      desc=f"{resolved.env_name}/{resolved.agent}",
                      file=None if primary else open(os.devnull, "w"))  # pylint: disable=consider-using-with

  def progress_fn(env_steps: int, metrics: dict[str, float]) -> None:
    if not primary:
      return
    iteration = int(metrics.get("train/iteration", 0))
    # TrainState.env_steps is int32; the iteration count never wraps.
    env_steps = iteration * steps_per_update if iteration else int(env_steps)
    metrics_log.log(env_steps, metrics)
    progress(env_steps, metrics)

  def checkpoint_fn(train_state: Any) -> None:
    iteration = int(jax.device_get(train_state.iteration))
    ckpts.save(train_state, {"env_steps": iteration * steps_per_update,
                             "iteration": iteration, "time": time.time()})

  try:
    policy_params, metrics = module.train(
        env, config, key, progress_fn,
        checkpoint_fn=checkpoint_fn,
        checkpoint_every=int(resolved.run.checkpoint_every),
        initial_state=initial_state)
  finally:
    progress.close()
    ckpts.close()
    if metrics_log is not None:
      metrics_log.close()
  if not primary:
    return {"compile_s": math.nan, "final_train_return": math.nan}
  policy_ckpt.save_policy(paths.policy_file, policy_params)
  plot_learning_curve(metrics_log.rows, paths.learning_curve,
                      f"{resolved.env_name} / {resolved.agent}")
  return {"compile_s": progress.compile_s or math.nan,
          "final_train_return": progress.latest_return}


# --------------------------------------------------------------------------
# PPO (Brax)
# --------------------------------------------------------------------------


def _ppo_kwargs(config: configs.PPOConfig, length: int) -> dict[str, Any]:
  import functools  # pylint: disable=import-outside-toplevel
  from brax.training.agents.ppo import networks as ppo_networks  # pylint: disable=import-outside-toplevel
  factory = functools.partial(
      ppo_networks.make_ppo_networks,
      policy_hidden_layer_sizes=tuple(config.policy_hidden_layer_sizes),
      value_hidden_layer_sizes=tuple(config.value_hidden_layer_sizes))
  return dict(
      num_envs=config.num_envs, episode_length=length,
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
      network_factory=factory)


def _ppo_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
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


def _train_ppo(resolved: Resolved, paths: RunPaths, resume: bool,
               log: Callable[[str], None]) -> dict[str, float]:
  from brax.training.agents.ppo import train as ppo  # pylint: disable=import-outside-toplevel
  from brax.training.agents.ppo import checkpoint as ppo_checkpoint  # pylint: disable=import-outside-toplevel
  from trainlib.evaluation import episode_length, make_env  # pylint: disable=import-outside-toplevel

  config: configs.PPOConfig = resolved.agent_config
  env = make_env(resolved, differentiable=False)
  length = episode_length(resolved)
  paths.checkpoints.mkdir(parents=True, exist_ok=True)
  done_steps = 0
  restore = None
  if resume:
    saved = sorted(p for p in paths.checkpoints.glob("[0-9]*") if p.is_dir())
    if saved:
      restore = saved[-1]
      done_steps = int(restore.name)
      log(f"resumed from checkpoint {restore.name} ({done_steps} env steps; "
          f"PPO restarts its optimiser state)")
    else:
      log("no checkpoint yet: starting from scratch")
  remaining = max(config.num_timesteps - done_steps, 0)
  kwargs = _ppo_kwargs(config, length)
  net_config = ppo_checkpoint.network_config(
      observation_size=env.observation_size, action_size=env.action_size,
      normalize_observations=config.normalize_observations,
      network_factory=kwargs["network_factory"])
  metrics_log = MetricsLog(paths, resume_step=done_steps if resume else None)
  progress = Progress(config.num_timesteps, initial=done_steps,
                      desc=f"{resolved.env_name}/ppo")
  t_last = [time.perf_counter(), done_steps]

  def progress_fn(env_steps: int, metrics: Mapping[str, Any]) -> None:
    if done_steps and not env_steps:
      return  # the resumed run's initial eval repeats the checkpoint's row
    steps = done_steps + int(env_steps)
    m = _ppo_metrics(metrics)
    now = time.perf_counter()
    if steps > t_last[1]:
      m["train/sps"] = (steps - t_last[1]) / max(now - t_last[0], 1e-9)
    t_last[:] = [now, steps]
    metrics_log.log(steps, m)
    progress(steps, m)

  def policy_params_fn(step: int, make_policy, params) -> None:
    del make_policy
    if step == 0:
      return
    ppo_checkpoint.save(paths.checkpoints, done_steps + int(step), params,
                        net_config)
    _prune(paths.checkpoints, keep=2)

  try:
    _, params, _ = ppo.train(
        environment=env, num_timesteps=remaining, seed=resolved.run.seed,
        progress_fn=progress_fn, policy_params_fn=policy_params_fn,
        restore_checkpoint_path=str(restore) if restore is not None else None,
        **kwargs)
  finally:
    progress.close()
    metrics_log.close()
  ppo_checkpoint.save(paths.policy_dir, config.num_timesteps, params,
                      net_config)
  plot_learning_curve(metrics_log.rows, paths.learning_curve,
                      f"{resolved.env_name} / ppo")
  return {"compile_s": progress.compile_s or math.nan,
          "final_train_return": progress.latest_return}


def _prune(directory: Path, keep: int) -> None:
  import shutil  # pylint: disable=import-outside-toplevel
  saved = sorted(p for p in directory.glob("[0-9]*") if p.is_dir())
  for old in saved[:-keep]:
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------
# Entry
# --------------------------------------------------------------------------


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
    A summary: wall_s, compile_s, final_train_return and the eval.json dict.
  """
  from trainlib import distributed  # pylint: disable=import-outside-toplevel
  from trainlib.evaluation import evaluate_run  # pylint: disable=import-outside-toplevel
  t0 = time.perf_counter()
  paths = RunPaths(Path(run_dir))
  primary = distributed.is_primary()
  if distributed.is_active():
    if resolved.agent == "ppo":
      raise configs.ConfigError(
          "--agent ppo (Brax PPO) runs in one process; drop the "
          "multi-process flags or train with --agent shac/apg")
    distributed.check_same("config", repr(resolved))
    if not primary:
      log = lambda _: None  # process 0 reports
  if primary:
    paths.root.mkdir(parents=True, exist_ok=True)
    write_config(paths.config, resolved)
  log(f"run dir: {paths.root}")
  if resolved.agent == "ppo":
    summary = _train_ppo(resolved, paths, resume, log)
  else:
    summary = _train_diff(resolved, paths, resume, log)
  # the other processes are done; process 0 evaluates alone
  distributed.finish()
  if not primary:
    return summary
  train_s = time.perf_counter() - t0
  log(f"training done in {train_s:.1f}s; evaluating the final policy")
  result = evaluate_run(paths.root, log=log)
  summary.update(train_s=train_s, wall_s=time.perf_counter() - t0,
                 eval=result)
  log(f"done in {summary['wall_s']:.1f}s: {paths.root}")
  return summary
