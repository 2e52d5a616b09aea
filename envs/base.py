"""The env base class: MJX physics plus task logic, native in Brax pipelines.

An :class:`MjxEnv` is a ``brax.envs.base.Env``. Physics stepping is the pure
function :func:`envs.physics.step`; a task module only supplies the model, the
initial-state distribution, the observation, the reward terms and the
termination test.

Modes. ``make(name)`` gives the default mode: MJX's early-exit constraint
solver with the task's ``iterations``/``ls_iterations``. ``make(name,
differentiable=True)`` gives a *different, immutable* env whose host model has
``opt.tolerance = 0`` and the task's ``diff_iterations``/``diff_ls_iterations``
(and, where set, a softer contact ``diff_contact_solref``), so ``jax.grad``
through ``step`` works. There is no mode flag to flip on an existing env.

Reward terms. Every term is a smooth function of the state and action, logged
as ``metrics['reward/<term>']``. Termination (``done``) never enters a reward
term, so no indicator is differentiated.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import mujoco
from brax.envs import base as brax_base
from mujoco import mjx

from envs import physics

ASSET_DIR = os.path.join(os.path.dirname(__file__), "assets")


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EnvConfig:
  """Settings shared by every task. Tasks subclass this with their own fields.

  Attributes:
    episode_length: env steps per episode (the env itself never truncates:
      ``agents/rollout.py`` does for this project's agents and evaluation,
      Brax's ``EpisodeWrapper`` inside Brax's trainers).
    n_frames: physics steps per env step (the control period is
      ``n_frames * timestep``).
    timestep: physics timestep in seconds (written into the host model).
    iterations: constraint-solver iterations in default mode (MJX's while
      loop exits early at ``opt.tolerance``).
    ls_iterations: line-search iterations in default mode.
    diff_iterations: solver iterations in differentiable mode (tolerance 0,
      so exactly this many run).
    diff_ls_iterations: line-search iterations in differentiable mode.
    diff_contact_solref: ``(timeconst, dampratio)`` written into every geom's
      ``solref`` in differentiable mode, or ``None`` to keep the model's
      contacts. A larger time constant is a softer contact.
    diff_contact_distance: contacts from distance in differentiable mode
      (``physics.contacts_from_distance``): gradients see contacts up to this
      far (metres) beyond their margin; forward values are unchanged. 0 = off.
    reset_noise_scale: half-width of the uniform noise added to the initial
      joint positions and velocities.
  """

  episode_length: int = 1000
  n_frames: int = 1
  timestep: float = 0.01
  iterations: int = 4
  ls_iterations: int = 8
  diff_iterations: int = 4
  diff_ls_iterations: int = 4
  diff_contact_solref: tuple[float, float] | None = None
  diff_contact_distance: float = 0.0
  reset_noise_scale: float = 0.1

  def __post_init__(self):
    for name in ("episode_length", "n_frames", "iterations", "ls_iterations",
                 "diff_iterations", "diff_ls_iterations"):
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"{type(self).__name__}.{name} must be a positive integer, got "
            f"{value!r}.")
    if not self.timestep > 0:
      raise ValueError(f"timestep must be > 0, got {self.timestep!r}.")
    if self.diff_contact_solref is not None:
      ref = tuple(self.diff_contact_solref)
      if len(ref) != 2 or not ref[0] > 0:
        raise ValueError(
            "diff_contact_solref must be None or (timeconst > 0, dampratio), "
            f"got {self.diff_contact_solref!r}.")

    if isinstance(self.diff_contact_distance, bool) or not (
        isinstance(self.diff_contact_distance, (int, float))
            and 0 <= self.diff_contact_distance < float("inf")):
      raise ValueError(
          "diff_contact_distance must be a finite number >= 0 (0 = off), got "
          f"{self.diff_contact_distance!r}.")

  @property
  def dt(self) -> float:
    """Control period in seconds: ``n_frames * timestep``."""
    return self.n_frames * self.timestep


def replace_config(config: EnvConfig, overrides: Mapping[str, Any]) -> EnvConfig:
  """Returns ``config`` with ``overrides`` applied.

  Raises:
    ValueError: on a key that is not a field of the config, listing the
      valid keys; or on a value the config rejects.
  """
  valid = [f.name for f in dataclasses.fields(config)]
  unknown = sorted(set(overrides) - set(valid))
  if unknown:
    hints = []
    for key in unknown:
      close = difflib.get_close_matches(key, valid, n=1)
      hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ValueError(
        f"Unknown config key(s) for {type(config).__name__}: {', '.join(hints)}. "
        f"Valid keys: {', '.join(valid)}.")
  return dataclasses.replace(config, **overrides)


# --------------------------------------------------------------------------
# Smooth reward shapes (all C-infinity, nonzero gradient away from the optimum)
# --------------------------------------------------------------------------


def gaussian(x: jax.Array, width: float) -> jax.Array:
  """``exp(-x^2 / (2 width^2))``: 1 at 0, ~0.61 at ``|x| = width``."""
  return jnp.exp(-0.5 * jnp.square(x / width))


def rational(x: jax.Array, width: float) -> jax.Array:
  """``1 / (1 + (x / width)^2)``: 1 at 0, 0.5 at ``|x| = width``, heavy tail.

  The heavy tail keeps a usable gradient far from the optimum, where a
  Gaussian's gradient underflows.
  """
  return 1.0 / (1.0 + jnp.square(x / width))


def safe_norm(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """Euclidean norm whose gradient is finite at ``x = 0``."""
  return jnp.sqrt(jnp.sum(jnp.square(x), axis=axis) + eps)


# --------------------------------------------------------------------------
# The env
# --------------------------------------------------------------------------


def _all_finite(data: mjx.Data) -> jax.Array:
  return jnp.all(jnp.isfinite(data.qpos)) & jnp.all(jnp.isfinite(data.qvel))


class MjxEnv(brax_base.Env):
  """Base class of every task. Immutable once built.

  Subclasses set ``name``, ``xml_file``, ``config_cls`` and implement
  ``_initial_qpos_qvel``, ``_observe`` and ``_reward_terms``; optionally
  ``_combine``, ``_terminated`` and ``_initial_data``.

  Attributes:
    sys: the ``mjx.Model`` stepped (``physics.put_model`` of ``mj_model``).
      It is the one attribute that can be reassigned: Brax's
      ``DomainRandomizationVmapWrapper`` swaps in a randomised model while it
      traces ``reset``/``step``.
    mj_model: the host ``mujoco.MjModel`` with this mode's solver settings.
    config: the task's frozen config.
  """

  name: ClassVar[str] = ""
  xml_file: ClassVar[str] = ""
  config_cls: ClassVar[type[EnvConfig]] = EnvConfig

  _MUTABLE = ("sys",)

  def __init__(self, config: EnvConfig | None = None, differentiable: bool = False):
    """Builds the env.

    Args:
      config: the task config; ``None`` uses ``default_config()``.
      differentiable: build the differentiable-mode env (see module docstring).

    Raises:
      TypeError: if ``config`` is not this task's config class.
    """
    config = self.default_config() if config is None else config
    if not isinstance(config, self.config_cls):
      raise TypeError(
          f"{type(self).__name__} needs a {self.config_cls.__name__}, got "
          f"{type(config).__name__}. Use envs.make({self.name!r}, **overrides).")
    mj_model = mujoco.MjModel.from_xml_path(os.path.join(ASSET_DIR, self.xml_file))
    mj_model.opt.timestep = config.timestep
    if differentiable:
      mj_model = physics.differentiable_model(
          mj_model, config.diff_iterations, config.diff_ls_iterations)
      if config.diff_contact_solref is not None:
        mj_model.geom_solref[:] = tuple(config.diff_contact_solref)
    else:
      mj_model.opt.iterations = config.iterations
      mj_model.opt.ls_iterations = config.ls_iterations
    self.config = config
    self.differentiable = bool(differentiable)
    self.mj_model = mj_model
    self.sys = physics.put_model(mj_model)
    if differentiable and config.diff_contact_distance > 0:
      self.sys = physics.contacts_from_distance(self.sys, config.diff_contact_distance)
    self._init_qpos = jnp.asarray(mj_model.qpos0)
    self._setup()
    self._frozen = True

  def __setattr__(self, name: str, value: Any) -> None:
    if getattr(self, "_frozen", False) and name not in self._MUTABLE:
      raise AttributeError(
          f"{type(self).__name__} is immutable (cannot set {name!r}). Build a "
          f"new env instead: envs.make({self.name!r}, differentiable=..., "
          f"**overrides).")
    object.__setattr__(self, name, value)

  def __repr__(self) -> str:
    mode = "differentiable" if self.differentiable else "default"
    return f"{type(self).__name__}(name={self.name!r}, mode={mode})"

  @classmethod
  def default_config(cls) -> EnvConfig:
    """The task's default config."""
    return cls.config_cls()

  # ------------------------------------------------------------------ Brax API

  @property
  def backend(self) -> str:
    return "mjx"

  @property
  def action_size(self) -> int:
    return int(self.mj_model.nu)

  @functools.cached_property
  def observation_size(self) -> int:
    """Length of the observation vector, from ``jax.eval_shape`` of ``reset``."""
    shape = jax.eval_shape(self.reset, jax.random.PRNGKey(0)).obs.shape
    return int(shape[-1])

  @property
  def dt(self) -> float:
    """Control period in seconds."""
    return self.config.dt

  def reset(self, key: jax.Array) -> brax_base.State:
    """Samples an initial state.

    Args:
      key: a PRNG key (shape ``[2]`` uint32 or a typed key); vmap for a batch.

    Returns:
      A ``brax.envs.base.State`` with ``pipeline_state`` the ``mjx.Data``,
      ``reward = done = 0`` and every ``reward/<term>`` metric at 0.
    """
    data = self._initial_data(key)
    data = physics.forward(self.sys, data)
    obs = self._observe(data)
    zero = jnp.zeros((), dtype=jnp.float32)
    terms = self._reward_terms(data, data, jnp.zeros(self.action_size))
    metrics = {f"reward/{k}": zero for k in terms}
    return brax_base.State(pipeline_state=data, obs=obs, reward=zero,
                           done=zero, metrics=metrics, info={})

  def step(self, state: brax_base.State, action: jax.Array) -> brax_base.State:
    """Advances one env step (``n_frames`` physics steps).

    Args:
      state: the current state.
      action: ``[action_size]``, clipped to ``[-1, 1]`` (every actuator's
        control range).

    Returns:
      The next state. ``done`` is 1.0 when the task terminates or the
      simulation produced a non-finite value (the previous data is then kept
      so no NaN reaches the observation or reward).
    """
    action = jnp.clip(action, -1.0, 1.0)
    prev = state.pipeline_state
    data = prev.replace(ctrl=action)

    def frame(d, _):
      return physics.step(self.sys, d), None

    data, _ = jax.lax.scan(frame, data, None, length=self.config.n_frames)
    finite = _all_finite(data)
    data = jax.tree_util.tree_map(
        lambda new, old: jnp.where(finite, new, old), data, prev)

    terms = self._reward_terms(prev, data, action)
    reward = self._combine(terms).astype(jnp.float32)
    done = (self._terminated(data) | ~finite).astype(jnp.float32)
    # copy, then update: wrappers (Brax's EvalWrapper) keep their own keys here
    metrics = dict(state.metrics)
    metrics.update({f"reward/{k}": v.astype(jnp.float32) for k, v in terms.items()})
    return state.replace(pipeline_state=data, obs=self._observe(data),
                         reward=reward, done=done, metrics=metrics,
                         info=dict(state.info))

  # ------------------------------------------------------------ task interface

  def _setup(self) -> None:
    """Task hook run once at the end of ``__init__`` (look up ids here)."""

  def _initial_data(self, key: jax.Array) -> mjx.Data:
    """The initial ``mjx.Data`` before ``forward``. Override to set mocap etc."""
    qpos, qvel = self._initial_qpos_qvel(key)
    data = mjx.make_data(self.sys)
    return data.replace(qpos=qpos, qvel=qvel)

  def _initial_qpos_qvel(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Default: ``qpos0`` and zero velocity plus uniform noise."""
    k1, k2 = jax.random.split(key)
    s = self.config.reset_noise_scale
    qpos = self._init_qpos + jax.random.uniform(k1, (self.mj_model.nq,), minval=-s, maxval=s)
    qvel = jax.random.uniform(k2, (self.mj_model.nv,), minval=-s, maxval=s)
    return qpos, qvel

  def _observe(self, data: mjx.Data) -> jax.Array:
    raise NotImplementedError

  def _reward_terms(self, prev: mjx.Data, data: mjx.Data,
                    action: jax.Array) -> dict[str, jax.Array]:
    """Named smooth reward terms after a step from ``prev`` to ``data``."""
    raise NotImplementedError

  def _combine(self, terms: dict[str, jax.Array]) -> jax.Array:
    """The scalar reward; default is the sum of the terms."""
    return sum(terms.values())

  def _terminated(self, data: mjx.Data) -> jax.Array:
    """Early-termination test (bool scalar). Default: never."""
    return jnp.zeros((), dtype=bool)


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------

_REGISTRY: dict[str, type[MjxEnv]] = {}


def register(cls: type[MjxEnv]) -> type[MjxEnv]:
  """Class decorator adding a task to the registry under ``cls.name``."""
  if not cls.name or cls.name in _REGISTRY:
    raise ValueError(f"Task name {cls.name!r} is empty or already registered.")
  _REGISTRY[cls.name] = cls
  return cls


def names() -> list[str]:
  """Names of the registered tasks, sorted."""
  return sorted(_REGISTRY)


def env_class(name: str) -> type[MjxEnv]:
  """The task class registered as ``name``.

  Raises:
    ValueError: for an unknown name, suggesting the closest names.
  """
  if not isinstance(name, str) or name not in _REGISTRY:
    close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"Unknown env {name!r}.{hint} Registered envs: {', '.join(names())}.")
  return _REGISTRY[name]


def default_config(name: str) -> EnvConfig:
  """The default config of task ``name``."""
  return env_class(name).default_config()


def make(name: str, differentiable: bool = False, *,
         config: EnvConfig | None = None, **overrides: Any) -> MjxEnv:
  """Builds a task env.

  Args:
    name: a registered task name (see :func:`names`).
    differentiable: if True, the differentiable-mode env (tolerance 0, the
      task's ``diff_*`` solver settings); a separate immutable object.
    config: the task's config (e.g. a resolved preset's ``env_config``);
      default :func:`default_config`.
    **overrides: config fields to change, e.g. ``n_frames=2``.

  Returns:
    The env, a ``brax.envs.base.Env``.

  Raises:
    ValueError: unknown name (closest names suggested) or unknown config key
      (valid keys listed).
  """
  cls = env_class(name)
  if not isinstance(differentiable, bool):
    raise TypeError(f"differentiable must be a bool, got {differentiable!r}.")
  if config is not None and not isinstance(config, type(cls.default_config())):
    raise TypeError(f"config must be a {type(cls.default_config()).__name__} "
                    f"(envs.default_config({name!r})), got {type(config).__name__}")
  config = replace_config(cls.default_config() if config is None else config,
                          overrides)
  return cls(config, differentiable=differentiable)


def brax_factory(name: str) -> Callable[..., MjxEnv]:
  """A constructor for ``brax.envs.register_environment``.

  It accepts ``differentiable``, config overrides and ``backend='mjx'`` (the
  only backend these envs have).
  """

  def factory(backend: str = "mjx", differentiable: bool = False, **overrides):
    if backend != "mjx":
      raise ValueError(
          f"envs.{name} runs only on MJX; got backend={backend!r}. Pass "
          f"backend='mjx' or leave it out.")
    return make(name, differentiable=differentiable, **overrides)

  factory.__name__ = f"make_{name}"
  return factory
