"""A training run behind ``train.py`` and ``evaluate.py``, in one direction:
build the envs and the agent from the resolved config -> train -> evaluate.

The agent comes from the agent table (``agents.ALGORITHMS``); its ``train``
gets an ``agents.RunContext`` and trains, checkpoints and saves its policy.
:func:`evaluate_run` evaluates that policy with ``agents.rollout.evaluate``
(the rollout training uses) and writes eval.json and the video. This module
also writes the run directory's metrics and learning curve, and draws the
progress bar.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

import agents
import envs
from agents import health, rollout
from agents.loop import resolve_episode_length
from configs import ConfigError, Resolved
from trainlib import media, startup
from trainlib.rundir import (MetricsLog, RunPaths, read_config, write_config,
                             write_text_atomic)

__all__ = ["Progress", "check_gradients", "evaluate_run", "recorder", "summarize",
           "summary_line", "train_run"]


def _make_env(resolved: Resolved, differentiable: bool):
  """The run's env; a config the env rejects (``ValueError``, e.g. a
  third-party env's ``forward_body`` that is not a body) is a ConfigError."""
  try:
    return envs.make(resolved.env_name, differentiable, config=resolved.env_config)
  except ValueError as e:
    raise ConfigError(str(e)) from None


def train_run(resolved: Resolved, run_dir: Path, *, resume: bool = False,
              log: Callable[[str], None] = print) -> dict[str, Any]:
  """Trains, saves the final policy, plots, then evaluates and renders.

  In a multi-process run (``trainlib.startup``) every process calls this
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
  t0 = time.perf_counter()
  algo = agents.algorithm(resolved.agent)
  paths = RunPaths(Path(run_dir))
  primary = startup.is_primary()
  if startup.is_distributed():
    if not algo.multi_process:
      multi = [a.name for a in agents.ALGORITHMS.values() if a.multi_process]
      raise ConfigError(
          f"--agent {algo.name} runs in one process; drop the multi-process "
          f"flags or train with --agent {' / '.join(multi)}")
    startup.check_same("config", repr(resolved))
    if not primary:
      log = lambda _: None  # process 0 reports
  if primary:
    paths.root.mkdir(parents=True, exist_ok=True)
    write_config(paths.config, resolved)
  log(f"run dir: {paths.root}")

  # build the envs (training; evaluation in default mode)
  with startup.local_model_device():
    env = _make_env(resolved, differentiable=algo.differentiable)
    eval_env = (_make_env(resolved, differentiable=False) if algo.differentiable
                else env)  # PPO trains in default mode already
  # one evaluation program for the periodic evaluations and the final one
  program = evaluation_program(eval_env, resolved, algo)

  preflight = None
  if algo.differentiable and resolved.run.gradient_check:
    # runs while the agent's first update compiles (agents.loop)
    preflight = lambda: check_gradients(env, resolved, paths, primary, log)  # noqa: E731

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
    algo.train(env, resolved.agent_config, agents.RunContext(
        seed=resolved.run.seed, checkpoint_dir=paths.checkpoints,
        policy_path=paths.policy(algo), best_policy_path=paths.best_policy(algo),
        resume=resume, checkpoint_every=int(resolved.run.checkpoint_every),
        eval_every=int(resolved.run.eval_every),
        evaluate=program if algo.differentiable else None,
        progress_fn=progress_fn, log=log, preflight=preflight))
  finally:
    progress.close()
    if metrics_log is not None:
      metrics_log.close()
  summary: dict[str, Any] = {"compile_s": progress.compile_s or math.nan,
                             "final_train_return": progress.latest_return}
  # the other processes are done; process 0 evaluates alone
  startup.finish()
  if not primary:
    return summary
  media.plot_learning_curve(metrics_log.rows, paths.learning_curve,
                      f"{resolved.env_name} / {resolved.agent}")

  # evaluate
  train_s = time.perf_counter() - t0
  log(f"training done in {train_s:.1f}s; evaluating the final policy")
  result = evaluate_run(paths.root, log=log, resolved=resolved,
                        program=(eval_env, program))
  summary.update(train_s=train_s, wall_s=time.perf_counter() - t0, eval=result)
  log(f"done in {summary['wall_s']:.1f}s: {paths.root}")
  return summary


def check_gradients(env, resolved: Resolved, paths: RunPaths, primary: bool,
                    log: Callable[[str], None]) -> health.Report:
  """The gradient health check (``agents.health``) before SHAC/APG train:
  writes gradient_check.json (process 0) and stops the run when the
  reward's gradient is zero or not finite.

  Raises:
    ConfigError: the gradient is zero or not finite (the message says what
      was found and names ``--no-gradient-check``).
  """
  log(f"gradient check: {resolved.env_name}, reward gradient w.r.t. actions "
      f"(skip with --no-gradient-check)...")
  report = health.check_gradients(env, jax.random.PRNGKey(resolved.run.seed),
                                  name=resolved.env_name)
  if primary:
    write_text_atomic(paths.gradient_check, json.dumps(report.to_json(), indent=2) + "\n")
  log(f"gradient check: {report.message()} ({report.seconds:.1f}s)")
  if not report.ok:
    raise ConfigError(f"gradient check failed: {report.message()}. "
                      f"To train anyway pass --no-gradient-check.")
  return report


def evaluation_program(env, resolved: Resolved, algo: agents.Algorithm,
                       episodes: int | None = None):
  """The run's evaluation program (``agents.rollout.evaluation_program``):
  ``resolved.run.eval_episodes`` (or ``episodes``) episodes of the agent's
  deterministic policy on ``env`` (default mode), recording what eval.json
  and the video need (:func:`recorder`)."""
  length = resolve_episode_length(env, getattr(resolved.agent_config,
                                               "episode_length", None))
  return rollout.evaluation_program(
      env, algo.make_apply(env, resolved.agent_config),
      resolved.run.eval_episodes if episodes is None else episodes, length,
      recorder(env))


def recorder(env) -> Callable[[Any], dict[str, jax.Array]]:
  """What evaluation keeps of every state: positions and velocities (for
  the video) and, for locomotion tasks and third-party envs that declare a
  forward body (``envs.thirdparty``: ``forward_body_id``), that body's x
  position (recorded as ``torso_x``)."""
  from envs.locomotion import LocomotionEnv  # pylint: disable=import-outside-toplevel
  body = 1 if isinstance(env, LocomotionEnv) else getattr(env, "forward_body_id", None)

  def record(state):
    data = state.pipeline_state
    out = {"qpos": data.qpos, "qvel": data.qvel}
    if body is not None:
      out["torso_x"] = data.xpos[body, 0]  # locomotion tasks: body 1 is the torso
    return out

  return record


def summarize(result, episode_length: int, dt: float) -> dict[str, Any]:
  """eval.json's numbers from an ``agents.rollout.EvalResult`` (host arrays)
  recorded with :func:`recorder`.

  ``forward_velocity_mean`` (locomotion tasks only) is the torso's
  x-displacement over each episode divided by the episode's time, averaged
  over episodes; ``fall_rate`` is the fraction of episodes that ended by
  termination before ``episode_length``.
  """
  returns = np.asarray(result.returns, np.float64)
  lengths = np.asarray(result.lengths)
  out: dict[str, Any] = {
      "return_mean": float(np.mean(returns)),
      "return_std": float(np.std(returns)),
      "episodes": int(returns.shape[0]),
      "returns": [float(r) for r in returns],
      "episode_lengths": [int(n) for n in lengths],
      "episode_length_mean": float(np.mean(lengths)),
      "fall_rate": float(np.mean(np.asarray(result.terminated))),
      "episode_length": int(episode_length),
  }
  if "torso_x" in result.start:
    x = np.asarray(result.trajectory["torso_x"])  # [T, N]
    end = x[np.maximum(lengths - 1, 0), np.arange(lengths.shape[0])]
    velocity = (end - np.asarray(result.start["torso_x"])) / (np.maximum(lengths, 1) * dt)
    out["forward_velocities"] = [float(v) for v in velocity]
    out["forward_velocity_mean"] = float(np.mean(velocity))
  return out


def summary_line(result: dict[str, Any]) -> str:
  """``return R ± S, forward velocity V m/s, falls F of N, length L``."""
  parts = [f"return {result['return_mean']:.2f} ± {result['return_std']:.2f}"]
  if "forward_velocity_mean" in result:
    parts.append(f"forward velocity {result['forward_velocity_mean']:.2f} m/s")
  falls = round(result["fall_rate"] * result["episodes"])
  parts.append(f"falls {falls} of {result['episodes']}")
  parts.append(f"mean length {result['episode_length_mean']:.0f}")
  return ", ".join(parts) + f" ({result['episodes']} episodes)"


def evaluate_run(run_dir: str | Path, episodes: int | None = None,
                 video: bool | None = None, seed: int = 1_000_003,
                 log: Callable[[str], None] = print,
                 resolved: Resolved | None = None,
                 program: tuple[Any, Callable] | None = None) -> dict[str, Any]:
  """Evaluates a run's final policy; writes eval.json (and video.mp4).

  Args:
    run_dir: a run directory written by train.py.
    episodes: number of episodes (default: the run config's eval_episodes).
    video: render video.mp4 (default: the run config's ``video``).
    seed: PRNG seed of the evaluation episodes' initial states (the same
      seed gives the same initial states as ``agents.rollout.evaluate``
      anywhere else).
    log: where to print progress lines.
    resolved: the run's config when the caller has read it already
      (default: read from the run directory).
    program: ``(env, evaluation_program)`` of the run when the caller built
      them already (train.py: the program of the periodic evaluations, so a
      run compiles one); used when ``episodes`` is the run's.

  Returns:
    The eval.json content: return_mean, return_std, episodes, returns,
    episode_lengths, episode_length_mean, fall_rate, forward_velocity_mean
    (locomotion tasks), video (file name or None) and video_episode (the
    rendered episode's index: the median return), timings, and ``best``:
    the same numbers for the best policy of the periodic evaluations
    (``policy_best``), when the run kept one. The video shows the final
    policy.

  Raises:
    ConfigError: not a run directory / invalid config / bad ``episodes``.
    FileNotFoundError: the run has no final policy.
    RenderingUnavailableError: video requested but no GL backend works.
  """
  paths = RunPaths(Path(run_dir))
  if resolved is None:
    resolved = read_config(paths.config)
  episodes = resolved.run.eval_episodes if episodes is None else int(episodes)
  if episodes < 1:
    raise ConfigError(f"--episodes must be >= 1, got {episodes}")
  video = resolved.run.video if video is None else bool(video)
  algo = agents.algorithm(resolved.agent)
  policy_path = paths.policy(algo)
  if not policy_path.exists():
    raise FileNotFoundError(
        f"{policy_path} does not exist: the run has not finished. "
        f"Continue it with `python train.py --resume {paths.root}`.")
  if program is not None and episodes == resolved.run.eval_episodes:
    env, run_eval = program
  else:
    env = _make_env(resolved, differentiable=False)
    run_eval = evaluation_program(env, resolved, algo, episodes)
  length = resolve_episode_length(env, getattr(resolved.agent_config,
                                               "episode_length", None))

  def run(path: Path):  # one compile for the final and the best policy
    return jax.device_get(run_eval(algo.load_params(path),
                                   jax.random.PRNGKey(seed)))

  t0 = time.perf_counter()
  out = run(policy_path)
  result: dict[str, Any] = summarize(out, length, float(env.dt))
  result.update(video=None, deterministic=True,
                rollout_s=round(time.perf_counter() - t0, 2))
  log(f"eval: {summary_line(result)}, episodes of up to {length} steps "
      f"({result['rollout_s']:.1f}s incl. compile)")
  best_path = paths.best_policy(algo)
  if best_path.exists():  # the best policy of the periodic evaluations
    best = summarize(run(best_path), length, float(env.dt))
    result["best"] = {k: v for k, v in best.items()
                      if k not in ("episodes", "episode_length")}
    result["best"]["policy"] = best_path.name
    log(f"eval (best policy, {best_path.name}): {summary_line(best)}")
  if video:
    t1 = time.perf_counter()
    returns = np.asarray(out.returns)
    i = int(np.argsort(returns, kind="stable")[(episodes - 1) // 2])
    n = int(out.lengths[i])
    qpos = np.concatenate([out.start["qpos"][i][None], out.trajectory["qpos"][:n, i]])
    qvel = np.concatenate([out.start["qvel"][i][None], out.trajectory["qvel"][:n, i]])
    frames, fps = media.render_trajectory(env.mj_model, qpos, float(env.dt),
                                               resolved.render, qvel=qvel)
    media.write_video(paths.video, frames, fps)
    result.update(video=paths.video.name, video_episode=i,
                  video_episode_return=float(returns[i]),
                  video_frames=int(frames.shape[0]), video_fps=round(fps, 3),
                  render_s=round(time.perf_counter() - t1, 2))
    log(f"eval: wrote {paths.video} (episode {i}, the median return "
        f"{returns[i]:.1f}; {frames.shape[0]} frames, {result['render_s']:.1f}s)")
  write_text_atomic(paths.eval, json.dumps(result, indent=2) + "\n")
  return result


class Progress:
  """tqdm bar: env steps / total, latest return, steps/s and ETA.

  The bar starts at the first progress report, after compilation, so its
  rate and ETA exclude compile time; the compile time is printed on its own
  line.
  """

  def __init__(self, total: int, desc: str = "train", file=None):
    self.total = int(total)
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
    for key in media.RETURN_KEYS:
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
