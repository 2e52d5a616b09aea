"""Start-up of train.py and evaluate.py, and the process-wide runtime.

An entry point calls :func:`prepare` first (before anything imports mujoco
or starts JAX) and :func:`start` once its command line is parsed
(``trainlib.cli``), before the first computation:

* headless OpenGL: MuJoCo picks its GL backend from ``MUJOCO_GL`` once, at
  import, so :func:`prepare` probes ``egl`` then ``osmesa`` in a short-lived
  subprocess and sets the first that renders (:func:`configure_gl`);
* quiet imports: MJX prints "Failed to import warp" when the optional warp
  package is absent; :func:`prepare` drops that one message;
* portable determinism: ``--xla_cpu_max_isa=AVX2`` so that one seed trains
  bit-identically on any x86-64 CPU with AVX2 (:func:`enable_portable`);
* multi-process runs: ``jax.distributed.initialize`` with failures that name
  the fix (:func:`init_processes`), and the runtime helpers the run uses
  (:func:`is_primary`, :func:`barrier`, :func:`finish`, ...);
* JAX's persistent compilation cache (:func:`enable_compilation_cache`);
* the backend: which per-backend preset values apply
  (:func:`planned_backend`, decided before JAX starts and checked after),
  and a warning when a GPU sits unused (:func:`report_devices`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import platform
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# --- headless OpenGL -------------------------------------------------------

# Backends tried in order when the user has not set MUJOCO_GL.
CANDIDATES = ("egl", "osmesa")

INSTALL_HINT = (
    "Headless rendering needs EGL or OSMesa. On Debian/Ubuntu install them "
    "with `sudo apt-get install -y libegl1 libgl1 libosmesa6` (conda: "
    "`conda install -c conda-forge mesalib`), or set MUJOCO_GL to a backend "
    "that works on this machine (egl, osmesa, glfw with a display). To train "
    "without a video, pass --no-video.")

_PROBE = """
import mujoco
m = mujoco.MjModel.from_xml_string(
    '<mujoco><worldbody><light pos="0 0 2"/>'
    '<geom type="sphere" size="0.2" rgba="1 0 0 1"/></worldbody></mujoco>')
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
with mujoco.Renderer(m, 16, 16) as r:
  r.update_scene(d)
  px = r.render()
