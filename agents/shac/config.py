"""SHAC hyperparameters: the shared ones plus the critic's."""

from __future__ import annotations

import dataclasses

from agents.config import AgentConfig


@dataclasses.dataclass(frozen=True)
class Config(AgentConfig):
  """Short-Horizon Actor-Critic. The shared fields (``learning_rate`` is the
  actor's) are documented on :class:`agents.config.AgentConfig`.

  Attributes:
    lam: TD(lambda) coefficient of the critic targets.
    tau: soft target-critic update ``target <- (1 - tau) * target + tau * critic``
      (the SHAC paper's ``alpha = 1 - tau = 0.2``).
    critic_learning_rate: initial Adam rate of the critic (decays linearly to
      ``end_learning_rate``).
    critic_epochs: passes over each window's data per update.
    critic_minibatches: minibatches per pass; must divide ``horizon * num_envs``.
    critic_hidden_sizes: value MLP widths (ELU + LayerNorm).
    contact_truncation: AHAC-style truncation: cut the actor's
      backpropagation wherever a step makes or breaks a contact, and
      bootstrap the actor loss from the target critic there
      (``agents.rollout.rollout(cut_at_contact=True)``). Needs an MJX env
      with contacts. Off by default; the half_cheetah, ant and humanoid
      presets turn it on (measured per task: docs/benchmarks.md,
      docs/training.md).
    terminal_gradient: at an early termination the actor loss keeps the
      value 0 but takes the target critic's gradient at the terminal state
      (:func:`agents.shac.losses.actor_loss`); off by default, on in the
      hopper preset (measured in docs/benchmarks.md, "Seed table").
  """

  lam: float = 0.95
  tau: float = 0.8
  critic_learning_rate: float = 2e-3
  critic_epochs: int = 16
  critic_minibatches: int = 4
  critic_hidden_sizes: tuple[int, ...] = (64, 64)
  contact_truncation: bool = False
  terminal_gradient: bool = False

  def __post_init__(self):
    super().__post_init__()
    # agents.shac.Config, or the subclass's own name (agents.sapo.Config)
    name = type(self).__module__.rsplit(".", 1)[0] + ".Config"
    for field in ("critic_epochs", "critic_minibatches"):
      if int(getattr(self, field)) < 1:
        raise ValueError(f"{name}.{field} must be >= 1, got "
                         f"{getattr(self, field)}")
    if not 0.0 <= self.lam <= 1.0:
      raise ValueError(f"{name}.lam must be in [0, 1], got {self.lam}")
    if not 0.0 < self.tau <= 1.0:
      raise ValueError(f"{name}.tau must be in (0, 1], got {self.tau}")
    if (self.horizon * self.num_envs) % self.critic_minibatches:
      raise ValueError(
          f"{name}.critic_minibatches={self.critic_minibatches} "
          f"must divide horizon * num_envs = {self.horizon * self.num_envs}")

  @property
  def critic_minibatch_size(self) -> int:
    """Samples per critic minibatch."""
    return self.horizon * self.num_envs // self.critic_minibatches
