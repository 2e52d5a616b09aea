"""APG agent: ``Config``, ``TrainState``, ``train``, ``make_policy``, ``init``."""

from agents.apg.config import Config
from agents.apg.train import TrainState, init, make_policy, make_update, policy_params, train

__all__ = ["Config", "TrainState", "init", "make_policy", "make_update", "policy_params", "train"]
