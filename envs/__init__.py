"""MJX environment suite with a differentiable mode, native in Brax pipelines.

    import envs
    env = envs.make("hopper")                         # default mode
    denv = envs.make("hopper", differentiable=True)   # jax.grad through step
    envs.names()                                      # registered tasks

Importing this package also registers every task with
``brax.envs.register_environment`` as ``"diffrl/<task>"``::

    brax.envs.get_environment("diffrl/hopper", differentiable=True)

Brax's own names (``"hopper"``, ``"ant"``, ...) are left as they are: importing
this project never changes what they return.
"""

import brax.envs as _brax_envs

from envs import physics
from envs.base import EnvConfig, MjxEnv, default_config, env_class, make, names
from envs import (  # noqa: F401  (importing registers the tasks)
    acrobot,
    ant,
    cartpole,
    half_cheetah,
    hopper,
    humanoid,
    pendulum,
    reacher,
    swimmer,
)
from envs import base as _base

BRAX_PREFIX = "diffrl/"
for _name in names():
  _brax_envs.register_environment(BRAX_PREFIX + _name, _base.brax_factory(_name))

__all__ = ["BRAX_PREFIX", "EnvConfig", "MjxEnv", "default_config", "env_class", "make", "names",
           "physics"]
