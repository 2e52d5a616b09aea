"""Helpers shared by the benchmark scripts.

Timing, machine load, output writers and argument parsing; and every call a
benchmark makes into ``configs``, ``trainlib`` and the agents' training
functions, so that a change there is adapted here only.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

# --------------------------------------------------------------------------
# Timing, machine, formatting
# --------------------------------------------------------------------------


def time_call(fn: Callable, *args, repeats: int) -> tuple[float, float]:
  """``(first, median)``: seconds of the first call of ``fn(*args)``
  (compilation included) and the median of the next ``repeats`` calls."""
  t = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t
  runs = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    runs.append(time.perf_counter() - t)
  return first, statistics.median(runs)


def load_average() -> float:
  """The 1-minute load average (a shared machine inflates times)."""
  return os.getloadavg()[0]


def fmt(x: Any, spec: str = "{:,.0f}") -> str:
  """``spec.format(x)``, or ``n/a`` for None and non-finite floats."""
  if x is None or (isinstance(x, float) and not np.isfinite(x)):
    return "n/a"
  return spec.format(x)


# --------------------------------------------------------------------------
# Arguments and output files
# --------------------------------------------------------------------------


def parser(doc: str) -> argparse.ArgumentParser:
  """An argument parser described by the first line of ``doc``."""
  return argparse.ArgumentParser(description=doc.splitlines()[0])


def add_out(p: argparse.ArgumentParser,
            help: str = "write the markdown table here") -> None:  # pylint: disable=redefined-builtin
  p.add_argument("--out", default=None, help=help)


def check_tasks(names: Sequence[str]) -> None:
  """Fails with a clear error on an unknown task name, before any compile."""
  import envs  # pylint: disable=import-outside-toplevel
  for name in names:
    envs.env_class(name)


def write_text(path: str | None, text: str) -> None:
  """Writes ``text`` to ``path`` (nothing when ``path`` is None)."""
  if path:
    with open(path, "w") as f:
      f.write(text)


def read_csv(path: str) -> list[dict[str, str]]:
  """The rows of a CSV file with a header ([] when it does not exist)."""
  if not os.path.exists(path):
    return []
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def write_csv(path: str, fields: Sequence[str], rows: list[dict]) -> None:
  with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)


# --------------------------------------------------------------------------
# The project's configs, trainlib and agents (one place to adapt)
# --------------------------------------------------------------------------


def enable_cache() -> None:
  """train.py's persistent compilation cache."""
  from trainlib import startup  # pylint: disable=import-outside-toplevel
  startup.enable_compilation_cache()


def check_env_name(name: str) -> None:
  import configs  # pylint: disable=import-outside-toplevel
  configs.check_env_name(name)


def resolve(env_name: str, agent: str):
  """The env's preset for ``agent`` (``configs/<env>.yaml``), as train.py."""
  import configs  # pylint: disable=import-outside-toplevel
  from trainlib import startup  # pylint: disable=import-outside-toplevel
  return configs.resolve(env_name, agent,
                         backend=startup.preset_backend(jax.default_backend()))


def make_env(resolved, differentiable: bool = False):
  """The preset's env (its ``env_config``), as train.py builds it."""
  import envs  # pylint: disable=import-outside-toplevel
  return envs.make(resolved.env_name, differentiable, config=resolved.env_config)


def episode_length(env, config) -> int:
  """The episode length a run of ``config`` on ``env`` uses (as train.py)."""
  from agents import loop  # pylint: disable=import-outside-toplevel
  return loop.resolve_episode_length(env, getattr(config, "episode_length", None))


def backend_line() -> str:
  """One line naming JAX's backend and devices."""
  from trainlib import startup  # pylint: disable=import-outside-toplevel
  return startup.backend_line(jax.devices())


def system_gpus() -> list[str]:
  """GPUs the operating system lists (``nvidia-smi -L``)."""
  from trainlib import startup  # pylint: disable=import-outside-toplevel
  return startup.system_gpus()


def evaluator(env, make_policy: Callable, episodes: int,
              length: int) -> Callable[[Any, jax.Array], dict[str, Any]]:
  """``(params, key) -> summary``: the deterministic policy
  ``make_policy(params)`` over ``episodes`` episodes of ``length`` steps
  (``agents.rollout.evaluate``, jitted once), summarized as train.py's
  eval.json (``trainlib.run.summarize``)."""
  from agents import rollout  # pylint: disable=import-outside-toplevel
  from trainlib import run as evaluation  # pylint: disable=import-outside-toplevel
  record = evaluation.recorder(env)
  run = jax.jit(lambda p, k: rollout.evaluate(env, make_policy(p), k, episodes,
                                              length, record))

  def summary(params, key):
    ev = jax.device_get(run(params, key))
    return evaluation.summarize(ev, length, float(env.dt))

  return summary


def make_apply(agent: str, env, config) -> Callable:
  """``apply(params, obs, key) -> action`` of ``agent``'s deterministic policy
  (as evaluate.py)."""
  import agents  # pylint: disable=import-outside-toplevel
  return agents.algorithm(agent).make_apply(env, config)


def policy_params(env, config, train_state):
  """SHAC's or APG's policy parameters in a training state."""
  from agents import loop  # pylint: disable=import-outside-toplevel
  return loop.policy_params(env, config, train_state)


def init_state(agent: str, env, config, seed: int):
  """The training state a differentiable agent (SHAC, APG, SAPO) starts from."""
  return _differentiable(agent).init(env, config, jax.random.PRNGKey(seed))


def ppo_kwargs(config, episode_length: int) -> dict[str, Any]:
  """Brax ``ppo.train`` keyword arguments of a PPO preset."""
  from agents import ppo  # pylint: disable=import-outside-toplevel
  return ppo.brax_kwargs(config, episode_length)


class StopTraining(Exception):
  """Raised from Brax PPO's ``policy_params_fn`` to end a run early (Brax
  has no stop hook; agents.ppo does the same behind ``should_stop``)."""


def train_until(agent: str, env, config, seed: int, progress_fn: Callable,
                stop: Callable[[Any], bool]) -> bool:
  """Trains a differentiable agent (SHAC, APG, SAPO); after every update
  ``stop(train_state)`` decides whether to end the run there. Returns True
  when ``stop`` ended it, False when the preset's ``num_timesteps`` did."""

  stopped = []

  def should_stop(train_state) -> bool:
    if stop(train_state):
      stopped.append(True)
    return bool(stopped)

  _differentiable(agent).train_loop(env, config, jax.random.PRNGKey(seed),
                                    progress_fn, should_stop=should_stop)
  return bool(stopped)


def _differentiable(agent: str):
  """The agent table's row of ``agent``, which must train through our own loop."""
  import agents  # pylint: disable=import-outside-toplevel
  row = agents.algorithm(agent)
  if row.train_loop is None:
    names = [n for n, a in agents.ALGORITHMS.items() if a.train_loop is not None]
    raise ValueError(f"agent {agent!r} has no training loop of ours to drive "
                     f"(it trains through its own library); use one of {names}")
  return row
