"""Portable determinism: the same seed trains bit-identically on any x86-64
CPU with AVX2 (no speed cost measured on the cart-pole; docs/training.md).

XLA:CPU compiles every jitted function for the instruction set of the CPU it
runs on (AVX-512, AVX2, ...). Different instructions round differently (wider
vector reductions sum in another order, fused multiply-adds), and training
amplifies the last-bit differences, so one seed gives different curves on
different machines. ``--xla_cpu_max_isa=AVX2`` makes XLA emit the same code on
every CPU that has AVX2 (x86-64-v3: Intel since Haswell, AMD since Zen), so
``train.py --portable-determinism`` sets it before JAX starts its backend.

What it cannot make equal: CPUs without AVX2, other architectures (ARM,
Apple silicon), GPUs, and other versions of jax/jaxlib, MJX or Brax. Measured
effect and cost: docs/training.md, "Reproducibility".
"""

from __future__ import annotations

import os
import platform

from configs import ConfigError

__all__ = ["PORTABLE_ISA", "enable", "isa_flag"]

PORTABLE_ISA = "AVX2"
_FLAG = "--xla_cpu_max_isa"


def isa_flag(flags: str) -> str | None:
  """The value of ``--xla_cpu_max_isa`` in an ``XLA_FLAGS`` string, or None."""
  value = None
  for item in flags.split():
    if item.startswith(_FLAG + "="):
      value = item.split("=", 1)[1]
  return value


def _cpu_flags() -> set[str]:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("flags"):
          return set(line.split(":", 1)[1].split())
  except OSError:
    pass
  return set()


def enable() -> str:
  """Caps XLA:CPU at AVX2 for this process; call before JAX's first computation.

  Returns:
    The ``XLA_FLAGS`` value now in effect.

  Raises:
    ConfigError: if this is not an x86-64 CPU with AVX2 and FMA, if
      ``XLA_FLAGS`` already caps the instruction set at another level, or if
      JAX's backend already started (the flag would be ignored).
  """
  machine = platform.machine().lower()
  if machine not in ("x86_64", "amd64"):
    raise ConfigError(
        f"--portable-determinism needs an x86-64 CPU (this is {machine}); "
        f"results on other architectures differ from x86 ones. Run without it.")
  cpu = _cpu_flags()
  if cpu and not {"avx2", "fma"} <= cpu:
    raise ConfigError(
        "--portable-determinism needs a CPU with AVX2 and FMA; this one lacks "
        f"{sorted({'avx2', 'fma'} - cpu)}, so it cannot reproduce AVX2 results. "
        "Run without it.")
  flags = os.environ.get("XLA_FLAGS", "")
  current = isa_flag(flags)
  if current is not None and current.upper() != PORTABLE_ISA:
    raise ConfigError(
        f"XLA_FLAGS already sets {_FLAG}={current}; --portable-determinism "
        f"needs {_FLAG}={PORTABLE_ISA}. Remove it from XLA_FLAGS or drop "
        f"--portable-determinism.")
  from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
  if xla_bridge.backends_are_initialized():
    if current is None:
      raise ConfigError(
          "--portable-determinism must take effect before JAX starts; set "
          f"XLA_FLAGS={_FLAG}={PORTABLE_ISA} in the environment instead.")
    return flags
  if current is None:
    flags = f"{flags} {_FLAG}={PORTABLE_ISA}".strip()
    os.environ["XLA_FLAGS"] = flags
  return flags


def requested(argv: list[str]) -> bool:
  """Whether a train.py/evaluate.py command line asks for portable determinism.

  Read from the raw arguments, before anything starts JAX's backend (resolving
  a preset already asks JAX which backend it runs on): the flag
  ``--portable-determinism`` (or ``--portable-determinism True``), or the
  saved config of the run directory given to ``--resume`` (train.py) or as
  the first argument (evaluate.py).
  """
  import yaml  # pylint: disable=import-outside-toplevel
  from pathlib import Path  # pylint: disable=import-outside-toplevel
  wanted = False
  for i, arg in enumerate(argv):
    name = arg.replace("_", "-")
    if name in ("--portable-determinism", "--run.portable-determinism"):
      nxt = argv[i + 1] if i + 1 < len(argv) else ""
      wanted = nxt.lower() not in ("false", "0", "no")
    elif name.startswith(("--portable-determinism=", "--run.portable-determinism=")):
      wanted = name.split("=", 1)[1].lower() not in ("false", "0", "no")
    elif name in ("--no-portable-determinism", "--run.no-portable-determinism"):
      wanted = False
  run_dirs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--resume"]
  run_dirs += [a for a in argv[:1] if not a.startswith("-")]
  for run_dir in run_dirs:
    path = Path(run_dir) / "config.yaml"
    try:
      data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
      continue
    if isinstance(data, dict) and isinstance(data.get("run"), dict):
      wanted = wanted or bool(data["run"].get("portable_determinism", False))
  return wanted
