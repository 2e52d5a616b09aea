"""Test-session set-up shared by every test package.

JAX's persistent compilation cache is off for the test session unless
``$MJX_DIFFRL_TEST_JAX_CACHE`` names a directory (e.g.
``~/.cache/mjx-diffrl/jax-tests``, which makes a second run skip most XLA
compiles). It is off by default because with jaxlib 0.9.2 XLA:CPU crashed
the process (segmentation fault in ``executable.serialize()``, called by
JAX's cache write) late in cold full-suite runs, on different programs each
time, reproducibly; with the cache off the same sequence passes
(CONTRIBUTING.md). The ``train.py`` processes that tests start get the
session's cache directory, or a temporary one (fixture ``jax_cache_dir``).

The session compiles with ``XLA_FLAGS=--xla_cpu_use_fusion_emitters=false``
(``TEST_XLA_FLAG`` below) and without Python tracebacks in the programs'
locations (``JAX_TRACEBACK_IN_LOCATIONS_LIMIT=0``), to compile faster
(measured in CONTRIBUTING.md, "Suite time").

Compiled env rollouts are shared by every test file through the
session-scoped ``env_runs`` fixture (one compiled program per env and mode;
see :class:`EnvRuns`). Build new env tests on it rather than compiling
another rollout of the same env.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import pytest

# XLA:CPU's older (non-MLIR) fusion emitters compile the suite's MJX programs
# with less CPU time (about a fifth less for the hopper's gradient program,
# docs/benchmarks.md, "XLA:CPU flags and compile time"); values move in the
# last bits, as on another CPU, so the
# learning tests' thresholds are measured with this flag (with and without
# AVX-512; tests/agents/test_agents_learning.py). Set here, before JAX starts
# its backend, so the worker processes and every ``train.py`` process a test
# starts (they inherit ``XLA_FLAGS``) compile the same way. A flag you set
# yourself in ``XLA_FLAGS`` wins.
# The flag exists in the pinned jaxlib 0.9.2; jaxlib 0.12's XLA no longer
# knows it and aborts at start-up on an unknown flag, so it is set only there.
TEST_XLA_FLAG = "--xla_cpu_use_fusion_emitters=false"
import jaxlib  # pylint: disable=wrong-import-position,wrong-import-order
if (jaxlib.__version__.startswith("0.9.")
    and "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", "")):
  from jax._src import xla_bridge as _xla_bridge  # pylint: disable=ungrouped-imports
  assert not _xla_bridge.backends_are_initialized(), (
      "JAX started before tests/conftest.py could set XLA_FLAGS")
  os.environ["XLA_FLAGS"] = " ".join(
      f for f in (os.environ.get("XLA_FLAGS", ""), TEST_XLA_FLAG) if f)

# No Python traceback frames in the MLIR locations of the programs JAX emits:
# metadata only (the same values bit for bit), about a sixth less CPU time to
# lower and compile an MJX program (docs/benchmarks.md). Through the
# environment too, so that the ``train.py`` processes tests start inherit it.
os.environ.setdefault("JAX_TRACEBACK_IN_LOCATIONS_LIMIT", "0")
jax.config.update("jax_traceback_in_locations_limit",
                  int(os.environ["JAX_TRACEBACK_IN_LOCATIONS_LIMIT"]))

_setting = os.environ.get("MJX_DIFFRL_TEST_JAX_CACHE", "").strip()
_cache = Path(_setting).expanduser() if _setting else None
if _cache is not None:
  _cache.mkdir(parents=True, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", str(_cache))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


@pytest.fixture(scope="module")
def jax_cache_dir(tmp_path_factory) -> Path:
  """The compilation cache for the ``train.py`` processes a test module
  starts: the session's (``$MJX_DIFFRL_TEST_JAX_CACHE``) when set, else a
  fresh directory shared by that module's processes."""
  return _cache if _cache is not None else tmp_path_factory.mktemp("jax_cache")


@pytest.fixture
def write_preset(tmp_path) -> Callable[[str], Path]:
  """``write_preset(yaml_text) -> path`` of a preset file in ``tmp_path``."""
  def write(text: str) -> Path:
    path = tmp_path / "preset.yaml"
    path.write_text(text)
    return path
  return write


