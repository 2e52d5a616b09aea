"""APG agent: ``Config``, ``TrainState``, ``init``, ``make_update``, ``train``."""

from agents.apg.config import Config
from agents.apg.train import NAME, TrainState, init, make_update, train

__all__ = ["NAME", "Config", "TrainState", "init", "make_update", "train"]
