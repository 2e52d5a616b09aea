"""SHAC hyperparameters."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
  """SHAC configuration (seed-independent; pass the PRNG key to ``train``).

  Attributes:
    num_timesteps: total env steps of the run (``num_updates`` updates of
      ``num_envs * horizon`` steps each; rounded down).
    num_envs: parallel envs; must be a multiple of ``len(jax.devices())``.
    horizon: ``h``, steps per actor window (gradients span one window).
    episode_length: time limit in steps; ``None`` uses the env's
      ``episode_length`` attribute, or 1000.
    gamma: discount.
    lam: TD(lambda) coefficient of the critic targets.
    tau: soft target-critic update ``target <- (1 - tau) * target + tau * critic``
      (the SHAC paper's ``alpha = 1 - tau = 0.2``).
    actor_learning_rate: initial Adam rate of the policy (decays linearly).
    critic_learning_rate: initial Adam rate of the critic (decays linearly).
    end_learning_rate: rate reached at the end of the run (both nets).
    adam_betas: Adam ``(b1, b2)``.
    max_grad_norm: global-norm clip for actor and critic gradients.
    critic_epochs: passes over each window's data per update.
    critic_minibatches: minibatches per pass; must divide ``horizon * num_envs``.
    actor_hidden_sizes: policy MLP widths (ELU + LayerNorm).
    critic_hidden_sizes: value MLP widths (ELU + LayerNorm).
    init_log_std: initial log std of the pre-tanh Gaussian.
    normalize_observations: keep running observation statistics.
    log_every: updates per ``progress_fn`` call.
  """

  num_timesteps: int = 1_000_000
  num_envs: int = 64
  horizon: int = 32
  episode_length: int | None = None
  gamma: float = 0.99
  lam: float = 0.95
  tau: float = 0.8
  actor_learning_rate: float = 2e-3
  critic_learning_rate: float = 2e-3
  end_learning_rate: float = 0.0
  adam_betas: tuple[float, float] = (0.7, 0.95)
  max_grad_norm: float = 1.0
  critic_epochs: int = 16
  critic_minibatches: int = 4
  actor_hidden_sizes: tuple[int, ...] = (64, 64)
  critic_hidden_sizes: tuple[int, ...] = (64, 64)
  init_log_std: float = -1.0
  normalize_observations: bool = True
  log_every: int = 10

  def __post_init__(self):
    for name in ("num_timesteps", "num_envs", "horizon", "critic_epochs",
                 "critic_minibatches", "log_every"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"Config.{name} must be >= 1, got {getattr(self, name)}")
    if self.episode_length is not None and self.episode_length < 1:
      raise ValueError(f"Config.episode_length must be >= 1 or None, got {self.episode_length}")
    if not 0.0 < self.gamma <= 1.0:
      raise ValueError(f"Config.gamma must be in (0, 1], got {self.gamma}")
    if not 0.0 <= self.lam <= 1.0:
      raise ValueError(f"Config.lam must be in [0, 1], got {self.lam}")
    if not 0.0 < self.tau <= 1.0:
      raise ValueError(f"Config.tau must be in (0, 1], got {self.tau}")
    if self.num_timesteps < self.steps_per_update:
      raise ValueError(f"Config.num_timesteps={self.num_timesteps} is less than one "
                       f"update (num_envs * horizon = {self.steps_per_update})")
    if (self.horizon * self.num_envs) % self.critic_minibatches:
      raise ValueError(f"Config.critic_minibatches={self.critic_minibatches} must "
                       f"divide horizon * num_envs = {self.horizon * self.num_envs}")

  @property
  def steps_per_update(self) -> int:
    """Env steps per update: ``num_envs * horizon``."""
    return self.num_envs * self.horizon

  @property
  def num_updates(self) -> int:
    """Updates in the run: ``num_timesteps // steps_per_update``."""
    return self.num_timesteps // self.steps_per_update

  @property
  def critic_minibatch_size(self) -> int:
    """Samples per critic minibatch."""
    return self.horizon * self.num_envs // self.critic_minibatches
