"""Training presets and the loader that validates them.

``configs/<env>.yaml`` has these top-level keys (all optional)::

    default_agent: shac        # the agent `train.py <env>` uses
    env: {...}                 # fields of the env's default_config()
    render: {...}              # fields of configs.RenderConfig
    shac: {...}                # RunConfig fields + agents.shac.Config fields
    apg: {...}                 # RunConfig fields + agents.apg.Config fields
    sapo: {...}                # RunConfig fields + agents.sapo.Config fields
    ppo: {...}                 # RunConfig fields + agents.ppo.Config fields

An agent without a section trains with its config class's defaults.

A run directory's ``config.yaml`` has the same schema (plus ``env_name`` and
``backend``, with resolved values only), so :func:`resolve_data` reads both.

Every section is checked against its dataclass with dacite: an unknown key
is an error naming the file, the section, the closest key and the valid
keys; an old key name is an error naming its new name; a value of the wrong
type names the field and the expected type. A run field that the agent does
not use (``agents.Algorithm.unused_run_fields``) is an error saying why.

A field of a preset section may take one value per backend::

    shac:
      num_envs: {cpu: 64, gpu: 1024}

Both keys are required; ``gpu`` applies on any accelerator JAX runs on. The
caller passes the backend to :func:`resolve`; every backend's values are
validated, so CI on a CPU checks the GPU values.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dacite
import yaml

import agents
import envs
from agents.config import RENAMED
from configs.schema import (BACKENDS, ConfigError, LaunchError, RenderConfig,
                            Resolved, RunConfig)

__all__ = ["BACKENDS", "ConfigError", "LaunchError", "RenderConfig", "Resolved",
           "RunConfig",
           "agent_names", "as_data", "check_agent", "check_env_name", "from_mapping",
           "load_preset_data", "preset_path", "read_yaml", "resolve",
           "resolve_data",
           "to_dict", "unknown_name"]

PRESET_DIR = Path(__file__).resolve().parent
# Top-level keys that only a run directory's config.yaml has.
_RUN_DIR_KEYS = ("env_name", "backend")


def unknown_name(what: str, value: Any, valid: Sequence[str]) -> str:
  """``Unknown <what> 'x'. Did you mean 'y'? Valid: a, b, c.``"""
  close = difflib.get_close_matches(str(value), list(valid), n=3, cutoff=0.5)
  hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
  return f"Unknown {what} {value!r}.{hint} Valid: {', '.join(valid)}."


def check_keys(mapping: Mapping[str, Any], valid: Iterable[str], where: str,
               what: str, renamed: Mapping[str, str] | None = None) -> None:
  """Raises ConfigError naming each unknown key, its closest valid key and
  all valid keys; an old key (``renamed``: old -> new) gets its new name."""
  renamed = renamed or {}
  valid = sorted(set(valid))
  unknown = [k for k in mapping if k not in valid]
  old = [k for k in unknown if renamed.get(k) in valid]
  if old:
    raise ConfigError(f"{where}: " + "; ".join(
        f"{k!r} was renamed to {renamed[k]!r}" for k in old) +
        ": use the new name")
  if unknown:
    msgs = []
    for k in unknown:
      close = difflib.get_close_matches(str(k), valid, n=2, cutoff=0.5)
      msgs.append(repr(k) + (f" (did you mean {' or '.join(map(repr, close))}?)"
                             if close else ""))
    raise ConfigError(f"{where}: unknown key(s) {', '.join(msgs)}. Valid keys "
                      f"for {what}: {', '.join(valid)}")


class _Invalid:
  """A value a type hook refused; dacite then reports the field's type."""

  def __init__(self, value: Any):
    self.value = value


def _to_float(value: Any) -> Any:
  # YAML 1.1 reads 3e-4 as a string; ints are fine for float fields
  if isinstance(value, bool):
    return _Invalid(value)
  if isinstance(value, (int, str)):
    try:
      return float(value)
    except ValueError:
      return _Invalid(value)
  return value


