"""APG hyperparameters."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
  """Analytic policy gradient (truncated backprop through time) configuration.

  Seed-independent; pass the PRNG key to ``train``.

  Attributes:
    num_timesteps: total env steps (``num_updates`` windows of
      ``num_envs * horizon`` steps; rounded down).
    num_envs: parallel envs; must be a multiple of ``len(jax.devices())``.
    horizon: steps per window; gradients span one window, the env state
      carries across windows without gradient.
    episode_length: time limit; ``None`` uses the env's ``episode_length``
      attribute, or 1000.
    gamma: per-step discount inside a window (1.0 = plain mean reward).
    learning_rate: initial Adam rate (decays linearly to ``end_learning_rate``).
    end_learning_rate: final rate.
    adam_betas: Adam ``(b1, b2)``.
    max_grad_norm: global-norm clip.
    hidden_sizes: policy MLP widths (ELU + LayerNorm).
    init_log_std: initial log std of the pre-tanh Gaussian.
    deterministic_rollout: act with ``tanh(mean)`` while training instead of
      a reparameterised sample.
    normalize_observations: keep running observation statistics.
    log_every: updates per ``progress_fn`` call.
  """

  num_timesteps: int = 1_000_000
  num_envs: int = 64
  horizon: int = 32
  episode_length: int | None = None
  gamma: float = 1.0
  learning_rate: float = 2e-3
  end_learning_rate: float = 0.0
  adam_betas: tuple[float, float] = (0.7, 0.95)
  max_grad_norm: float = 1.0
  hidden_sizes: tuple[int, ...] = (64, 64)
  init_log_std: float = -1.0
  deterministic_rollout: bool = False
  normalize_observations: bool = True
  log_every: int = 10

  def __post_init__(self):
    for name in ("num_timesteps", "num_envs", "horizon", "log_every"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"Config.{name} must be >= 1, got {getattr(self, name)}")
    if self.episode_length is not None and self.episode_length < 1:
      raise ValueError(f"Config.episode_length must be >= 1 or None, got {self.episode_length}")
    if not 0.0 < self.gamma <= 1.0:
      raise ValueError(f"Config.gamma must be in (0, 1], got {self.gamma}")
    if self.num_timesteps < self.steps_per_update:
      raise ValueError(f"Config.num_timesteps={self.num_timesteps} is less than one "
                       f"update (num_envs * horizon = {self.steps_per_update})")

  @property
  def steps_per_update(self) -> int:
    """Env steps per update: ``num_envs * horizon``."""
    return self.num_envs * self.horizon

  @property
  def num_updates(self) -> int:
    """Updates in the run: ``num_timesteps // steps_per_update``."""
    return self.num_timesteps // self.steps_per_update
