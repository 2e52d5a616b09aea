"""Which JAX backend a run uses, and a hint when a GPU sits unused.

``train.py`` prints :func:`backend_line` at start. When the system shows an
NVIDIA GPU (``nvidia-smi -L`` lists one, or ``/dev/nvidia0`` exists) but JAX
only sees CPUs, it also prints :func:`missing_cuda_warning`, which names the
install command (``INSTALL_COMMAND``).

Presets may give per-backend values (``num_envs: {cpu: 64, gpu: 1024}``,
see ``configs``); :func:`preset_backend` says which key applies here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["INSTALL_COMMAND", "PRESET_BACKENDS", "backend_line",
           "missing_cuda_warning", "preset_backend", "report", "system_gpus"]

INSTALL_COMMAND = "pip install -e '.[cuda]'"
PRESET_BACKENDS = ("cpu", "gpu")
# Device files an NVIDIA driver creates (/dev/dxg: WSL2's GPU bridge).
_GPU_DEVICE_FILES = ("/dev/nvidia0", "/dev/dxg")


def system_gpus(timeout_s: float = 10.0) -> list[str]:
  """GPUs the operating system shows, whatever JAX sees.

  Returns the lines of ``nvidia-smi -L`` that name a GPU when nvidia-smi is
  on PATH and answers; else the NVIDIA device files that exist; else ``[]``.
  Never raises.
  """
  smi = shutil.which("nvidia-smi")
  if smi is not None:
    try:
      out = subprocess.run([smi, "-L"], capture_output=True, text=True,
                           timeout=timeout_s, check=False).stdout
    except (OSError, subprocess.SubprocessError):
      out = ""
    gpus = [line.strip() for line in out.splitlines()
            if line.strip().startswith("GPU")]
    if gpus:
      return gpus
  return [path for path in _GPU_DEVICE_FILES if os.path.exists(path)]


def _platform(devices: Sequence[Any]) -> str:
  return devices[0].platform if devices else "none"


def backend_line(devices: Sequence[Any]) -> str:
  """One line naming JAX's backend and devices, e.g.
  ``JAX backend: cpu, 1 device: TFRT_CPU_0``."""
  kinds = [getattr(d, "device_kind", "") or "" for d in devices]
  names = [f"{d}" + (f" ({k})" if k and k.lower() not in str(d).lower() else "")
           for d, k in zip(devices, kinds)]
  shown = ", ".join(names[:4]) + (f", ... ({len(names) - 4} more)"
                                  if len(names) > 4 else "")
  plural = "device" if len(devices) == 1 else "devices"
  return f"JAX backend: {_platform(devices)}, {len(devices)} {plural}: {shown}"


def missing_cuda_warning(devices: Sequence[Any],
                         gpus: Sequence[str]) -> str | None:
  """The warning to print when the system shows a GPU that JAX does not use.

  Args:
    devices: ``jax.devices()``.
    gpus: what :func:`system_gpus` found.

  Returns:
    The warning text, or None when there is nothing to warn about (no GPU
    on the system, or JAX already runs on an accelerator).
  """
  if not gpus or _platform(devices) != "cpu":
    return None
  return (f"warning: the system shows a GPU ({gpus[0]}) but JAX only sees "
          f"CPU devices, so training runs on the CPU. Install JAX's CUDA "
          f"plugin with `{INSTALL_COMMAND}` (from the repository root), then "
          f"check `python -c \"import jax; print(jax.devices())\"`.")


def preset_backend(platform: str | None = None) -> str:
  """The per-backend preset key that applies: "cpu" or "gpu".

  Args:
    platform: a JAX platform name ("cpu", "gpu", "cuda", "rocm", "tpu");
      None asks ``jax.default_backend()`` (this initialises JAX's backends).

  Every accelerator uses the "gpu" values (only NVIDIA GPUs are supported
  by the ``cuda`` extra; TPUs are untested).
  """
  if platform is None:
    import jax  # pylint: disable=import-outside-toplevel
    platform = jax.default_backend()
  return "cpu" if platform == "cpu" else "gpu"


def report(print_fn: Callable[[str], None] = print,
           warn_fn: Callable[[str], None] | None = None,
           devices: Sequence[Any] | None = None,
           gpus: Sequence[str] | None = None) -> str | None:
  """Prints :func:`backend_line` and, when needed, the missing-CUDA warning.

  Args:
    print_fn: where the backend line goes.
    warn_fn: where the warning goes (default: stderr).
    devices: default ``jax.devices()``.
    gpus: default :func:`system_gpus` (only asked when JAX sees no GPU).

  Returns:
    The warning, or None.
  """
  if devices is None:
    import jax  # pylint: disable=import-outside-toplevel
    devices = jax.devices()
  print_fn(backend_line(devices))
  warning = None
  if _platform(devices) == "cpu":
    warning = missing_cuda_warning(devices,
                                   system_gpus() if gpus is None else gpus)
  if warning is not None:
    (warn_fn or (lambda s: print(s, file=sys.stderr)))(warning)
  return warning