def _to_int(value: Any) -> Any:
  if isinstance(value, bool):
    return _Invalid(value)
  if isinstance(value, (float, str)):
    try:
      f = float(value)
    except ValueError:
      return _Invalid(value)
    return int(f) if f.is_integer() else _Invalid(value)
  return value


_DACITE = dacite.Config(strict=True, cast=[tuple],
                        type_hooks={float: _to_float, int: _to_int})


def _type_name(tp: Any) -> str:
  """``int``, ``one of ['a', 'b']`` (Literal), ``tuple[float, float]``."""
  if typing.get_origin(tp) is typing.Literal:
    return f"one of {list(typing.get_args(tp))}"
  if isinstance(tp, type) and not typing.get_args(tp):
    return tp.__name__
  return str(tp).replace("typing.", "")


def _takes_mapping(tp: Any) -> bool:
  """True if a field annotated ``tp`` can hold a mapping itself."""
  if tp is Any or dataclasses.is_dataclass(tp):
    return True
  origin = typing.get_origin(tp)
  if origin in (typing.Union, types.UnionType):
    return any(_takes_mapping(a) for a in typing.get_args(tp))
  base = origin or tp
  return isinstance(base, type) and issubclass(base, Mapping)


def _select_backend(value: Any, tp: Any, backend: str | None, where: str) -> Any:
  """``value``, or its entry for ``backend`` when it is a per-backend value
  (a mapping given to a field that cannot hold one; keys exactly BACKENDS).
  ``backend`` None: per-backend values are errors (a run's config.yaml)."""
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
  return value[backend]


def from_mapping(default: Any, mapping: Mapping[str, Any] | None, where: str,
                 backend: str | None = None,
                 renamed: Mapping[str, str] | None = None) -> Any:
  """``default`` (a dataclass instance) with the fields in ``mapping``
  replaced, type-checked by dacite.

  Args:
    default: provides the defaults and the field types.
    mapping: the overrides (a YAML section); None means none.
    where: location for error messages, e.g. "pendulum.yaml:shac".
    backend: "cpu" or "gpu", whose per-backend values apply; None makes
      per-backend values errors.
    renamed: old key -> new key, for errors that name the new key.

  Raises:
    ConfigError: an unknown key (closest match and valid keys named), a
      value of the wrong type (field and type named), a bad per-backend
      value, or a value the dataclass's own checks reject.
  """
  if mapping is not None and not isinstance(mapping, Mapping):
    raise ConfigError(f"{where}: expected a mapping, got {mapping!r}")
  cls = type(default)
  hints = typing.get_type_hints(cls)
  fields = [f.name for f in dataclasses.fields(cls) if f.init]
  mapping = dict(mapping or {})
  check_keys(mapping, fields, where, cls.__name__, renamed)
  data = {f: getattr(default, f) for f in fields}
  data.update({k: _select_backend(v, hints[k], backend, f"{where}.{k}")
               for k, v in mapping.items()})
  try:
    return dacite.from_dict(cls, data, _DACITE)
  except dacite.WrongTypeError as e:
    name = str(e.field_path).split(".")[0]
    got = data.get(name, e.value)
    raise ConfigError(f"{where}.{e.field_path}: expected {_type_name(e.field_type)}"
                      f", got {got!r} ({type(got).__name__})") from None
  except dacite.DaciteError as e:
    raise ConfigError(f"{where}: {e}") from None
  except ConfigError:
    raise
  except (ValueError, TypeError) as e:  # the dataclass's own checks
    raise ConfigError(f"{where}: {e}") from None


