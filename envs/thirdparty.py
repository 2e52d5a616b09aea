"""Other people's MJX envs as this project's envs: ``brax/<name>`` and
``playground/<Name>``.

    env = envs.make("brax/hopper", differentiable=True)
    env = envs.make("playground/CartpoleSwingup", differentiable=True)

``brax/<name>`` is ``brax.envs.get_environment(name, backend="mjx")`` (any
name in Brax's registry except this project's own ``diffrl/`` names and
``fast``); ``playground/<Name>`` is one of MuJoCo Playground's DM Control
suite envs (``mujoco_playground.dm_control_suite``, the optional
``playground`` extra: ``pip install -e '.[playground]'``), built with
``impl="jax"`` (MJX on JAX; Playground's default, Warp, needs a GPU).
Playground is imported only when a ``playground/`` env is asked for.

Modes. The default mode is the upstream env as its authors configured it.
The differentiable mode is the same env with its host model at
``opt.tolerance = 0`` and ``ThirdPartyConfig.diff_iterations`` /
``diff_ls_iterations``, and with every ``reset`` and ``step`` traced inside
:func:`envs.physics.patch_mjx`, so the upstream code's unmodified
``mjx.step`` runs this project's fixed-iteration solver and ``jax.grad``
works through it. Rewards, observations and termination are the upstream
env's, unchanged.

:class:`ThirdPartyEnv` is a ``brax.envs.base.Env`` (Playground's ``State``
is converted to Brax's, ``pipeline_state`` = ``mjx.Data``) with what the
rest of the project reads from an env: ``config`` (a
:class:`ThirdPartyConfig`, so ``--env.<field>`` flags work), ``mj_model``
(host model with the mode's solver settings, for video and benchmarks),
``sys`` (the ``mjx.Model`` stepped), ``dt``, ``n_frames``,
``differentiable`` and ``forward_body_id`` (the body whose x velocity
evaluation reports, or None).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import importlib
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
from brax.envs import base as brax_base

from envs import physics

__all__ = ["BRAX", "PLAYGROUND", "MissingPackageError", "ThirdPartyConfig",
           "ThirdPartyEnv", "brax_names", "check_name", "default_config",
           "is_thirdparty", "make", "playground_names"]

BRAX = "brax/"
PLAYGROUND = "playground/"
EXTRA_HINT = "pip install -e '.[playground]'"

# Brax registry names that are not Brax's MJX envs.
_BRAX_EXCLUDED = ("fast",)


class MissingPackageError(ImportError, ValueError):
  """An optional package a third-party env needs is not installed (the
  message names the extra to install). A ``ValueError`` too, so callers
  that turn bad env names into one-line errors handle it."""


@dataclasses.dataclass(frozen=True)
class ThirdPartyConfig:
  """Settings of a third-party env (``--env.<field>`` on train.py).

  Attributes:
    episode_length: env steps per episode (``agents/rollout.py`` truncates;
      the upstream env never does).
    diff_iterations: constraint-solver iterations in differentiable mode
      (tolerance 0, so exactly this many run). Per-env defaults from
      ``python -m benchmarks.gradients --fidelity`` where measured
      (``_DEFAULTS``; docs/envs.md), else 4, unmeasured.
    diff_ls_iterations: line-search iterations in differentiable mode.
    forward_body: the body whose x velocity evaluation reports as
      ``forward_velocity_mean`` ("" = none).
  """
  episode_length: int = 1000
  diff_iterations: int = 4
  diff_ls_iterations: int = 4
  forward_body: str = ""

  def __post_init__(self):
    for name in ("episode_length", "diff_iterations", "diff_ls_iterations"):
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"ThirdPartyConfig.{name} must be a positive "
                         f"integer, got {value!r}.")


# Per-env defaults. diff_iterations / diff_ls_iterations: the cheapest setting
# that passed every state of `python -m benchmarks.gradients --fidelity --tasks
# NAME --settings IT/LS --ad jvp` (32 steps, 12 directions, the resting state
# and two reset+20 states; docs/benchmarks.md, "Gradient fidelity", "Third-party
# envs", 3 Dec 2026), measured for two envs only:
# * brax/hopper 2 / 1 (1 / 1, 1 / 2, 1 / 3 and 1 / 4 fail: resting cosine 0.948,
#   reset+20 seed 1 relative error 2.4e-3);
# * playground/CartpoleSwingup stays at 1 / 4 (Playground's own ls budget):
#   every setting passed (1 / 1 included), but no state of that check has a
#   constraint row (0 contacts, slider limit not reached), so the check does
#   not test this env's solver budget and is no reason to lower it.
# Every other env, including those listed below for forward_body only, gets
# the class defaults (4 / 4), unmeasured.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "brax/hopper": dict(diff_iterations=2, diff_ls_iterations=1,
                        forward_body="torso"),
    "brax/walker2d": dict(forward_body="torso"),
    "brax/halfcheetah": dict(forward_body="torso"),
    "brax/ant": dict(forward_body="torso"),
    "brax/humanoid": dict(forward_body="torso"),
    "brax/humanoidstandup": dict(forward_body="torso"),
    "playground/CartpoleSwingup": dict(diff_iterations=1,
                                       diff_ls_iterations=4),
    "playground/CheetahRun": dict(forward_body="torso"),
    "playground/HopperHop": dict(forward_body="torso"),
    "playground/WalkerWalk": dict(forward_body="torso"),
    "playground/WalkerRun": dict(forward_body="torso"),
}


def is_thirdparty(name: Any) -> bool:
  """True for a ``brax/...`` or ``playground/...`` name."""
  return isinstance(name, str) and name.startswith((BRAX, PLAYGROUND))


def brax_names() -> list[str]:
  """``brax/<name>`` for every Brax registry env this adapter builds."""
  from brax import envs as brax_envs  # pylint: disable=import-outside-toplevel
  return sorted(BRAX + n for n in brax_envs._envs  # pylint: disable=protected-access
                if "/" not in n and n not in _BRAX_EXCLUDED)


def _playground_suite():
  try:
    return importlib.import_module("mujoco_playground")
  except ImportError as e:
    raise MissingPackageError(
        f"playground/ envs need MuJoCo Playground ({e.name or 'mujoco_playground'} "
        f"is not installed): {EXTRA_HINT}") from None


def playground_names() -> list[str]:
  """``playground/<Name>`` for Playground's DM Control suite (imports
  Playground).

  Raises:
    MissingPackageError: Playground is not installed.
  """
  return sorted(PLAYGROUND + n for n in _playground_suite().dm_control_suite.ALL_ENVS)


def check_name(name: str) -> str:
  """Returns ``name`` if this adapter can build it.

  Raises:
    ValueError: unknown name (closest names suggested).
    MissingPackageError: a ``playground/`` name without Playground.
  """
  if not is_thirdparty(name):
    raise ValueError(f"{name!r} is not a third-party env name (brax/<name> "
                     f"or playground/<Name>).")
  valid = brax_names() if name.startswith(BRAX) else playground_names()
  if name not in valid:
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"Unknown env {name!r}.{hint} Valid: {', '.join(valid)}.")
  return name


def default_config(name: str) -> ThirdPartyConfig:
  """The per-env default config of ``name`` (checks the name)."""
  check_name(name)
  values = dict(_DEFAULTS.get(name, {}))
  if name.startswith(PLAYGROUND):  # Playground's own episode length
    upstream = _playground_suite().dm_control_suite.get_default_config(
        name[len(PLAYGROUND):])
    values.setdefault("episode_length", int(upstream.episode_length))
  return ThirdPartyConfig(**values)


def make(name: str, differentiable: bool = False, *,
         config: ThirdPartyConfig | None = None, **overrides: Any
         ) -> "ThirdPartyEnv":
  """Builds third-party env ``name`` in either mode (see module docstring).

  Args:
    name: ``brax/<name>`` or ``playground/<Name>``.
    differentiable: tolerance 0 and ``diff_*`` solver settings, traced under
      ``physics.patch_mjx``.
    config: a :class:`ThirdPartyConfig`; default :func:`default_config`.
    **overrides: config fields to change.

  Raises:
    ValueError: unknown name or config key.
    MissingPackageError: a ``playground/`` name without Playground.
  """
  if not isinstance(differentiable, bool):
    raise TypeError(f"differentiable must be a bool, got {differentiable!r}.")
  base = default_config(name) if config is None else config
  if not isinstance(base, ThirdPartyConfig):
    raise TypeError(f"config must be a ThirdPartyConfig "
                    f"(envs.default_config({name!r})), got {type(base).__name__}")
  valid = [f.name for f in dataclasses.fields(ThirdPartyConfig)]
  unknown = sorted(set(overrides) - set(valid))
  if unknown:
    raise ValueError(f"Unknown config key(s) for ThirdPartyConfig: "
                     f"{', '.join(map(repr, unknown))}. Valid keys: "
                     f"{', '.join(valid)}.")
  config = dataclasses.replace(base, **overrides)
  check_name(name)
  return ThirdPartyEnv(name, config, differentiable)


def _synced_mj_model(mj_model: mujoco.MjModel, opt: Any) -> mujoco.MjModel:
  """A copy of ``mj_model`` with the solver options the MJX model runs
  (Brax edits ``sys.opt`` without touching ``sys.mj_model``)."""
  m = copy.deepcopy(mj_model)
  m.opt.timestep = float(opt.timestep)
  m.opt.tolerance = float(opt.tolerance)
  m.opt.iterations = int(opt.iterations)
  m.opt.ls_iterations = int(opt.ls_iterations)
  m.opt.solver = int(opt.solver)
  m.opt.disableflags = int(opt.disableflags)
  m.opt.integrator = int(opt.integrator)
  return m


class ThirdPartyEnv(brax_base.Env):
  """A Brax ``backend='mjx'`` or Playground env behind this project's env
  interface (module docstring). Build it with :func:`make`."""

  def __init__(self, name: str, config: ThirdPartyConfig, differentiable: bool):
    self.name = name
    self.config = config
    self.differentiable = bool(differentiable)
    self._playground = name.startswith(PLAYGROUND)
    upstream_name = name.split("/", 1)[1]
    if self._playground:
      self._build_playground(upstream_name)
    else:
      self._build_brax(upstream_name)
    self.forward_body_id = None
    if config.forward_body:
      body = mujoco.mj_name2id(self.mj_model, mujoco.mjtObj.mjOBJ_BODY,
                               config.forward_body)
      if body < 0:
        bodies = [self.mj_model.body(i).name for i in range(self.mj_model.nbody)]
        raise ValueError(f"{name}: no body {config.forward_body!r} for "
                         f"forward_body; bodies: {', '.join(bodies)}")
      self.forward_body_id = int(body)

  # ------------------------------------------------------------ construction

  def _build_brax(self, upstream_name: str) -> None:
    import warnings  # pylint: disable=import-outside-toplevel
    from brax import envs as brax_envs  # pylint: disable=import-outside-toplevel
    with warnings.catch_warnings():  # Brax's notice that it is unmaintained
      warnings.filterwarnings("ignore", message="Brax System, piplines",
                              category=UserWarning)
      env = brax_envs.get_environment(upstream_name, backend="mjx")
    if self.differentiable:
      c = self.config
      sys = env.sys.tree_replace({"opt.tolerance": 0.0,
                                  "opt.iterations": c.diff_iterations,
                                  "opt.ls_iterations": c.diff_ls_iterations})
      env.sys = physics.static_tolerance(sys)
    self.upstream = env
    self.sys = env.sys
    self.n_frames = int(env._n_frames)  # pylint: disable=protected-access
    self.mj_model = _synced_mj_model(env.sys.mj_model, env.sys.opt)

  def _build_playground(self, upstream_name: str) -> None:
    env = _playground_suite().dm_control_suite.load(upstream_name, config_overrides={"impl": "jax"})
    if not (hasattr(env, "_mj_model") and hasattr(env, "_mjx_model")):
      raise ValueError(f"playground/{upstream_name}: this Playground version "
                       f"keeps its model elsewhere; install playground==0.2.0")
    if self.differentiable:
      c = self.config
      mj = physics.differentiable_model(env.mj_model, c.diff_iterations,
                                        c.diff_ls_iterations)
      env._mj_model = mj  # pylint: disable=protected-access
      env._mjx_model = physics.put_model(mj, impl="jax")  # pylint: disable=protected-access
    self.upstream = env
    self.sys = env.mjx_model
    self.n_frames = int(env.n_substeps)
    self.mj_model = copy.deepcopy(env.mj_model)

  # ------------------------------------------------------------------ Brax API

  def __repr__(self) -> str:
    mode = "differentiable" if self.differentiable else "default"
    return f"ThirdPartyEnv(name={self.name!r}, mode={mode})"

  @property
  def backend(self) -> str:
    return "mjx"

  @property
  def action_size(self) -> int:
    return int(self.upstream.action_size)

  @property
  def observation_size(self) -> Any:
    obs = jax.eval_shape(self.reset, jax.random.PRNGKey(0)).obs
    if hasattr(obs, "shape"):
      return int(obs.shape[-1])
    return jax.tree_util.tree_map(lambda x: x.shape, obs)

  @property
  def dt(self) -> float:
    return float(self.upstream.dt)

  def _tracing(self):
    return physics.patch_mjx() if self.differentiable else contextlib.nullcontext()

  def reset(self, rng: jax.Array) -> brax_base.State:
    with self._tracing():
      state = self.upstream.reset(rng)
    return self._to_brax(state)

  def step(self, state: brax_base.State, action: jax.Array) -> brax_base.State:
    # copies: Brax's envs update state.metrics in place
    inner = self._from_brax(state.replace(metrics=dict(state.metrics),
                                          info=dict(state.info)))
    with self._tracing():
      out = self.upstream.step(inner, action)
    return self._to_brax(out)

  def _to_brax(self, state: Any) -> brax_base.State:
    # float32 arrays: Brax's inverted_pendulum returns reward 1.0, a Python float
    if not self._playground:
      return state.replace(reward=jnp.asarray(state.reward, jnp.float32),
                           done=jnp.asarray(state.done, jnp.float32))
    return brax_base.State(pipeline_state=state.data, obs=state.obs,
                           reward=jnp.asarray(state.reward, jnp.float32),
                           done=jnp.asarray(state.done, jnp.float32),
                           metrics=dict(state.metrics), info=dict(state.info))

  def _from_brax(self, state: brax_base.State) -> Any:
    if not self._playground:
      return state
    return _playground_suite().State(data=state.pipeline_state, obs=state.obs,
                         reward=state.reward, done=state.done,
                         metrics=state.metrics, info=state.info)