@pytest.fixture(scope="session")
def entry_point() -> Callable[[str], Any]:
  """``entry_point("train")``: the module of train.py (or evaluate.py),
  loaded from the repository root, for calling its ``main(argv)`` in this
  process."""
  import importlib.util  # pylint: disable=import-outside-toplevel
  root = Path(__file__).resolve().parents[1]
  loaded = {}

  def load(name: str):
    if name not in loaded:
      spec = importlib.util.spec_from_file_location(f"_{name}", root / f"{name}.py")
      loaded[name] = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(loaded[name])
    return loaded[name]
  return load


@dataclasses.dataclass(frozen=True)
class DefaultRun:
  """A compiled default-mode rollout of one env.

  ``rollout(state0, actions)``: ``state0`` a batch of ``B`` reset states,
  ``actions [B, T, nu]`` -> ``(obs, reward, done)`` each ``[B, T, ...]``.
  ``out = (obs0, (obs, reward, done))`` is its result for ``keys``/``actions``.
  """
  env: Any
  reset: Any
  rollout: Any
  keys: jax.Array
  actions: jax.Array
  out: Any


@dataclasses.dataclass(frozen=True)
class DiffRun:
  """A compiled differentiable-mode rollout plus gradient of one env.

  ``fn(state0, actions)`` -> ``((value [B], (obs [B, T, obs], reward [B, T],
  done [B, T])), grad [B, T, nu])`` where ``value`` is the return of the first
  ``H`` steps and ``grad`` its gradient with respect to ``actions``.
  ``out`` is its result for ``state0 = reset(keys)`` and ``actions``.
  """
  env: Any
  reset: Any
  fn: Any
  keys: jax.Array
  actions: jax.Array
  state0: Any
  out: Any


class EnvRuns:
  """One compiled program per (env name, mode), built on first use.

  Both programs take the reset state as an argument (reset is compiled on
  its own), so a task that differs from another only in its reset runs the
  other's compiled step program (``SAME_STEP``: cartpole_balance runs
  cartpole_swingup's, from its own reset states).
  """

  # task -> the task whose step program it runs; their configs may differ
  # only in the fields that reset reads (checked in ``_step_env``)
  SAME_STEP = {"cartpole_balance": ("cartpole_swingup",
                                    {"start_angle", "start_angle_noise"})}

  B = 2     # envs per vmapped batch
  T = 200   # rollout steps
  H = 32    # gradient horizon: the differentiated return is of steps [0, H)

  def __init__(self):
    self._default: dict[str, DefaultRun] = {}
    self._diff: dict[str, DiffRun] = {}
    self._envs: dict[tuple[str, bool], Any] = {}
    self._resets: dict[str, Any] = {}
    self._programs: dict[tuple[str, bool], Any] = {}

  def env(self, name: str, differentiable: bool):
    """``envs.make(name, differentiable=...)``, built once per session."""
    if (name, differentiable) not in self._envs:
      import envs  # pylint: disable=import-outside-toplevel
      self._envs[name, differentiable] = envs.make(name, differentiable=differentiable)
    return self._envs[name, differentiable]

  def reset(self, name: str):
    """The jitted, vmapped default-mode reset of ``name``. Both modes start
    from its states: a differentiable env's reset differs only in the
    solver's iteration count of one forward (its program would be a second
    compile of 2-15 s per contact task), and its step is what the
    differentiable tests are about."""
    if name not in self._resets:
      self._resets[name] = jax.jit(jax.vmap(self.env(name, False).reset))
    return self._resets[name]

  def _step_env(self, name: str, differentiable: bool):
    """The env whose step a program of ``name`` compiles (see SAME_STEP)."""
    env = self.env(name, differentiable)
    if name in self.SAME_STEP:
      other, reset_fields = self.SAME_STEP[name]
      twin = self.env(other, differentiable)
      a, b = dataclasses.asdict(env.config), dataclasses.asdict(twin.config)
      differ = {k for k in a if a[k] != b[k]}
      assert type(env).step is type(twin).step and differ <= reset_fields, (
          f"{name} no longer shares {other}'s step: {sorted(differ)}")
      return other, twin
    return name, env

  def _inputs(self, env):
    keys = jax.random.split(jax.random.PRNGKey(0), self.B)
    actions = jax.random.uniform(jax.random.PRNGKey(1),
                                 (self.B, self.T, env.action_size),
                                 minval=-1.0, maxval=1.0)
    return keys, actions

  def default(self, name: str) -> DefaultRun:
    if name not in self._default:
      env = self.env(name, False)
      reset = self.reset(name)
      program, step_env = self._step_env(name, differentiable=False)
      if (program, False) not in self._programs:

        @jax.jit
        def rollout(state0, actions):
          def one(state, acts):
            def body(s, a):
              s = step_env.step(s, a)
              return s, (s.obs, s.reward, s.done)
            return jax.lax.scan(body, state, acts)[1]
          return jax.vmap(one)(state0, actions)

        self._programs[program, False] = rollout
      rollout = self._programs[program, False]
      keys, actions = self._inputs(env)
      state0 = reset(keys)
      out = jax.block_until_ready((state0.obs, rollout(state0, actions)))
      self._default[name] = DefaultRun(env, reset, rollout, keys, actions, out)
    return self._default[name]

  def differentiable(self, name: str) -> DiffRun:
    if name not in self._diff:
      env = self.env(name, True)
      reset = self.reset(name)
      program, step_env = self._step_env(name, differentiable=True)
      if (program, True) not in self._programs:
        horizon = self.H

        def ret(actions, state):
          def body(s, a):
            s = step_env.step(s, a)
            return s, (s.obs, s.reward, s.done)
          _, (obs, reward, done) = jax.lax.scan(body, state, actions)
          return jnp.sum(reward[:horizon]), (obs, reward, done)

        grad_fn = jax.vmap(jax.value_and_grad(ret, has_aux=True))
        self._programs[program, True] = jax.jit(
            lambda state0, actions: grad_fn(actions, state0))
      fn = self._programs[program, True]
      keys, actions = self._inputs(env)
      state0 = reset(keys)
      out = jax.block_until_ready(fn(state0, actions))
      self._diff[name] = DiffRun(env, reset, fn, keys, actions, state0, out)
    return self._diff[name]


