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

Other people's envs go through the same functions: ``make("brax/hopper",
differentiable=True)`` or ``make("playground/CartpoleSwingup", ...)``
(:mod:`envs.thirdparty`; Playground is imported only for a ``playground/``
name). :func:`names` lists this project's tasks only.
"""

import brax.envs as _brax_envs

from envs import physics
from typing import Any as _Any

from envs import thirdparty
from envs.base import EnvConfig, MjxEnv, names
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



def env_class(name: str) -> type:
  """The env class of ``name``: a task class, or ``ThirdPartyEnv`` for a
  ``brax/`` / ``playground/`` name (checked).

  Raises:
    ValueError: unknown name, closest names suggested (a missing optional
      package is ``thirdparty.MissingPackageError``, also a ValueError).
  """
  if thirdparty.is_thirdparty(name):
    thirdparty.check_name(name)
    return thirdparty.ThirdPartyEnv
  return _base.env_class(name)


def default_config(name: str) -> _Any:
  """The default config of ``name`` (``EnvConfig`` subclass, or
  ``thirdparty.ThirdPartyConfig``)."""
  if thirdparty.is_thirdparty(name):
    return thirdparty.default_config(name)
  return _base.default_config(name)


def make(name: str, differentiable: bool = False, *, config: _Any = None,
         **overrides: _Any) -> _Any:
  """Builds env ``name`` (a task, ``brax/<name>`` or ``playground/<Name>``);
  see :func:`envs.base.make` and :func:`envs.thirdparty.make`."""
  if thirdparty.is_thirdparty(name):
    return thirdparty.make(name, differentiable, config=config, **overrides)
  return _base.make(name, differentiable, config=config, **overrides)


__all__ = ["BRAX_PREFIX", "EnvConfig", "MjxEnv", "default_config", "env_class", "make", "names",
           "physics", "thirdparty"]