assert px.max() > 0, 'blank frame'
"""


class RenderingUnavailableError(RuntimeError):
  """No headless OpenGL backend works; the message says what to install."""


@dataclasses.dataclass(frozen=True)
class GLStatus:
  """Outcome of :func:`configure_gl`.

  Attributes:
    backend: the MUJOCO_GL value in use, or None when no backend works.
    chosen_by: "user" (MUJOCO_GL was already set), "probe", or "none".
    errors: backend -> last line of the probe's error, for failed backends.
  """
  backend: str | None
  chosen_by: str
  errors: dict[str, str]

  def require(self) -> str:
    """Returns the backend, or raises RenderingUnavailableError."""
    if self.backend is None:
      tried = "; ".join(f"{b}: {e}" for b, e in self.errors.items())
      raise RenderingUnavailableError(
          f"No headless OpenGL backend works (tried {tried}). {INSTALL_HINT}")
    return self.backend


_STATUS: GLStatus | None = None


def _probe(backend: str, timeout: float = 60.0) -> str | None:
  """Renders a tiny frame with `backend` in a subprocess; returns an error."""
  env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
  try:
    proc = subprocess.run([sys.executable, "-c", _PROBE], env=env,
                          capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    return f"probe timed out after {timeout:.0f}s"
  if proc.returncode == 0:
    return None
  lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
  return lines[-1] if lines else f"exit code {proc.returncode}"


def configure_gl(candidates: tuple[str, ...] = CANDIDATES) -> GLStatus:
  """Chooses a headless GL backend and exports it (MUJOCO_GL etc.).

  Must run before ``mujoco`` is imported to have any effect. When MUJOCO_GL is
  already set it is respected and not probed. The result is cached.

  Returns:
    The GLStatus; ``status.require()`` raises if rendering is impossible.
  """
  global _STATUS
  if _STATUS is not None:
    return _STATUS
  user = os.environ.get("MUJOCO_GL", "").strip()
  if user:
    _STATUS = GLStatus(backend=user, chosen_by="user", errors={})
    return _STATUS
  if "mujoco" in sys.modules:
    # Too late to choose: mujoco already bound its default backend (glfw on
    # Linux). Report it so that rendering fails with the install hint.
    _STATUS = GLStatus(backend=None, chosen_by="none", errors={
        "all": "mujoco was imported before trainlib.startup.configure_gl(); "
               "set MUJOCO_GL=egl (or osmesa) in the environment"})
    return _STATUS
  errors: dict[str, str] = {}
  for backend in candidates:
    err = _probe(backend)
    if err is None:
      os.environ["MUJOCO_GL"] = backend
      if backend in ("egl", "osmesa"):
        os.environ["PYOPENGL_PLATFORM"] = backend
      _STATUS = GLStatus(backend=backend, chosen_by="probe", errors=errors)
      return _STATUS
    errors[backend] = err
  # Leave MUJOCO_GL unset so that importing mujoco still works (rendering
  # is then refused with a clear message by GLStatus.require()).
  _STATUS = GLStatus(backend=None, chosen_by="none", errors=errors)
  return _STATUS


def gl_status() -> GLStatus | None:
  """The cached result of :func:`configure_gl`, or None if it has not run."""
  return _STATUS


# --- portable determinism -------------------------------------------------

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


def enable_portable() -> str:
  """Caps XLA:CPU at AVX2 for this process; call before JAX's first computation.

  Returns:
    The ``XLA_FLAGS`` value now in effect.

  Raises:
    ConfigError: if this is not an x86-64 CPU with AVX2 and FMA, if
      ``XLA_FLAGS`` already caps the instruction set at another level, or if
      JAX's backend already started (the flag would be ignored).
  """
  from configs.schema import ConfigError  # pylint: disable=import-outside-toplevel
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


# --- compilation cache ----------------------------------------------------

CACHE_ENV = "MJX_DIFFRL_JAX_CACHE"


def enable_compilation_cache(path: str | Path | None = None) -> Path | None:
  """Turns on JAX's persistent compilation cache when asked: ``path``, else
  ``$MJX_DIFFRL_JAX_CACHE`` (a directory). Off by default: with jaxlib 0.9.2
  a cache write (``executable.serialize()``, in the training process) has
  ended long processes with a segmentation fault that nothing can catch, so
  only a user who accepts that risk for a faster second start turns it on
  (docs/training.md, "Compilation cache"). Returns the directory in use
  (None when off).
  """
  import jax  # pylint: disable=import-outside-toplevel
  if path is None:
    path = os.environ.get(CACHE_ENV, "").strip()
    if not path:
      return None
  path = Path(path).expanduser()
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path


# --- devices and the preset backend ---------------------------------------

INSTALL_COMMAND = "pip install -e '.[cuda]'"
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


def report_devices(print_fn: Callable[[str], None] = print,
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


# --- multi-process runs ---------------------------------------------------

# flag -> environment variable (JAX_COORDINATOR_ADDRESS is JAX's own).
ENV_VARS = {
    "--coordinator-address": "JAX_COORDINATOR_ADDRESS",
    "--num-processes": "JAX_NUM_PROCESSES",
    "--process-id": "JAX_PROCESS_ID",
    "--initialization-timeout": "JAX_INITIALIZATION_TIMEOUT",
    "--heartbeat-timeout": "JAX_HEARTBEAT_TIMEOUT",
}
FLAGS = tuple(ENV_VARS)
_REQUIRED = FLAGS[:3]
# JAX's defaults (jax.distributed.initialize).
DEFAULT_INITIALIZATION_TIMEOUT = 300
DEFAULT_HEARTBEAT_TIMEOUT = 100
# JAX aborts the process this many seconds after our own deadline, so that
# our message comes first.
_JAX_GRACE_S = 10


@dataclasses.dataclass(frozen=True)
class ProcessGroup:
  """One process's part of a multi-process run.

  Attributes:
    coordinator_address: ``HOST:PORT`` of process 0's coordinator.
    num_processes: processes in the run.
    process_id: this process, ``0 <= process_id < num_processes``.
    initialization_timeout: seconds to wait for all processes to join.
    heartbeat_timeout: seconds after which a silent process counts as dead.
  """
  coordinator_address: str
  num_processes: int
  process_id: int
  initialization_timeout: int = DEFAULT_INITIALIZATION_TIMEOUT
  heartbeat_timeout: int = DEFAULT_HEARTBEAT_TIMEOUT

  def __post_init__(self):
    from configs.schema import LaunchError  # pylint: disable=import-outside-toplevel
    host, sep, port = self.coordinator_address.rpartition(":")
    if not sep or not host or not port.isdigit():
      raise LaunchError(
          f"--coordinator-address must be HOST:PORT (process 0's host and a "
          f"free port), got {self.coordinator_address!r}")
    if self.num_processes < 1:
      raise LaunchError(f"--num-processes must be >= 1, got {self.num_processes}")
    if not 0 <= self.process_id < self.num_processes:
      raise LaunchError(
          f"--process-id must be in 0..{self.num_processes - 1} for "
          f"--num-processes {self.num_processes}, got {self.process_id}")
    for name in ("initialization_timeout", "heartbeat_timeout"):
      if getattr(self, name) < 1:
        raise LaunchError(f"--{name.replace('_', '-')} must be >= 1 second, "
                          f"got {getattr(self, name)}")


def fail(message: str, status: int = 2) -> None:
  """Prints ``error: message`` and ends the process at once.

  ``os._exit`` skips JAX's exit handler, whose shutdown barrier would wait
  for the other processes (up to its own timeout) and then abort.
  """
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.stdout.flush()
  os._exit(status)  # pylint: disable=protected-access


def init_processes(launch: ProcessGroup) -> None:
  """``jax.distributed.initialize`` for ``launch``, with a clear failure.

  Call before anything starts JAX's backend. If the processes have not all
  joined after ``launch.initialization_timeout`` seconds, prints an error
  naming the likely causes and exits with status 2 (JAX itself would abort
  with a stack trace a little later).

  Raises:
    LaunchError: JAX's backend already started, or the run has another
      number of processes than ``launch.num_processes`` says.
  """
  from configs.schema import LaunchError  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
  if xla_bridge.backends_are_initialized():
    raise LaunchError("jax.distributed.initialize must run before JAX starts "
                      "its backend; pass the multi-process flags to train.py")
  who = f"process {launch.process_id} of {launch.num_processes}"
  timer = threading.Timer(launch.initialization_timeout, fail, args=(
      f"{who}: not all {launch.num_processes} processes joined the run within "
      f"{launch.initialization_timeout}s (--initialization-timeout). Either "
      f"the coordinator at {launch.coordinator_address} does not answer "
      f"(process 0 must run on that host and port, reachable from here), or "
      f"some of processes 0..{launch.num_processes - 1} were not started, or "
      f"they were given different --num-processes.",))
  timer.daemon = True
  timer.start()
  try:
    jax.distributed.initialize(
        coordinator_address=launch.coordinator_address,
        num_processes=launch.num_processes, process_id=launch.process_id,
        initialization_timeout=launch.initialization_timeout + _JAX_GRACE_S,
        heartbeat_timeout_seconds=launch.heartbeat_timeout)
  finally:
    timer.cancel()
  if jax.process_count() != launch.num_processes:
    fail(f"{who}: the coordinator runs {jax.process_count()} processes, "
          f"this one was told --num-processes {launch.num_processes}; give "
          f"every process the same value.")


def is_distributed() -> bool:
  """Whether this process is part of a multi-process run."""
  import jax  # pylint: disable=import-outside-toplevel
  return jax.distributed.is_initialized() and jax.process_count() > 1


def is_primary() -> bool:
  """Whether this process writes the run directory (process 0)."""
  import jax  # pylint: disable=import-outside-toplevel
  return jax.process_index() == 0


def process_line() -> str:
  """e.g. ``process 1 of 2 (1 local device, 2 in all)``."""
  import jax  # pylint: disable=import-outside-toplevel
  n = jax.local_device_count()
  return (f"process {jax.process_index()} of {jax.process_count()} ({n} local "
          f"device{'s' if n != 1 else ''}, {jax.device_count()} in all)")


def barrier(name: str) -> None:
  """Waits until every process got here (no-op in a single process)."""
  if is_distributed():
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices(name)


def check_same(name: str, text: str) -> None:
  """Raises LaunchError unless every process passes the same ``text``
  (e.g. the resolved config); no-op in a single process."""
  from configs.schema import LaunchError  # pylint: disable=import-outside-toplevel
  if not is_distributed():
    return
  import hashlib  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  digest = np.frombuffer(hashlib.sha256(text.encode()).digest(), np.uint32)
  every = np.asarray(multihost_utils.process_allgather(digest))
  if not (every == every[0]).all():
    differ = [i for i in range(len(every)) if not (every[i] == every[0]).all()]
    raise LaunchError(
        f"processes {differ} were started with another {name} than process "
        f"0; start every process with the same command line (only "
        f"--process-id differs)")


@contextlib.contextmanager
def local_model_device():
  """Builds MJX models on this process's own first device.

  ``mjx.put_model`` without a ``device`` places the model on
  ``jax.devices()[0]``, which in a multi-process run belongs to process 0,
  so the other processes could not read it. Inside this context (only in a
  multi-process run) ``jax.devices()`` lists this process's devices, so
  wrap env construction in it. The lasting fix is for
  ``envs.physics.put_model`` to pass ``device=jax.local_devices()[0]``.
  """
  if not is_distributed():
    yield
    return
  import jax  # pylint: disable=import-outside-toplevel
  from unittest import mock  # pylint: disable=import-outside-toplevel
  local = jax.local_devices
  with mock.patch.object(jax, "devices",
                         lambda backend=None: local(backend=backend)):
    yield


def finish() -> None:
  """Leaves the multi-process run after training (all processes together);
  afterwards process 0 evaluates alone. No-op in a single process."""
  import jax  # pylint: disable=import-outside-toplevel
  if jax.distributed.is_initialized():
    jax.distributed.shutdown()


def abort(error: BaseException) -> None:
  """Ends a multi-process run's process after ``error`` without waiting for
  the others (they fail at their next collective, or JAX ends them after
  ``--heartbeat-timeout``)."""
  import jax  # pylint: disable=import-outside-toplevel
  text = str(error).strip().splitlines()
  first = text[0] if text else type(error).__name__
  peer = (isinstance(error, getattr(jax.errors, "JaxRuntimeError", ()))
          or "gloo" in first.lower())
  hint = (" Another process probably died or became unreachable; restart all "
          "processes with --resume RUN_DIR." if peer else "")
  if not peer:  # a bug, not a lost peer: show where
    import traceback  # pylint: disable=import-outside-toplevel
    traceback.print_exception(error, file=sys.stderr)
  fail(f"process {jax.process_index()} of {jax.process_count()} stopped: "
        f"{type(error).__name__}: {first}.{hint}", status=1)


# --- the backend whose preset values apply ----------------------------------

def _gpu_plugin_installed() -> bool:
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  try:
    return any(True for _ in metadata.entry_points(group="jax_plugins"))
  except Exception:  # pylint: disable=broad-except
    return False


def planned_backend() -> str:
  """The preset backend ("cpu" or "gpu") this process will run on, decided
  before JAX starts (presets are resolved before the launch is applied):
  ``JAX_PLATFORMS``' first entry when set, else "gpu" when a JAX GPU plugin
  is installed and the system shows a GPU, else "cpu". :func:`start` checks
  the guess against the backend JAX actually starts."""
  platforms = os.environ.get("JAX_PLATFORMS", "").strip()
  if platforms:
    return preset_backend(platforms.split(",")[0].strip())
  return "gpu" if _gpu_plugin_installed() and system_gpus() else "cpu"


# --- entry points -------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Launch:
  """What must take effect before JAX starts its backend.

  Attributes:
    backend: the preset backend the config was resolved for
      (:func:`planned_backend`); checked once JAX runs.
    portable: cap XLA:CPU at AVX2 (``RunConfig.portable_determinism``, from
      the flag, the preset or the resumed run's config).
    processes: this process's part of a multi-process run, or None.
    render: a video will be rendered (headless GL is required).
  """
  backend: str = "cpu"
  portable: bool = False
  processes: ProcessGroup | None = None
  render: bool = False


_WARP_MESSAGES = ("Failed to import warp", "Failed to import mujoco_warp")


def import_mjx_quietly() -> None:
  """Imports ``mujoco.mjx`` without the line MJX prints when the optional
  ``warp`` package is absent; anything else it prints is passed on."""
  if "mujoco.mjx" in sys.modules:
    return
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    import mujoco.mjx  # pylint: disable=import-outside-toplevel,unused-import
  for line in out.getvalue().splitlines():
    if not line.startswith(_WARP_MESSAGES):
      print(line)


def prepare(gl: bool = True) -> None:
  """First call of an entry point, before anything imports mujoco or jaxlib.

  Hides XLA's C++ logs unless the user set ``TF_CPP_MIN_LOG_LEVEL`` (loading
  cached executables makes XLA:CPU log spurious "machine feature" errors),
  chooses the headless GL backend when ``gl`` (``trainlib.cli.needs_gl``),
  and imports MJX quietly.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  if gl:
    configure_gl()
  import_mjx_quietly()


