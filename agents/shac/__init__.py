"""SHAC agent: ``Config``, ``TrainState``, ``init``, ``make_update``, ``train``."""

from agents.shac.config import Config
from agents.shac.train import NAME, TrainState, init, make_update, train

__all__ = ["NAME", "Config", "TrainState", "init", "make_update", "train"]
