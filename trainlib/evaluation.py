"""Deterministic evaluation of a saved run: returns, eval.json and video.mp4."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import configs
from configs import ConfigError, Resolved
from trainlib import render as render_lib
from trainlib.rundir import RunPaths, read_config

__all__ = ["env_overrides", "episode_length", "evaluate_run",
           "load_policy_fn", "make_env", "rollout_episodes"]

PolicyFn = Callable[[jax.Array, jax.Array], jax.Array]


def env_overrides(resolved: Resolved) -> dict[str, Any]:
  """Env config fields that differ from the task's defaults (for envs.make)."""
  import envs  # pylint: disable=import-outside-toplevel
  default = configs.to_dict(envs.default_config(resolved.env_name))
  current = configs.to_dict(resolved.env_config)
  return {k: getattr(resolved.env_config, k) for k, v in current.items()
          if default.get(k) != v}


def make_env(resolved: Resolved, differentiable: bool = False):
  """The run's env, built with ``envs.make`` and the run's env config."""
  import envs  # pylint: disable=import-outside-toplevel
  return envs.make(resolved.env_name, differentiable=differentiable,
                   **env_overrides(resolved))


def episode_length(resolved: Resolved) -> int:
  """The agent config's episode_length if set, else the env config's."""
  value = getattr(resolved.agent_config, "episode_length", None)
  return int(value) if value else int(resolved.env_config.episode_length)


def load_policy_fn(paths: RunPaths, resolved: Resolved) -> PolicyFn:
  """The run's final deterministic policy as ``fn(obs, key) -> action``.

  Raises:
    FileNotFoundError: the run has no final policy yet (training not done).
  """
  if resolved.agent == "ppo":
    return _load_ppo_policy(paths, resolved)
  from agents import checkpoint  # pylint: disable=import-outside-toplevel
  from agents import networks  # pylint: disable=import-outside-toplevel
  if not paths.policy_file.exists():
    raise FileNotFoundError(
        f"{paths.policy_file} does not exist: the run has not finished. "
        f"Continue it with `python train.py --resume {paths.root}`.")
  params = checkpoint.load_policy(paths.policy_file)
  return networks.make_policy(params, deterministic=True)


def _load_ppo_policy(paths: RunPaths, resolved: Resolved) -> PolicyFn:
  """Rebuilds the Brax PPO policy from the run's config and saved params.

  (Brax 0.14.2's ``ppo.checkpoint.load_policy`` fails on its own saved config
  when ``mean_kernel_init_fn`` is None, so the network is rebuilt here from
  ``configs.PPOConfig``.)
  """
  from brax.training.acme import running_statistics  # pylint: disable=import-outside-toplevel
  from brax.training.agents.ppo import checkpoint as ppo_checkpoint  # pylint: disable=import-outside-toplevel
  from brax.training.agents.ppo import networks as ppo_networks  # pylint: disable=import-outside-toplevel
  steps = sorted((p for p in paths.policy_dir.glob("[0-9]*") if p.is_dir()),
                 key=lambda p: int(p.name))
  if not steps:
    raise FileNotFoundError(
        f"{paths.policy_dir} holds no policy: the run has not finished. "
        f"Continue it with `python train.py --resume {paths.root}`.")
  config: configs.PPOConfig = resolved.agent_config
  env = make_env(resolved)
  network = ppo_networks.make_ppo_networks(
      env.observation_size, env.action_size,
      preprocess_observations_fn=(running_statistics.normalize
                                  if config.normalize_observations
                                  else lambda x, y: x),
      policy_hidden_layer_sizes=tuple(config.policy_hidden_layer_sizes),
      value_hidden_layer_sizes=tuple(config.value_hidden_layer_sizes))
  params = ppo_checkpoint.load(steps[-1])
  inference = ppo_networks.make_inference_fn(network)(
      tuple(params[:2]), deterministic=True)
  dummy = jax.random.PRNGKey(0)
  return lambda obs, key: inference(obs, dummy)[0]