@pytest.fixture(scope="session")
def env_runs() -> EnvRuns:
  """The session's :class:`EnvRuns` (compiled rollouts by env and mode)."""
  return EnvRuns()


# Test modules whose tests, parametrised by task, build on ``env_runs``.
_BY_TASK = ("tests/envs/test_envs_smoke.py", "tests/envs/test_envs_grad.py")


def xdist_scope(nodeid: str) -> str:
  """The ``pytest-xdist`` work unit of a test (one unit runs on one worker).

  Tests of ``_BY_TASK`` are grouped by task (``[name]`` in the node id; with
  ``EnvRuns.SAME_STEP``'s twin), so a task's compiled programs are shared
  on one worker; every other test stays with its module, so module-scoped
  fixtures (e.g. the CLI's train.py runs) are set up once."""
  module = nodeid.split("::", 1)[0]
  if module in _BY_TASK and nodeid.endswith("]"):
    task = nodeid[nodeid.rindex("[") + 1:-1]
    return "task-" + EnvRuns.SAME_STEP.get(task, (task,))[0]
  return "module-" + module


# Work units that take longest (per-test durations of the cold suite, 28 Nov
# 2026, CONTRIBUTING.md), started first so that no long unit is left for
# the end while the other worker idles. Only the order depends on this list.
_LONGEST_FIRST = (
    "module-tests/test_train_multihost.py",
    "module-tests/agents/test_agents_learning.py",
    "module-tests/test_train_cli.py", "task-humanoid", "task-ant",
    "task-half_cheetah", "module-tests/test_benchmarks_gpu.py")


def pytest_collection_modifyitems(config, items):
  """Puts the units of ``_LONGEST_FIRST`` first (a stable sort: tests keep
  their order within a unit, and other units their collection order)."""
  rank = {scope: i for i, scope in enumerate(_LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(xdist_scope(item.nodeid), len(rank)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
  """Schedules whole :func:`xdist_scope` units on the ``-n`` workers.

  (``--dist loadgroup`` with ``xdist_group`` marks would say the same, but
  with pytest 9.2 and pytest-xdist 3.8 it does not group: xdist renames the
  items through ``item._nodeid``, which pytest 9 no longer reads.)"""
  from xdist.scheduler import LoadScopeScheduling  # pylint: disable=import-outside-toplevel

  class TaskScheduling(LoadScopeScheduling):
    def _split_scope(self, nodeid: str) -> str:
      return xdist_scope(nodeid)

  config.option.loadscopereorder = False  # keep the order given above
  return TaskScheduling(config, log)
