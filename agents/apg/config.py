"""APG hyperparameters: the shared ones plus APG's own."""

from __future__ import annotations

import dataclasses

from agents.config import AgentConfig


@dataclasses.dataclass(frozen=True)
class Config(AgentConfig):
  """Analytic policy gradient (truncated backprop through time).

  The shared fields are documented on :class:`agents.config.AgentConfig`;
  APG's ``gamma`` defaults to 1.0 (the plain mean reward of a window).

  Attributes:
    deterministic_rollout: act with ``tanh(mean)`` while training instead of
      a reparameterised sample.
  """

  gamma: float = 1.0
  deterministic_rollout: bool = False