def to_dict(config: Any, exclude: Iterable[str] = ()) -> dict[str, Any]:
  """A dataclass as a YAML-friendly dict (tuples become lists)."""
  def plain(v):
    if isinstance(v, (tuple, list)):
      return [plain(x) for x in v]
    if isinstance(v, dict):
      return {k: plain(x) for k, x in v.items()}
    return v
  exclude = set(exclude)
  return {f.name: plain(getattr(config, f.name))
          for f in dataclasses.fields(config) if f.init and f.name not in exclude}


def as_data(resolved: Resolved) -> dict[str, Any]:
  """``resolved`` in the preset schema, with every field the agent uses,
  plus ``env_name`` and ``backend``: what a run's config.yaml holds, and
  what :func:`resolve_data` reads back."""
  unused = agents.algorithm(resolved.agent).unused_run_fields
  return {
      "env_name": resolved.env_name,
      "backend": resolved.backend,  # whose per-backend preset values applied
      "default_agent": resolved.agent,
      "env": to_dict(resolved.env_config),
      "render": to_dict(resolved.render),
      resolved.agent: {**to_dict(resolved.run, exclude=unused),
                       **to_dict(resolved.agent_config)},
  }


def agent_names() -> tuple[str, ...]:
  """Names of the agents in ``agents.ALGORITHMS``."""
  return tuple(agents.ALGORITHMS)


def check_agent(agent: str) -> str:
  """Returns ``agent`` if it is in the agent table, else raises naming the
  closest ones."""
  if agent not in agent_names():
    raise ConfigError(unknown_name("agent", agent, agent_names()))
  return agent


def check_env_name(env_name: str) -> str:
  """Returns ``env_name`` if registered, else raises naming the closest ones."""
  try:
    envs.env_class(env_name)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  return env_name


def preset_path(env_name: str) -> Path:
  """Path of the preset file of ``env_name`` (may not exist).

  A third-party env (``brax/<name>``, ``playground/<Name>``) without its own
  ``configs/brax/<name>.yaml`` / ``configs/playground/<Name>.yaml`` uses its
  registry's generic ``configs/brax/_default.yaml`` /
  ``configs/playground/_default.yaml``.
  """
  path = PRESET_DIR / f"{env_name}.yaml"
  if not path.exists() and envs.thirdparty.is_thirdparty(env_name):
    return PRESET_DIR / env_name.split("/", 1)[0] / "_default.yaml"
  return path


def read_yaml(path: Path, missing: str, fix: str) -> dict[str, Any]:
  """The mapping in the YAML file ``path``.

  Raises:
    ConfigError: ``missing`` when there is no such file; a message naming
      the file and ``fix`` when it cannot be read, is not YAML or holds no
      mapping.
  """
  path = Path(path)
  if not path.exists():
    raise ConfigError(missing)
  try:
    data = yaml.safe_load(path.read_text()) or {}
  except yaml.YAMLError as e:
    raise ConfigError(f"{path}: invalid YAML ({str(e).splitlines()[0]}); "
                      f"{fix}") from None
  except (OSError, UnicodeDecodeError) as e:
    raise ConfigError(f"{path}: cannot be read ({e}); {fix}") from None
  if not isinstance(data, dict):
    raise ConfigError(f"{path}: expected a mapping at the top level; {fix}")
  return data


def load_preset_data(env_name: str, path: Path | None = None) -> dict[str, Any]:
  """The parsed YAML of ``configs/<env_name>.yaml`` (or ``path``).

  Raises:
    ConfigError: missing file or invalid YAML.
  """
  path = Path(path) if path is not None else preset_path(env_name)
  return read_yaml(path, f"No preset for env {env_name!r}: {path} does not "
                         f"exist. Add it (see docs/training.md).",
                   "fix the preset")


