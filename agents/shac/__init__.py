"""SHAC agent: ``Config``, ``TrainState``, ``train``, ``make_policy``, ``init``."""

from agents.shac.config import Config
from agents.shac.train import TrainState, init, make_policy, make_update, policy_params, train

__all__ = ["Config", "TrainState", "init", "make_policy", "make_update", "policy_params", "train"]
