"""Multi-process training: ``train.py`` over several processes with
``jax.distributed``.

Every process runs the same ``train.py`` command plus its own process id::

    python train.py ENV --run-dir DIR --coordinator-address HOST:PORT \\
        --num-processes N --process-id I [other flags]

or with the same values in ``JAX_COORDINATOR_ADDRESS`` (JAX's own variable),
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``; flags win over variables.
Process 0 hosts the coordinator at ``HOST:PORT``. With none of them set,
nothing here runs and training is single-process as before.

:func:`initialize` calls ``jax.distributed.initialize`` before anything
starts JAX's backend; then ``jax.devices()`` lists every process's devices,
``agents.loop`` shards the env batch over all of them, and jit inserts the
cross-process gradient mean (gloo on CPU, NCCL on GPU). Only process 0
(:func:`is_primary`) writes the run directory; checkpoints are written by
all processes together with orbax.

A launch that cannot work fails with a clear message instead of hanging:
missing or inconsistent values (:class:`LaunchError`), a coordinator that
does not answer or processes that do not all join within
``--initialization-timeout`` seconds (the process prints why and exits with
status 2), and a process that dies during training (:func:`abort`, or JAX
terminates the others after ``--heartbeat-timeout`` seconds).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
from collections.abc import Mapping, Sequence

from configs import ConfigError

__all__ = ["ENV_VARS", "FLAGS", "Launch", "LaunchError", "abort", "barrier",
           "check_same", "fail",
           "finish", "initialize", "is_active", "is_primary", "local_model_device",
           "parse",
           "process_line"]

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


class LaunchError(ConfigError):
  """A multi-process launch that cannot work (names the fix)."""


@dataclasses.dataclass(frozen=True)
class Launch:
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


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None
          ) -> tuple[Launch | None, list[str]]:
  """Reads the launch from the raw command line and environment.

  Args:
    argv: train.py's arguments; ``--flag VALUE`` and ``--flag=VALUE`` (also
      with underscores) of :data:`FLAGS` are taken out.
    environ: default ``os.environ``; see :data:`ENV_VARS`.

  Returns:
    ``(launch, remaining argv)``; ``launch`` is None when neither the flags
    nor the variables ask for several processes.

  Raises:
    LaunchError: some but not all of address / number / id given, or a
      value that is not a number.
  """
  environ = os.environ if environ is None else environ
  values: dict[str, str] = {}
  rest: list[str] = []
  i = 0
  argv = list(argv)
  while i < len(argv):
    arg = argv[i]
    name, eq, value = arg.partition("=")
    name = name.replace("_", "-")
    if name in ENV_VARS:
      if not eq:
        if i + 1 >= len(argv):
          raise LaunchError(f"{name} needs a value")
        value = argv[i + 1]
        i += 1
      values[name] = value
    else:
      rest.append(arg)
    i += 1
  for flag, var in ENV_VARS.items():
    if flag not in values and environ.get(var, "").strip():
      values[flag] = environ[var].strip()
  given = [f for f in _REQUIRED if f in values]
  if not given:
    return None, rest
  if len(given) < len(_REQUIRED):
    missing = [f"{f} (or {ENV_VARS[f]})" for f in _REQUIRED if f not in values]
    raise LaunchError(
        f"a multi-process run needs {', '.join(_REQUIRED)}; missing "
        f"{', '.join(missing)}. See docs/agents.md, 'Multi-process training'.")
  ints = {}
  for flag in FLAGS[1:]:
    if flag in values:
      try:
        ints[flag] = int(values[flag])
      except ValueError:
        raise LaunchError(f"{flag} must be an integer, got "
                          f"{values[flag]!r}") from None
  launch = Launch(
      coordinator_address=values["--coordinator-address"],
      num_processes=ints["--num-processes"], process_id=ints["--process-id"],
      initialization_timeout=ints.get("--initialization-timeout",
                                      DEFAULT_INITIALIZATION_TIMEOUT),
      heartbeat_timeout=ints.get("--heartbeat-timeout",
                                 DEFAULT_HEARTBEAT_TIMEOUT))
  return launch, rest


def fail(message: str, status: int = 2) -> None:
  """Prints ``error: message`` and ends the process at once.

  ``os._exit`` skips JAX's exit handler, whose shutdown barrier would wait
  for the other processes (up to its own timeout) and then abort.
  """
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.stdout.flush()
  os._exit(status)  # pylint: disable=protected-access


def initialize(launch: Launch) -> None:
  """``jax.distributed.initialize`` for ``launch``, with a clear failure.

  Call before anything starts JAX's backend. If the processes have not all
  joined after ``launch.initialization_timeout`` seconds, prints an error
  naming the likely causes and exits with status 2 (JAX itself would abort
  with a stack trace a little later).

  Raises:
    LaunchError: JAX's backend already started, or the run has another
      number of processes than ``launch.num_processes`` says.
  """
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


def is_active() -> bool:
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
  if is_active():
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices(name)


def check_same(name: str, text: str) -> None:
  """Raises LaunchError unless every process passes the same ``text``
  (e.g. the resolved config); no-op in a single process."""
  if not is_active():
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
  if not is_active():
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
