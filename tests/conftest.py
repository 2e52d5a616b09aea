"""Test-session set-up shared by every test package.

JAX's persistent compilation cache is on for the test session (directory
``$MJX_DIFFRL_TEST_JAX_CACHE``, default ``~/.cache/mjx-diffrl/jax-tests``; set
it to an empty string to turn it off). On a machine that has run the suite
before, this skips most XLA compiles; a cold run compiles everything.
"""

import os
from pathlib import Path

import jax

_cache = os.environ.get("MJX_DIFFRL_TEST_JAX_CACHE",
                        str(Path("~/.cache/mjx-diffrl/jax-tests").expanduser()))
if _cache.strip():
  Path(_cache).mkdir(parents=True, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", _cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
