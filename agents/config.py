"""Hyperparameters every agent shares, in one frozen dataclass.

``agents.shac.Config`` and ``agents.apg.Config`` subclass :class:`AgentConfig`
and add only their own fields; Brax PPO (``agents.ppo.Config``) keeps Brax's
hyperparameters but uses the same names for what it shares (``num_timesteps``,
``num_envs``, ``learning_rate``, ``policy_hidden_sizes``, ...). The command
line is generated from these fields, so the flags are the same across agents.
"""

from __future__ import annotations

import dataclasses

# Names used before the configs were unified -> today's name. A preset key or
# command-line flag with an old name is an error that names the new one.
RENAMED = {
    "actor_learning_rate": "learning_rate",
    "actor_hidden_sizes": "policy_hidden_sizes",
    "hidden_sizes": "policy_hidden_sizes",
    "policy_hidden_layer_sizes": "policy_hidden_sizes",
    "value_hidden_layer_sizes": "value_hidden_sizes",
}


@dataclasses.dataclass(frozen=True)
class AgentConfig:
  """What SHAC and APG share (seed-independent; pass the PRNG key to ``train``).

  Attributes:
    num_timesteps: total env steps of the run (``num_updates`` updates of
      ``num_envs * horizon`` steps each; rounded down).
    num_envs: parallel envs; must be a multiple of ``len(jax.devices())``.
    horizon: ``h``, steps per update window (gradients span one window; the
      env state carries into the next window without gradient).
    episode_length: time limit in steps; ``None`` uses the env's
      ``episode_length`` attribute, or 1000.
    gamma: per-step discount.
    learning_rate: initial Adam rate of the policy (decays linearly to
      ``end_learning_rate``).
    end_learning_rate: rate reached at the end of the run.
    adam_betas: Adam ``(b1, b2)``.
    max_grad_norm: global-norm clip of every gradient.
    policy_hidden_sizes: policy MLP widths (ELU + LayerNorm).
    init_log_std: initial log std of the pre-tanh Gaussian policy.
    normalize_observations: keep running observation statistics.
    log_every: updates per ``progress_fn`` call.
  """

  num_timesteps: int = 1_000_000
  num_envs: int = 64
  horizon: int = 32
  episode_length: int | None = None
  gamma: float = 0.99
  learning_rate: float = 2e-3
  end_learning_rate: float = 0.0
  adam_betas: tuple[float, float] = (0.7, 0.95)
  max_grad_norm: float = 1.0
  policy_hidden_sizes: tuple[int, ...] = (64, 64)
  init_log_std: float = -1.0
  normalize_observations: bool = True
  log_every: int = 10

  def __post_init__(self):
    name = type(self).__module__.rsplit(".", 1)[0] + ".Config"
    for field in ("num_timesteps", "num_envs", "horizon", "log_every"):
      if int(getattr(self, field)) < 1:
        raise ValueError(f"{name}.{field} must be >= 1, got {getattr(self, field)}")
    if self.episode_length is not None and self.episode_length < 1:
      raise ValueError(f"{name}.episode_length must be >= 1 or None, got "
                       f"{self.episode_length}")
    if not 0.0 < self.gamma <= 1.0:
      raise ValueError(f"{name}.gamma must be in (0, 1], got {self.gamma}")
    if self.num_timesteps < self.steps_per_update:
      raise ValueError(f"{name}.num_timesteps={self.num_timesteps} is less than "
                       f"one update (num_envs * horizon = {self.steps_per_update})")

  @property
  def steps_per_update(self) -> int:
    """Env steps per update: ``num_envs * horizon``."""
    return self.num_envs * self.horizon

  @property
  def num_updates(self) -> int:
    """Updates in the run: ``num_timesteps // steps_per_update``."""
    return self.num_timesteps // self.steps_per_update
