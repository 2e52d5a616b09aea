"""SAPO agent: ``Config``, ``TrainState``, ``init``, ``make_update``, ``train``."""

from agents.sapo.config import Config
from agents.sapo.train import NAME, TrainState, init, make_update, train

__all__ = ["NAME", "Config", "TrainState", "init", "make_update", "train"]