def _split_agent_section(agent: str, section: Mapping[str, Any], where: str,
                         backend: str | None) -> tuple[RunConfig, Any]:
  """An agent section -> (RunConfig, agent config), both validated."""
  algo = agents.algorithm(agent)
  cls = algo.config_class
  agent_fields = {f.name for f in dataclasses.fields(cls) if f.init}
  run_fields = {f.name for f in dataclasses.fields(RunConfig)}
  unused = [k for k in section if k in algo.unused_run_fields]
  if unused:
    raise ConfigError(f"{where}: " + "; ".join(
        f"{agent} does not use {k!r} ({algo.unused_run_fields[k]})"
        for k in unused) + ": remove it")
  check_keys(section, agent_fields | run_fields, where,
             f"{agent} ({cls.__module__}.{cls.__qualname__} + "
             f"configs.RunConfig)", RENAMED)
  agent_part = {k: v for k, v in section.items() if k in agent_fields}
  run_part = {k: v for k, v in section.items() if k not in agent_fields}
  return (from_mapping(RunConfig(), run_part, where, backend=backend),
          from_mapping(cls(), agent_part, where, backend=backend))


def resolve_data(data: Mapping[str, Any], where: str, env_name: str,
                 agent: str | None, backends: Iterable[str | None]) -> Resolved:
  """Validated configs from a preset's (or a config.yaml's) parsed YAML.

  Args:
    data: the top-level mapping.
    where: file name for error messages.
    env_name: registered env name.
    agent: the agent; None uses ``data['default_agent']`` (default "shac").
    backends: backends whose per-backend values are validated, the one that
      applies first; ``(None,)`` forbids per-backend values (config.yaml).

  Raises:
    ConfigError: unknown top-level key, env, agent or field, or a bad value.
  """
  names = agent_names()
  sections = ("env", "render", *names)
  top = ("default_agent", *sections)
  if tuple(backends) == (None,):
    top += _RUN_DIR_KEYS
  check_keys(data, top, where, "the top level of a preset")
  for key in sections:
    if not isinstance(data.get(key) or {}, Mapping):
      raise ConfigError(f"{where}: section {key!r} must be a mapping, got "
                        f"{data[key]!r}")
  default_agent = data.get("default_agent", "shac")
  if default_agent not in names:
    raise ConfigError(f"{where}: default_agent: " +
                      unknown_name("agent", default_agent, names))
  agent = check_agent(agent or default_agent)
  check_env_name(env_name)
  resolved = []
  for b in backends:
    at = where + ("" if not resolved else f" ({b} values)")
    run, agent_config = _split_agent_section(agent, data.get(agent) or {},
                                             f"{at}:{agent}", b)
    resolved.append(Resolved(
        env_name=env_name, agent=agent, run=run, agent_config=agent_config,
        env_config=from_mapping(envs.default_config(env_name),
                                data.get("env"), f"{at}:env", backend=b),
        render=from_mapping(RenderConfig(), data.get("render"),
                            f"{at}:render", backend=b),
        backend=b))
  return resolved[0]


def resolve(env_name: str, agent: str | None = None, *, backend: str,
            path: Path | None = None) -> Resolved:
  """Validated configs for ``env_name`` and ``agent`` (default: the preset's).

  Args:
    env_name: registered env name.
    agent: a name in ``agents.ALGORITHMS``; None uses the preset's
      default_agent.
    backend: "cpu" or "gpu", whose per-backend values apply (the caller
      knows it: ``trainlib.startup.planned_backend()``).
    path: preset file (default ``configs/<env_name>.yaml``).

  Raises:
    ConfigError: unknown env/agent/backend, or any invalid preset entry
      (per-backend values are checked for every backend).
  """
  check_env_name(env_name)
  if agent is not None:
    check_agent(agent)
  if backend not in BACKENDS:
    raise ConfigError(unknown_name("backend", backend, BACKENDS))
  data = load_preset_data(env_name, path)
  where = (Path(path) if path is not None else preset_path(env_name))
  where = str(where.relative_to(PRESET_DIR)) if where.is_relative_to(PRESET_DIR) else where.name
  return resolve_data(data, where, env_name, agent,
                      (backend, *(b for b in BACKENDS if b != backend)))
