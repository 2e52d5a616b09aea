"""What a training run is: :class:`RunConfig` (settings that are not
hyperparameters) and :class:`Resolved` (everything a run needs, validated)."""

from __future__ import annotations

import dataclasses
from typing import Any

from trainlib.typed_yaml import ConfigError

__all__ = ["Resolved", "RunConfig"]


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Settings of a training run that are not algorithm hyperparameters.

  (``num_timesteps`` and ``log_every`` are fields of each agent's config.)

  Attributes:
    seed: PRNG seed of the run.
    checkpoint_every: agent updates between orbax checkpoints (APG/SHAC; 0 =
      only at the end); PPO checkpoints at each of its ``num_evals`` evals.
    eval_episodes: episodes of the final deterministic evaluation, and of
      the periodic one (``eval_every``).
    eval_every: SHAC/APG: updates between deterministic evaluations during
      training (0 = none); the best-evaluated policy is kept as
      ``policy_best.msgpack``. PPO evaluates ``num_evals`` times instead.
    video: render video.mp4 of the median-return evaluation episode.
    portable_determinism: cap XLA:CPU's instruction set at AVX2 so that the
      same seed trains bit-identically on any x86-64 CPU with AVX2 (see
      trainlib/portable.py; its measured effect is in docs/training.md,
      "Reproducibility").
  """
  seed: int = 0
  checkpoint_every: int = 20
  eval_episodes: int = 10
  eval_every: int = 100
  video: bool = True
  portable_determinism: bool = False

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
class Resolved:
  """Everything a run needs, validated: preset values over dataclass defaults.

  Attributes:
    env_name: registered env name.
    agent: a name in ``agents.ALGORITHMS``.
    run: run settings.
    agent_config: an instance of the agent's ``config_class``.
    env_config: an instance of the env's config dataclass.
    render: video settings (``trainlib.render.RenderConfig``).
    backend: "cpu" or "gpu": whose per-backend preset values applied (None:
      not recorded).
  """
  env_name: str
  agent: str
  run: RunConfig
  agent_config: Any
  env_config: Any
  render: Any
  backend: str | None = None

  @property
  def episode_length(self) -> int:
    """The agent config's ``episode_length`` if set, else the env config's."""
    value = getattr(self.agent_config, "episode_length", None)
    return int(value) if value else int(self.env_config.episode_length)
