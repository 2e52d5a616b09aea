"""Training presets: one YAML file per env, one section per agent.

``configs/<env>.yaml`` has these top-level keys (all optional)::

    default_agent: shac        # the agent `train.py <env>` uses
    env: {...}                 # fields of the env's default_config()
    render: {...}              # fields of trainlib.render.RenderConfig
    shac: {...}                # RunConfig fields + agents.shac.Config fields
    apg: {...}                 # RunConfig fields + agents.apg.Config fields
    ppo: {...}                 # RunConfig fields + agents.ppo.Config fields

A run directory's ``config.yaml`` has the same schema (plus ``env_name`` and
``backend``, with resolved values only), so :func:`resolve_data` reads both.

Every section is checked against its dataclass (``trainlib.typed_yaml``): an
unknown key is an error naming the file, the section, the closest key and
the valid keys; an old key name is an error naming its new name.

A field of a preset section may take one value per backend::

    shac:
      num_envs: {cpu: 64, gpu: 1024}

Both keys are required; ``gpu`` applies on any accelerator JAX runs on.
:func:`resolve` picks the value of the backend JAX uses
(``trainlib.device.preset_backend``) and records it in ``Resolved.backend``.
Every backend's values are validated, so CI on a CPU checks the GPU values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from trainlib.spec import Resolved, RunConfig
from trainlib.typed_yaml import (BACKENDS, ConfigError, check_keys,
                                 from_mapping, unknown_name)

__all__ = ["BACKENDS", "ConfigError", "Resolved", "RunConfig",
           "agent_names", "check_agent", "check_env_name", "load_preset_data",
           "preset_path", "resolve", "resolve_data"]

PRESET_DIR = Path(__file__).resolve().parent
_SECTIONS = ("env", "render")
# Top-level keys that only a run directory's config.yaml has.
_RUN_DIR_KEYS = ("env_name", "backend")


def agent_names() -> tuple[str, ...]:
  """Names of the agents in ``agents.ALGORITHMS``."""
  import agents  # pylint: disable=import-outside-toplevel
  return tuple(agents.ALGORITHMS)


def check_agent(agent: str) -> str:
  """Returns ``agent`` if it is in the algorithm table, else raises naming
  the closest ones."""
  if agent not in agent_names():
    raise ConfigError(unknown_name("agent", agent, agent_names()))
  return agent


def check_env_name(env_name: str) -> str:
  """Returns ``env_name`` if registered, else raises naming the closest ones."""
  import envs  # pylint: disable=import-outside-toplevel
  try:
    envs.env_class(env_name)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  return env_name


def preset_path(env_name: str) -> Path:
  """Path of the preset file of ``env_name`` (may not exist)."""
  return PRESET_DIR / f"{env_name}.yaml"


def load_preset_data(env_name: str, path: Path | None = None) -> dict[str, Any]:
  """The parsed YAML of ``configs/<env_name>.yaml`` (or ``path``).

  Raises:
    ConfigError: missing file or invalid YAML.
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
  return data


def _split_agent_section(agent: str, section: Mapping[str, Any], where: str,
                         backend: str | None) -> tuple[RunConfig, Any]:
  """An agent section -> (RunConfig, agent config), both validated."""
  import agents  # pylint: disable=import-outside-toplevel
  from agents.config import RENAMED  # pylint: disable=import-outside-toplevel
  cls = agents.algorithm(agent).config_class
  agent_fields = {f.name for f in dataclasses.fields(cls) if f.init}
  run_fields = {f.name for f in dataclasses.fields(RunConfig)}
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
  import envs  # pylint: disable=import-outside-toplevel
  from trainlib.render import RenderConfig  # pylint: disable=import-outside-toplevel
  names = agent_names()
  top = ("default_agent", *_SECTIONS, *names)
  if backends == (None,):
    top += _RUN_DIR_KEYS
  check_keys(data, top, where, "the top level of a preset")
  for key in (*_SECTIONS, *names):
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


def resolve(env_name: str, agent: str | None = None, path: Path | None = None,
            backend: str | None = None) -> Resolved:
  """Validated configs for ``env_name`` and ``agent`` (default: the preset's).

  Args:
    env_name: registered env name.
    agent: a name in ``agents.ALGORITHMS``; None uses the preset's
      default_agent.
    path: preset file (default ``configs/<env_name>.yaml``).
    backend: "cpu" or "gpu", whose per-backend values apply; None asks JAX
      (``trainlib.device.preset_backend()``).

  Raises:
    ConfigError: unknown env/agent/backend, or any invalid preset entry
      (per-backend values are checked for every backend).
  """
  check_env_name(env_name)
  if agent is not None:
    check_agent(agent)
  data = load_preset_data(env_name, path)
  if backend is None:
    from trainlib import device  # pylint: disable=import-outside-toplevel
    backend = device.preset_backend()
  if backend not in BACKENDS:
    raise ConfigError(unknown_name("backend", backend, BACKENDS))
  where = (Path(path) if path is not None else preset_path(env_name)).name
  return resolve_data(data, where, env_name, agent,
                      (backend, *(b for b in BACKENDS if b != backend)))
