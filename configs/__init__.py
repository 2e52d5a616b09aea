"""Training presets: one YAML file per env, one section per agent.

``configs/<env>.yaml`` has these top-level keys (all optional except
``default_agent``)::

    default_agent: shac        # the agent `train.py <env>` uses
    env: {...}                 # fields of the env's default_config()
    render: {...}              # fields of trainlib.render.RenderConfig
    shac: {...}                # fields of RunConfig + agents.shac.Config
    apg: {...}                 # fields of RunConfig + agents.apg.Config
    ppo: {...}                 # fields of RunConfig + configs.PPOConfig

Every section is validated against its dataclass: an unknown key is an error
naming the file, the section and the valid keys; a value of the wrong type is
an error naming the expected type. Values are coerced where YAML is ambiguous
(``3e-4`` parses as a string in YAML 1.1 and is accepted for a float field;
lists become tuples).

A field of an agent section (or of ``env``/``render``) may take one value per
backend instead of a plain value::

    shac:
      num_envs: {cpu: 64, gpu: 1024}

Both keys are required; ``gpu`` applies on any accelerator JAX runs on.
:func:`resolve` picks the value of the backend JAX uses
(``trainlib.device.preset_backend``) and records it in ``Resolved.backend``
(``train.py`` writes it into the run's config.yaml). Plain values apply on
every backend, so a preset without per-backend values resolves identically
everywhere.

Public API:
  AGENTS, RunConfig, PPOConfig
  preset_path(env_name) -> Path
  load_preset(env_name) -> Preset
  resolve(env_name, agent=None, backend=None) -> Resolved
  agent_config_class(agent) -> type
  from_mapping(default, mapping, where, backend=None) -> dataclass instance
  select_backend(value, annotation, backend, where) -> value
  check_env_name(env_name) -> str
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = ["AGENTS", "BACKENDS", "ConfigError", "PPOConfig", "Preset",
           "Resolved",
           "RunConfig", "agent_config_class", "check_env_name",
           "from_mapping", "load_preset", "preset_path", "resolve",
           "select_backend"]

AGENTS = ("shac", "apg", "ppo")
PRESET_DIR = Path(__file__).resolve().parent
_TOP_KEYS = ("default_agent", "env", "render", *AGENTS)
# Keys of a per-backend value (``num_envs: {cpu: 64, gpu: 1024}``); the same
# names as trainlib.device.PRESET_BACKENDS.
BACKENDS = ("cpu", "gpu")


class ConfigError(ValueError):
  """A preset or override does not match the config dataclasses."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Settings of a training run that are not algorithm hyperparameters.

  (``num_timesteps`` and ``log_every`` are fields of each agent's config.)

  Attributes:
    seed: PRNG seed of the run.
    checkpoint_every: agent updates between orbax checkpoints (APG/SHAC; 0 =
      only at the end); PPO checkpoints at each of its ``num_evals`` evals.
    eval_episodes: episodes of the final deterministic evaluation.
    video: render video.mp4 of the first evaluation episode.
    portable_determinism: cap XLA:CPU's instruction set at AVX2 so that the
      same seed trains bit-identically on any x86-64 CPU with AVX2 (see
      trainlib/portable.py; its measured effect and speed cost are in
      docs/training.md, "Reproducibility").
  """
  seed: int = 0
  checkpoint_every: int = 20
  eval_episodes: int = 10
  video: bool = True
  portable_determinism: bool = False

  def __post_init__(self):
    if self.checkpoint_every < 0:
      raise ConfigError(f"checkpoint_every must be >= 0, got "
                        f"{self.checkpoint_every}")
    if self.eval_episodes < 1:
      raise ConfigError(f"eval_episodes must be >= 1, got "
                        f"{self.eval_episodes}")


@dataclasses.dataclass(frozen=True)
class PPOConfig:
  """Brax PPO (``brax.training.agents.ppo.train.train``) as a baseline.

  Names follow the paper (``gamma``, ``lam``); they are passed to Brax as
  ``discounting`` and ``gae_lambda``.

  Attributes:
    num_timesteps: total env steps to train for.
    num_envs: parallel environments.
    episode_length: env steps per episode; None uses the env config's.
    action_repeat: times each action is repeated.
    learning_rate: Adam step size.
    entropy_cost: weight of the entropy bonus.
    gamma: discount factor.
    lam: GAE lambda.
    unroll_length: env steps per rollout segment.
    batch_size: segments per minibatch.
    num_minibatches: minibatches per update epoch.
    num_updates_per_batch: epochs over each batch.
    normalize_observations: running mean/std observation normaliser.
    reward_scaling: multiplier on rewards in the losses.
    clipping_epsilon: PPO ratio clip.
    max_grad_norm: global gradient-norm clip; None disables it.
    num_evals: evaluations (= progress reports and checkpoints) in the run.
    num_eval_envs: episodes per evaluation.
    policy_hidden_layer_sizes: policy MLP widths.
    value_hidden_layer_sizes: value MLP widths.
  """
  num_timesteps: int = 5_000_000
  num_envs: int = 64
  episode_length: int | None = None
  action_repeat: int = 1
  learning_rate: float = 3e-4
  entropy_cost: float = 1e-2
  gamma: float = 0.97
  lam: float = 0.95
  unroll_length: int = 20
  batch_size: int = 64
  num_minibatches: int = 4
  num_updates_per_batch: int = 4
  normalize_observations: bool = True
  reward_scaling: float = 0.1
  clipping_epsilon: float = 0.3
  max_grad_norm: float | None = 1.0
  num_evals: int = 20
  num_eval_envs: int = 16
  policy_hidden_layer_sizes: tuple[int, ...] = (64, 64)
  value_hidden_layer_sizes: tuple[int, ...] = (64, 64)

  def __post_init__(self):
    if self.num_timesteps < 1:
      raise ConfigError(f"num_timesteps must be >= 1, got {self.num_timesteps}")
    if self.num_envs < 1 or self.num_evals < 1 or self.num_eval_envs < 1:
      raise ConfigError("num_envs, num_evals and num_eval_envs must be >= 1")
    if (self.batch_size * self.num_minibatches) % self.num_envs:
      raise ConfigError(
          f"ppo: batch_size * num_minibatches ({self.batch_size} * "
          f"{self.num_minibatches}) must be a multiple of num_envs "
          f"({self.num_envs}); change one of them")


def agent_config_class(agent: str) -> type:
  """The frozen config dataclass of ``agent`` ("shac", "apg" or "ppo")."""
  if agent == "ppo":
    return PPOConfig
  if agent == "shac":
    from agents import shac  # pylint: disable=import-outside-toplevel
    return shac.Config
  if agent == "apg":
    from agents import apg  # pylint: disable=import-outside-toplevel
    return apg.Config
  raise ConfigError(_unknown("agent", agent, AGENTS))


def _unknown(what: str, value: str, valid: typing.Sequence[str]) -> str:
  close = difflib.get_close_matches(str(value), list(valid), n=3, cutoff=0.5)
  hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
  return f"Unknown {what} {value!r}.{hint} Valid: {', '.join(valid)}."


def check_env_name(env_name: str) -> str:
  """Returns ``env_name`` if registered, else raises naming the closest ones."""
  import envs  # pylint: disable=import-outside-toplevel
  valid = list(envs.names())
  if env_name not in valid:
    raise ConfigError(_unknown("env", env_name, valid))
  return env_name


# --------------------------------------------------------------------------
# Typed construction from YAML mappings
# --------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
  return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
  """Converts a YAML value to annotation ``tp`` or raises ConfigError."""
  origin = typing.get_origin(tp)
  args = typing.get_args(tp)
  bad = ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r} "
                    f"({type(value).__name__})")
  if tp is Any:
    return value
  if origin in (typing.Union, types.UnionType):
    if value is None and type(None) in args:
      return None
    for arg in args:
      if arg is type(None):
        continue
      try:
        return _coerce(value, arg, where)
      except ConfigError:
        pass
    raise bad
  if origin is Literal:
    if value in args:
      return value
    raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
  if tp is bool:
    if isinstance(value, bool):
      return value
    raise bad
  if tp is int:
    if isinstance(value, bool):
      raise bad
    if isinstance(value, int):
      return value
    if isinstance(value, float) and value.is_integer():
      return int(value)
    if isinstance(value, str):
      try:
        f = float(value)
      except ValueError:
        raise bad from None
      if f.is_integer():
        return int(f)
    raise bad
  if tp is float:
    if isinstance(value, bool):
      raise bad
    if isinstance(value, (int, float)):
      return float(value)
    if isinstance(value, str):
      try:
        return float(value)
      except ValueError:
        raise bad from None
    raise bad
  if tp is str:
    if isinstance(value, str):
      return value
    raise bad
  if origin in (tuple, list) or tp in (tuple, list):
    if not isinstance(value, (list, tuple)):
      raise bad
    if origin is tuple and args and not (len(args) == 2 and args[1] is ...):
      if len(args) != len(value):
        raise ConfigError(f"{where}: expected {len(args)} items, got "
                          f"{len(value)}")
      items = [_coerce(v, a, f"{where}[{i}]")
               for i, (v, a) in enumerate(zip(value, args))]
    else:
      elem = args[0] if args else Any
      items = [_coerce(v, elem, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if (origin or tp) is tuple else items
  if dataclasses.is_dataclass(tp):
    if not isinstance(value, Mapping):
      raise bad
    return from_mapping(tp(), value, where)
  if isinstance(tp, type) and isinstance(value, tp):
    return value
  raise bad


def check_keys(mapping: Mapping[str, Any], valid: typing.Iterable[str],
               where: str, what: str) -> None:
  """Raises ConfigError naming each unknown key, its closest valid key and
  all valid keys."""
  valid = sorted(set(valid))
  unknown = [k for k in mapping if k not in valid]
  if unknown:
    msgs = []
    for k in unknown:
      close = difflib.get_close_matches(str(k), valid, n=2, cutoff=0.5)
      msgs.append(repr(k) + (f" (did you mean {' or '.join(map(repr, close))}?)"
                             if close else ""))
    raise ConfigError(f"{where}: unknown key(s) {', '.join(msgs)}. Valid keys "
                      f"for {what}: {', '.join(valid)}")


def _takes_mapping(tp: Any) -> bool:
  """True if a field annotated ``tp`` can hold a mapping itself."""
  if tp is Any or dataclasses.is_dataclass(tp):
    return True
  origin = typing.get_origin(tp)
  if origin in (typing.Union, types.UnionType):
    return any(_takes_mapping(a) for a in typing.get_args(tp))
  base = origin or tp
  return isinstance(base, type) and issubclass(base, Mapping)


def select_backend(value: Any, tp: Any, backend: str | None,
                   where: str) -> Any:
  """``value``, or its entry for ``backend`` when it is a per-backend value.

  A mapping given to a field that cannot hold a mapping is a per-backend
  value: its keys must be exactly :data:`BACKENDS`.

  Args:
    value: the YAML value of one field.
    tp: the field's annotation.
    backend: "cpu" or "gpu"; None where per-backend values are not allowed
      (a run's config.yaml holds resolved values).
    where: location for error messages, e.g. "hopper.yaml:shac.num_envs".

  Raises:
    ConfigError: a key other than cpu/gpu, a missing key, or a per-backend
      value where none is allowed.
  """
  if not isinstance(value, Mapping) or _takes_mapping(tp):
    return value
  if backend is None:
    raise ConfigError(f"{where}: per-backend values ({dict(value)!r}) are "
                      f"only allowed in presets; give a plain value")
  check_keys(value, BACKENDS, where, "a per-backend value")
  missing = [b for b in BACKENDS if b not in value]
  if missing:
    raise ConfigError(f"{where}: per-backend value {dict(value)!r} has no "
                      f"{' or '.join(map(repr, missing))} entry; give one "
                      f"value per backend ({', '.join(BACKENDS)}) or a plain "
                      f"value")
  if backend not in BACKENDS:
    raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
  return value[backend]


def from_mapping(default: Any, mapping: Mapping[str, Any] | None,
                 where: str, extra_valid: typing.Iterable[str] = (),
                 backend: str | None = None) -> Any:
  """Returns ``dataclasses.replace(default, **mapping)`` after validation.

  Args:
    default: a dataclass instance providing the defaults and the field types.
    mapping: the overrides (YAML section); None means no overrides.
    where: a location for error messages, e.g. "configs/pendulum.yaml:shac".
    extra_valid: keys that are accepted but ignored here (handled elsewhere).
    backend: "cpu" or "gpu": per-backend values (``{cpu: 64, gpu: 1024}``)
      take this backend's entry. None: per-backend values are errors.

  Raises:
    ConfigError: an unknown key (the message lists the valid keys and the
      closest match), a value of the wrong type, a bad per-backend value, or
      a value the dataclass's own checks reject.
  """
  mapping = dict(mapping or {})
  if not isinstance(mapping, dict):
    raise ConfigError(f"{where}: expected a mapping, got {mapping!r}")
  cls = type(default)
  hints = typing.get_type_hints(cls)
  fields = [f.name for f in dataclasses.fields(cls) if f.init]
  check_keys(mapping, set(fields) | set(extra_valid), where, cls.__name__)
  values = {k: _coerce(select_backend(v, hints[k], backend, f"{where}.{k}"),
                       hints[k], f"{where}.{k}")
            for k, v in mapping.items() if k in fields}
  try:
    return dataclasses.replace(default, **values)
  except ConfigError:
    raise
  except (ValueError, TypeError) as e:
    raise ConfigError(f"{where}: {e}") from e


def to_dict(config: Any) -> dict[str, Any]:
  """A dataclass as a YAML-friendly dict (tuples become lists)."""
  def plain(v):
    if isinstance(v, (tuple, list)):
      return [plain(x) for x in v]
    if isinstance(v, dict):
      return {k: plain(x) for k, x in v.items()}
    return v
  return {f.name: plain(getattr(config, f.name))
          for f in dataclasses.fields(config) if f.init}


# --------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Preset:
  """A parsed (not yet resolved) ``configs/<env>.yaml``."""
  env_name: str
  path: Path
  default_agent: str
  sections: Mapping[str, Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class Resolved:
  """Everything a run needs, validated: preset values over dataclass defaults.

  Attributes:
    env_name: registered env name.
    agent: "shac", "apg" or "ppo".
    run: run settings.
    agent_config: an instance of ``agent_config_class(agent)``.
    env_config: an instance of the env's config dataclass.
    render: video settings.
    backend: "cpu" or "gpu": whose per-backend preset values applied (None:
      not recorded, e.g. a config.yaml written before backends existed).
  """
  env_name: str
  agent: str
  run: RunConfig
  agent_config: Any
  env_config: Any
  render: Any
  backend: str | None = None


def preset_path(env_name: str) -> Path:
  """Path of the preset file of ``env_name`` (may not exist)."""
  return PRESET_DIR / f"{env_name}.yaml"


def load_preset(env_name: str, path: Path | None = None) -> Preset:
  """Reads and checks the top level of a preset file.

  Raises:
    ConfigError: unknown env, missing file, YAML syntax error, unknown
      top-level key or unknown default_agent.
  """
  path = Path(path) if path is not None else preset_path(env_name)
  if not path.exists():
    raise ConfigError(f"No preset for env {env_name!r}: {path} does not "
                      f"exist. Add it (see docs/training.md).")
  try:
    data = yaml.safe_load(path.read_text()) or {}
  except yaml.YAMLError as e:
    raise ConfigError(f"{path}: invalid YAML: {e}") from e
  if not isinstance(data, dict):
    raise ConfigError(f"{path}: expected a mapping at the top level")
  check_keys(data, _TOP_KEYS, str(path), "the top level of a preset")
  default_agent = data.get("default_agent", "shac")
  if default_agent not in AGENTS:
    raise ConfigError(f"{path}: default_agent: " +
                      _unknown("agent", default_agent, AGENTS))
  sections = {}
  for key in ("env", "render", *AGENTS):
    section = data.get(key) or {}
    if not isinstance(section, dict):
      raise ConfigError(f"{path}: section {key!r} must be a mapping, got "
                        f"{section!r}")
    sections[key] = section
  return Preset(env_name=env_name, path=path, default_agent=default_agent,
                sections=sections)


def split_agent_section(agent: str, section: Mapping[str, Any], where: str,
                        agent_default: Any | None = None,
                        backend: str | None = None
                        ) -> tuple[RunConfig, Any]:
  """Splits an agent section into (RunConfig, agent config), validating both.

  A key that is a field of the agent config goes to the agent config (so an
  agent that owns e.g. ``seed`` keeps it); the rest must be RunConfig fields.
  ``backend`` selects per-backend values (see :func:`from_mapping`).
  """
  cls = agent_config_class(agent)
  agent_default = agent_default if agent_default is not None else cls()
  agent_fields = {f.name for f in dataclasses.fields(cls) if f.init}
  run_fields = {f.name for f in dataclasses.fields(RunConfig)}
  check_keys(section, agent_fields | run_fields, where,
             f"{agent} ({cls.__module__}.{cls.__qualname__} + "
             f"configs.RunConfig)")
  agent_part = {k: v for k, v in section.items() if k in agent_fields}
  run_part = {k: v for k, v in section.items() if k not in agent_fields}
  run = from_mapping(RunConfig(), run_part, where, backend=backend)
  agent_config = from_mapping(agent_default, agent_part, where,
                              backend=backend)
  return run, agent_config


def resolve(env_name: str, agent: str | None = None,
            path: Path | None = None, backend: str | None = None) -> Resolved:
  """Validated configs for ``env_name`` and ``agent`` (default: the preset's).

  Args:
    env_name: registered env name.
    agent: "shac", "apg" or "ppo"; None uses the preset's default_agent.
    path: preset file (default ``configs/<env_name>.yaml``).
    backend: "cpu" or "gpu", whose per-backend values apply; None asks JAX
      (``trainlib.device.preset_backend()``).

  Raises:
    ConfigError: unknown env/agent/backend, or any invalid preset entry
      (per-backend values are checked for every backend, not only
      ``backend``).
  """
  import envs  # pylint: disable=import-outside-toplevel
  from trainlib.render import RenderConfig  # pylint: disable=import-outside-toplevel
  check_env_name(env_name)
  preset = load_preset(env_name, path)
  agent = agent or preset.default_agent
  if agent not in AGENTS:
    raise ConfigError(_unknown("agent", agent, AGENTS))
  if backend is None:
    from trainlib import device  # pylint: disable=import-outside-toplevel
    backend = device.preset_backend()
  if backend not in BACKENDS:
    raise ConfigError(_unknown("backend", backend, BACKENDS))
  # Every backend's values are validated (so CI on a CPU checks the GPU
  # values too); the requested backend's first, so its errors come first.
  resolved = {}
  for b in (backend, *(b for b in BACKENDS if b != backend)):
    where = preset.path.name + ("" if b == backend else f" ({b} values)")
    env_config = from_mapping(envs.default_config(env_name),
                              preset.sections["env"], f"{where}:env",
                              backend=b)
    render = from_mapping(RenderConfig(), preset.sections["render"],
                          f"{where}:render", backend=b)
    run, agent_config = split_agent_section(agent, preset.sections[agent],
                                            f"{where}:{agent}", backend=b)
    resolved[b] = Resolved(env_name=env_name, agent=agent, run=run,
                           agent_config=agent_config, env_config=env_config,
                           render=render, backend=b)
  return resolved[backend]


def default_agents() -> dict[str, str]:
  """env name -> default agent, for every preset file present."""
  out = {}
  for path in sorted(PRESET_DIR.glob("*.yaml")):
    data = yaml.safe_load(path.read_text()) or {}
    out[path.stem] = data.get("default_agent", "shac")
  return out