def rollout_episodes(env, policy: PolicyFn, key: jax.Array, episodes: int,
                     length: int) -> dict[str, np.ndarray]:
  """Runs ``episodes`` episodes of ``length`` steps in parallel.

  An episode ends at its first ``done``; its state is frozen from then on, so
  later steps neither add reward nor move the robot.

  Returns:
    ``returns [N]``, ``lengths [N]`` and ``qpos [length + 1, nq]`` /
    ``qvel [length + 1, nv]`` of episode 0 (row 0 is the reset state).
  """
  def one(k):
    state = env.reset(k)

    def step(carry, _):
      state, done, ret, n = carry
      action = policy(state.obs, None)
      nxt = env.step(state, action)
      nxt = jax.tree.map(lambda a, b: jnp.where(done, a, b), state, nxt)
      ret = ret + jnp.where(done, 0.0, nxt.reward)
      n = n + jnp.where(done, 0, 1)
      done = jnp.logical_or(done, nxt.done > 0)
      ps = nxt.pipeline_state
      return (nxt, done, ret, n), (ps.qpos, ps.qvel)

    init = (state, jnp.zeros((), bool), jnp.zeros(()), jnp.zeros((), jnp.int32))
    (_, _, ret, n), (qpos, qvel) = jax.lax.scan(step, init, None, length)
    ps = state.pipeline_state
    qpos = jnp.concatenate([ps.qpos[None], qpos])
    qvel = jnp.concatenate([ps.qvel[None], qvel])
    return ret, n, qpos, qvel

  keys = jax.random.split(key, episodes)
  ret, n, qpos, qvel = jax.jit(jax.vmap(one))(keys)
  ret, n, qpos, qvel = jax.device_get((ret, n, qpos, qvel))
  return {"returns": np.asarray(ret), "lengths": np.asarray(n),
          "qpos": np.asarray(qpos[0]), "qvel": np.asarray(qvel[0])}


def evaluate_run(run_dir: str | Path, episodes: int | None = None,
                 video: bool | None = None, seed: int = 1_000_003,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
  """Evaluates a run's final policy; writes eval.json (and video.mp4).

  Args:
    run_dir: a run directory written by train.py.
    episodes: number of episodes (default: the run config's eval_episodes).
    video: render video.mp4 (default: the run config's ``video``).
    seed: PRNG seed of the evaluation episodes' initial states.
    log: where to print progress lines.

  Returns:
    The eval.json content: return_mean, return_std, episodes, video (file
    name or None), returns, episode_length, plus timings.

  Raises:
    ConfigError: not a run directory / invalid config.
    FileNotFoundError: the run has no final policy.
    RenderingUnavailableError: video requested but no GL backend works.
  """
  paths = RunPaths(Path(run_dir))
  resolved = read_config(paths.config)
  episodes = resolved.run.eval_episodes if episodes is None else int(episodes)
  if episodes < 1:
    raise ConfigError(f"--episodes must be >= 1, got {episodes}")
  video = resolved.run.video if video is None else bool(video)
  policy = load_policy_fn(paths, resolved)
  env = make_env(resolved, differentiable=False)
  length = episode_length(resolved)

  t0 = time.perf_counter()
  out = rollout_episodes(env, policy, jax.random.PRNGKey(seed), episodes,
                         length)
  rollout_s = time.perf_counter() - t0
  returns = out["returns"]
  result: dict[str, Any] = {
      "return_mean": float(np.mean(returns)),
      "return_std": float(np.std(returns)),
      "episodes": episodes,
      "video": None,
      "returns": [float(r) for r in returns],
      "episode_lengths": [int(n) for n in out["lengths"]],
      "episode_length": length,
      "deterministic": True,
      "rollout_s": round(rollout_s, 2),
  }
  log(f"eval: return {result['return_mean']:.1f} ± {result['return_std']:.1f}"
      f" over {episodes} episodes of up to {length} steps "
      f"({rollout_s:.1f}s incl. compile)")
  if video:
    t1 = time.perf_counter()
    n = int(out["lengths"][0])
    frames, fps = render_lib.render_trajectory(
        env.mj_model, out["qpos"][:n + 1], float(env.dt), resolved.render,
        qvel=out["qvel"][:n + 1])
    render_lib.write_video(paths.video, frames, fps)
    result["video"] = paths.video.name
    result["video_frames"] = int(frames.shape[0])
    result["video_fps"] = round(fps, 3)
    result["render_s"] = round(time.perf_counter() - t1, 2)
    log(f"eval: wrote {paths.video} ({frames.shape[0]} frames, "
        f"{result['render_s']:.1f}s)")
  tmp = paths.eval.with_name("eval.json.tmp")
  tmp.write_text(json.dumps(result, indent=2) + "\n")
  os.replace(tmp, paths.eval)
  return result
