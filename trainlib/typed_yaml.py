"""Typed YAML: build frozen config dataclasses from YAML mappings, with
errors that name the file, the key, the expected type and the fix.

* :func:`from_mapping` replaces a dataclass instance's fields from a mapping:
  an unknown key is an error listing the valid keys and the closest match; a
  value of the wrong type is an error naming the expected type. Values are
  coerced where YAML is ambiguous (``3e-4`` parses as a string in YAML 1.1
  and is accepted for a float field; lists become tuples).
* A field may take one value per backend (``num_envs: {cpu: 64, gpu:
  1024}``) where the caller passes ``backend`` (:func:`select_backend`).
* :func:`to_dict` is the inverse, for writing YAML.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["BACKENDS", "ConfigError", "check_keys", "from_mapping",
           "select_backend", "to_dict", "unknown_name"]

# Keys of a per-backend value (``num_envs: {cpu: 64, gpu: 1024}``); the same
# names as trainlib.device.PRESET_BACKENDS.
BACKENDS = ("cpu", "gpu")

class ConfigError(ValueError):
  """A preset, config file or override does not match the config dataclasses."""


def unknown_name(what: str, value: Any, valid: typing.Sequence[str]) -> str:
  """``Unknown <what> 'x'. Did you mean 'y'? Valid: a, b, c.``"""
  close = difflib.get_close_matches(str(value), list(valid), n=3, cutoff=0.5)
  hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
  return f"Unknown {what} {value!r}.{hint} Valid: {', '.join(valid)}."


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
               where: str, what: str,
               renamed: Mapping[str, str] | None = None) -> None:
  """Raises ConfigError naming each unknown key, its closest valid key and
  all valid keys; a key in ``renamed`` (old name -> new name) gets an error
  that names its new name."""
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
                 where: str, backend: str | None = None,
                 renamed: Mapping[str, str] | None = None) -> Any:
  """Returns ``dataclasses.replace(default, **mapping)`` after validation.

  Args:
    default: a dataclass instance providing the defaults and the field types.
    mapping: the overrides (YAML section); None means no overrides.
    where: a location for error messages, e.g. "configs/pendulum.yaml:shac".
    backend: "cpu" or "gpu": per-backend values (``{cpu: 64, gpu: 1024}``)
      take this backend's entry. None: per-backend values are errors.
    renamed: old key -> new key, for errors that name the new key.

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
  check_keys(mapping, fields, where, cls.__name__,
             renamed)
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
