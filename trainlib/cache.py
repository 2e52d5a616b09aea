"""JAX's persistent compilation cache for train.py, evaluate.py and the
benchmarks: one helper, one directory (``~/.cache/mjx-diffrl/jax`` unless
``$MJX_DIFFRL_JAX_CACHE`` says otherwise)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "DEFAULT_CACHE", "enable_compilation_cache"]

CACHE_ENV = "MJX_DIFFRL_JAX_CACHE"
DEFAULT_CACHE = Path("~/.cache/mjx-diffrl/jax").expanduser()


def enable_compilation_cache(path: str | Path | None = None) -> Path | None:
  """Turns on JAX's persistent compilation cache.

  The directory is ``path``, else ``$MJX_DIFFRL_JAX_CACHE``, else
  ``~/.cache/mjx-diffrl/jax``; setting the variable to an empty string turns
  the cache off. Returns the directory in use (None when off).
  """
  import jax  # pylint: disable=import-outside-toplevel
  if path is None:
    env = os.environ.get(CACHE_ENV)
    if env is not None and not env.strip():
      return None
    path = env or DEFAULT_CACHE
  path = Path(path).expanduser()
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path
