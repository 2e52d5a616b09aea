"""Deterministic evaluation of a saved run: eval.json and video.mp4.

The episodes are run by ``agents.rollout.evaluate`` (the rollout that
training uses); this module loads the policy through the algorithm table,
summarises the episodes and renders the median-return one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from configs import ConfigError
from trainlib import render as render_lib
from trainlib.rundir import RunPaths, read_config
from trainlib.run import make_env

__all__ = ["evaluate_run", "recorder", "summarize", "summary_line"]


def recorder(env) -> Callable[[Any], dict[str, jax.Array]]:
  """What evaluation keeps of every state: positions and velocities (for
  the video) and, for locomotion tasks, the torso's x position."""
  from envs.locomotion import LocomotionEnv  # pylint: disable=import-outside-toplevel
  forward = isinstance(env, LocomotionEnv)

  def record(state):
    data = state.pipeline_state
    out = {"qpos": data.qpos, "qvel": data.qvel}
    if forward:
      out["torso_x"] = data.xpos[1, 0]  # body 1 is the torso
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
                 log: Callable[[str], None] = print) -> dict[str, Any]:
  """Evaluates a run's final policy; writes eval.json (and video.mp4).

  Args:
    run_dir: a run directory written by train.py.
    episodes: number of episodes (default: the run config's eval_episodes).
    video: render video.mp4 (default: the run config's ``video``).
    seed: PRNG seed of the evaluation episodes' initial states (the same
      seed gives the same initial states as ``agents.rollout.evaluate``
      anywhere else).
    log: where to print progress lines.

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
  import agents  # pylint: disable=import-outside-toplevel
  from agents import rollout  # pylint: disable=import-outside-toplevel
  paths = RunPaths(Path(run_dir))
  resolved = read_config(paths.config)
  episodes = resolved.run.eval_episodes if episodes is None else int(episodes)
  if episodes < 1:
    raise ConfigError(f"--episodes must be >= 1, got {episodes}")
  video = resolved.run.video if video is None else bool(video)
  algo = agents.algorithm(resolved.agent)
  policy_path = paths.policy(resolved.agent)
  if not policy_path.exists():
    raise FileNotFoundError(
        f"{policy_path} does not exist: the run has not finished. "
        f"Continue it with `python train.py --resume {paths.root}`.")
  env = make_env(resolved, differentiable=False)
  length = resolved.episode_length
  record = recorder(env)

  apply = algo.make_apply(env, resolved.agent_config)
  run_eval = jax.jit(lambda params, k: rollout.evaluate(
      env, lambda obs, key: apply(params, obs, key), k, episodes, length, record))

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
  best_path = paths.best_policy(resolved.agent)
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
    frames, fps = render_lib.render_trajectory(env.mj_model, qpos, float(env.dt),
                                               resolved.render, qvel=qvel)
    render_lib.write_video(paths.video, frames, fps)
    result.update(video=paths.video.name, video_episode=i,
                  video_episode_return=float(returns[i]),
                  video_frames=int(frames.shape[0]), video_fps=round(fps, 3),
                  render_s=round(time.perf_counter() - t1, 2))
    log(f"eval: wrote {paths.video} (episode {i}, the median return "
        f"{returns[i]:.1f}; {frames.shape[0]} frames, {result['render_s']:.1f}s)")
  tmp = paths.eval.with_name("eval.json.tmp")
  tmp.write_text(json.dumps(result, indent=2) + "\n")
  os.replace(tmp, paths.eval)
  return result
