"""What a training run is, as data: the run settings (:class:`RunConfig`),
the video settings (:class:`RenderConfig`) and everything a run needs,
validated (:class:`Resolved`). The agents' and envs' own configs live next
to them (``agents.<name>.Config``, ``envs.default_config(name)``)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

__all__ = ["BACKENDS", "ConfigError", "LaunchError", "RenderConfig", "Resolved", "RunConfig"]

# Keys of a per-backend preset value (``num_envs: {cpu: 64, gpu: 1024}``).
BACKENDS = ("cpu", "gpu")


class ConfigError(ValueError):
  """A preset, run config, flag or launch that cannot work; the message
  names the fix."""


class LaunchError(ConfigError):
  """A multi-process launch that cannot work (names the fix)."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Settings of a training run that are not algorithm hyperparameters.

  (``num_timesteps`` and ``log_every`` are fields of each agent's config.)
  An agent that does not use a field says so in its table row
  (``agents.Algorithm.unused_run_fields``); setting such a field is an error.

  Attributes:
    seed: PRNG seed of the run.
    checkpoint_every: agent updates between orbax checkpoints (0 = only at
      the end).
    eval_episodes: episodes of the final deterministic evaluation, and of
      the periodic one (``eval_every``).
    eval_every: updates between deterministic evaluations during training
      (0 = none); the best-evaluated policy is kept as ``policy_best``.
    video: render video.mp4 of the median-return evaluation episode.
    portable_determinism: cap XLA:CPU's instruction set at AVX2 so that the
      same seed trains bit-identically on any x86-64 CPU with AVX2
      (trainlib/startup.py; measured effect in docs/training.md,
      "Reproducibility").
    gradient_check: before SHAC or APG trains, check that the reward's
      gradient with respect to the actions is finite and nonzero
      (``agents.health``: one compile, run beside the agent's first
      update compile); the run stops with a one-line error if it is not. The result is written
      to ``gradient_check.json``. ``--no-gradient-check`` skips it. PPO
      does not differentiate the env and does not use it.
  """
  seed: int = 0
  checkpoint_every: int = 20
  eval_episodes: int = 10
  eval_every: int = 100
  video: bool = True
  portable_determinism: bool = False
  gradient_check: bool = True

  def __post_init__(self):
    if self.checkpoint_every < 0:
      raise ConfigError(f"checkpoint_every must be >= 0, got "
                        f"{self.checkpoint_every}")
    if self.eval_every < 0:
      raise ConfigError(f"eval_every must be >= 0, got {self.eval_every}")
    if self.eval_episodes < 1:
      raise ConfigError(f"eval_episodes must be >= 1, got "
                        f"{self.eval_episodes}")


@dataclasses.dataclass(frozen=True)
class RenderConfig:
  """How evaluation videos are rendered (trainlib/media.py).

  Attributes:
    width: frame width in pixels (a multiple of 16 avoids resizing).
    height: frame height in pixels (a multiple of 16 avoids resizing).
    fps: video frame rate; simulation states are subsampled to match it.
    distance: camera distance in metres; 0 picks 2 x the model's extent.
    elevation: camera elevation in degrees (negative looks down).
    azimuth: camera azimuth in degrees.
    track: "auto" tracks the root body when it can translate, "body" always
      tracks the root body, "fixed" never tracks.
    shadows: render shadows and reflections (about 10x slower with the
      software rasteriser used on CPU-only machines).
  """
  width: int = 320
  height: int = 240
  fps: int = 30
  distance: float = 0.0
  elevation: float = -20.0
  azimuth: float = 90.0
  track: Literal["auto", "body", "fixed"] = "auto"
  shadows: bool = False

  def __post_init__(self):
    if self.track not in ("auto", "body", "fixed"):
      raise ValueError(f"render.track must be one of 'auto', 'body', 'fixed'; "
                       f"got {self.track!r}")
    if self.width <= 0 or self.height <= 0 or self.fps <= 0:
      raise ValueError("render.width, render.height and render.fps must be > 0")


@dataclasses.dataclass(frozen=True)
class Resolved:
  """Everything a run needs, validated: preset values over dataclass defaults.

  Attributes:
    env_name: registered env name.
    agent: a name in ``agents.ALGORITHMS``.
    run: run settings.
    agent_config: an instance of the agent's ``config_class``.
    env_config: an instance of the env's config dataclass.
    render: video settings.
    backend: "cpu" or "gpu": whose per-backend preset values applied (None:
      not recorded).
  """
  env_name: str
  agent: str
  run: RunConfig
  agent_config: Any
  env_config: Any
  render: RenderConfig
  backend: str | None = None