def start(launch: Launch, print_fn: Callable[[str], None] = print) -> None:
  """Applies ``launch`` before JAX's first computation: portable
  determinism, then ``jax.distributed``, then the compilation cache; prints
  the backend line and checks that the preset backend was the right guess.

  Raises:
    ConfigError: portable determinism cannot take effect, the preset was
      resolved for another backend than JAX runs on, or rendering is
      requested and no GL backend works (RenderingUnavailableError).
  """
  from configs.schema import ConfigError  # pylint: disable=import-outside-toplevel
  if launch.render:
    (gl_status() or configure_gl()).require()
  if launch.portable:
    enable_portable()
  if launch.processes is not None:
    init_processes(launch.processes)
  enable_compilation_cache()
  import jax  # pylint: disable=import-outside-toplevel
  report_devices(print_fn)
  if launch.processes is not None:
    print_fn(process_line())
  actual = preset_backend(jax.default_backend())
  if actual != launch.backend:
    raise ConfigError(
        f"the config was resolved with the preset's {launch.backend} values, "
        f"but JAX runs on {actual}; set JAX_PLATFORMS={jax.default_backend()} "
        f"(or fix the JAX install) so that both agree")


def run_entry(body: Callable[[], int], hint: Callable[[], str]) -> int:
  """Runs an entry point's ``body`` and turns the errors a user can fix into
  one line on stderr: exit status 2 for a bad config, flag, checkpoint, file,
  GL setup or a failed write (a full disk), and 130 on Ctrl-C, each
  followed by ``hint()`` (how to continue, e.g. the resume command). In a
  multi-process run the process ends at once (the others fail at their next
  collective) and an unexpected error is reported with its traceback.
  """
  from agents.checkpoint import CheckpointError  # pylint: disable=import-outside-toplevel
  from configs.schema import ConfigError  # pylint: disable=import-outside-toplevel
  try:
    return body()
  except (ConfigError, CheckpointError, FileNotFoundError,
          RenderingUnavailableError) as e:
    message, status = str(e), 2
  except OSError as e:  # e.g. no space left on device while writing the run
    message, status = f"{e}; free space (or fix the path), then {hint()}", 2
  except KeyboardInterrupt:
    message, status = f"interrupted; {hint()}", 130
  except Exception as e:  # pylint: disable=broad-except
    if _processes_started():
      abort(e)
    raise
  if _processes_started():
    fail(message, status=status)
  print(f"error: {message}" if status != 130 else f"\n{message}",
        file=sys.stderr)
  return status


def _processes_started() -> bool:
  if "jax" not in sys.modules:
    return False
  import jax  # pylint: disable=import-outside-toplevel
  return jax.distributed.is_initialized()
