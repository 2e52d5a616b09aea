"""SAPO hyperparameters: SHAC's plus the critic ensemble's and the temperature's."""

from __future__ import annotations

import dataclasses

from agents.shac.config import Config as ShacConfig


@dataclasses.dataclass(frozen=True)
class Config(ShacConfig):
  """Soft Analytic Policy Optimization (Xing, Luk and Oh, "Stabilizing
  Reinforcement Learning in Differentiable Multiphysics Simulation", ICLR
  2025): SHAC with a maximum-entropy objective. The shared fields are
  documented on :class:`agents.config.AgentConfig`, the critic's (``lam``,
  ``tau``, ``critic_learning_rate``, ``critic_epochs``,
  ``critic_minibatches``, ``critic_hidden_sizes``) and
  ``contact_truncation`` on :class:`agents.shac.Config`; here they apply to
  each of the ``num_critics`` critics.

  Attributes:
    num_critics: value networks trained on the same soft TD(lambda)
      targets; every bootstrap value (actor loss and targets) is the minimum
      over their target networks (clipped double critics with 2).
    init_temperature: initial entropy temperature ``alpha`` (> 0). 0.1 is
      this project's choice, not a value taken from the paper.
    target_entropy: entropy the learned temperature steers the policy's
      towards, in nats; None uses ``-action_size``, the heuristic of Soft
      Actor-Critic (Haarnoja et al., 2018) (see :meth:`target_entropy_for`).
    temperature_learning_rate: initial Adam rate of ``log(alpha)`` (one step
      per update; decays linearly to ``end_learning_rate``).
  """

  num_critics: int = 2
  init_temperature: float = 0.1
  target_entropy: float | None = None
  temperature_learning_rate: float = 5e-3

  def __post_init__(self):
    super().__post_init__()
    if int(self.num_critics) < 1:
      raise ValueError(f"agents.sapo.Config.num_critics must be >= 1, got "
                       f"{self.num_critics}")
    if not self.init_temperature > 0.0:
      raise ValueError(f"agents.sapo.Config.init_temperature must be > 0, got "
                       f"{self.init_temperature}")
    if not self.temperature_learning_rate >= 0.0:
      raise ValueError(f"agents.sapo.Config.temperature_learning_rate must be "
                       f">= 0, got {self.temperature_learning_rate}")

  def target_entropy_for(self, action_size: int) -> float:
    """``target_entropy``, or ``-action_size`` when it is None."""
    if self.target_entropy is None:
      return -float(action_size)
    return float(self.target_entropy)
