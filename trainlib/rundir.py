"""The run directory: layout, its config (written and read here only) and
the metrics log.

Layout of ``runs/<env>-<agent>-<timestamp>/``::

    config.yaml           resolved config, in the preset schema (plus
                          env_name and backend)
    checkpoints/<step>/   orbax checkpoints (APG/SHAC: CheckpointManager;
                          PPO: Brax's own orbax checkpoints), written atomically
    metrics.csv           one row per progress report
    tb/                   TensorBoard events
    learning_curve.png    return vs env steps
    policy.msgpack        final policy (APG/SHAC, agents.checkpoint format)
    policy_best.msgpack   the best policy of the periodic evaluations (+ .json)
    policy/<step>/        final policy (PPO, Brax's checkpoint format)
    eval.json             {return_mean, return_std, episodes, video, ...}
    gradient_check.json   the gradient health check (SHAC/APG; agents.health)
    video.mp4             the median-return evaluation episode
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

import configs
from configs import ConfigError, Resolved

__all__ = ["MetricsLog", "RunPaths", "new_run_dir", "read_config",
           "write_config", "write_text_atomic"]


@dataclasses.dataclass(frozen=True)
class RunPaths:
  """Paths inside one run directory."""
  root: Path

  @property
  def config(self) -> Path:
    return self.root / "config.yaml"

  @property
  def checkpoints(self) -> Path:
    return self.root / "checkpoints"

  @property
  def metrics(self) -> Path:
    return self.root / "metrics.csv"

  @property
  def tensorboard(self) -> Path:
    return self.root / "tb"

  @property
  def learning_curve(self) -> Path:
    return self.root / "learning_curve.png"

  def policy(self, algo) -> Path:
    """The final policy of agent ``algo`` (an ``agents.Algorithm``; a file
    or directory, as its ``policy_file`` says)."""
    return self.root / algo.policy_file

  def best_policy(self, algo) -> Path:
    """The best-evaluated policy of agent ``algo`` (kept during training)."""
    return self.root / algo.best_policy_file

  @property
  def eval(self) -> Path:
    return self.root / "eval.json"

  @property
  def video(self) -> Path:
    return self.root / "video.mp4"

  @property
  def gradient_check(self) -> Path:
    return self.root / "gradient_check.json"


def new_run_dir(base: Path, env_name: str, agent: str) -> Path:
  """``base/<env>-<agent>-<YYYYmmdd-HHMMSS>`` (suffixed if it exists; a
  ``/`` in the env name becomes ``-``)."""
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  env_name = env_name.replace("/", "-")  # brax/hopper -> brax-hopper
  root = Path(base) / f"{env_name}-{agent}-{stamp}"
  n = 1
  while root.exists():
    n += 1
    root = Path(base) / f"{env_name}-{agent}-{stamp}-{n}"
  return root


def write_text_atomic(path: Path, text: str) -> None:
  """Writes ``text`` to ``path`` through a temporary file and a rename, so
  a killed process never leaves a half-written file."""
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


def write_config(path: Path, resolved: Resolved) -> None:
  """Writes the fully resolved config (every field the agent uses, not just
  overrides) in the preset schema (``configs/<env>.yaml``) plus ``env_name``
  and ``backend``, so :func:`read_config` reads it back."""
  data = configs.as_data(resolved)
  header = ("# Resolved config of this run (written by train.py, in the "
            "schema of configs/<env>.yaml).\n# `python train.py --resume "
            "<this dir>` reuses it.\n")
  write_text_atomic(path, header + yaml.safe_dump(data, sort_keys=False))


def read_config(path: Path) -> Resolved:
  """Reads a run's config.yaml back into validated dataclasses: the one
  reader of a run's config (``train.py --resume``, ``evaluate.py`` and
  their portable-determinism launch all use it).

  Raises:
    ConfigError: missing or unreadable file, unknown env/agent or invalid
      entries.
  """
  path = Path(path)
  fix = "restore it or start a new run"
  data = configs.read_yaml(
      path, f"{path} does not exist: is {path.parent} a run directory written "
            f"by train.py?", f"the run directory's config is damaged: {fix}")
  if "env_name" not in data:
    raise ConfigError(f"{path} is not a config.yaml written by train.py "
                      f"(no env_name); {fix}")
  if "run" in data:
    raise ConfigError(f"{path} was written by an older version of train.py "
                      f"(its 'run' section); start a new run")
  backend = data.get("backend")
  if backend is not None and backend not in configs.BACKENDS:
    raise ConfigError(f"{path}: backend must be one of {configs.BACKENDS} "
                      f"(or absent), got {backend!r}")
  resolved = configs.resolve_data(data, str(path), str(data["env_name"]),
                                  None, (None,))
  return dataclasses.replace(resolved, backend=backend)


class MetricsLog:
  """metrics.csv plus TensorBoard events, one row per progress report.

  On resume (``resume=True``) the existing rows are read back (a damaged row,
  e.g. the tail of a run killed mid-write, is skipped). The first new row
  drops every old row at or after its env step (they came after the
  checkpoint the run resumed from) and purges them from TensorBoard, so the
  log matches the restored state.
  """

  def __init__(self, paths: RunPaths, resume: bool = False):
    self._paths = paths
    self._resume = resume
    self.rows: list[dict[str, Any]] = []
    if resume and paths.metrics.exists():
      with paths.metrics.open(newline="", errors="replace") as f:
        for row in csv.DictReader(f):
          try:
            steps = int(float(row.get("env_steps") or "nan"))
          except (TypeError, ValueError, OverflowError):
            continue
          parsed = {k: _num(v) for k, v in row.items() if k is not None}
          parsed["env_steps"] = steps
          self.rows.append(parsed)
    self._t0 = time.time()
    self._tb = None

  def log(self, env_steps: int, metrics: Mapping[str, float]) -> None:
    """Appends one row and rewrites metrics.csv atomically."""
    env_steps = int(env_steps)
    if self._tb is None:  # the first row of this process
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
      self.rows = [r for r in self.rows if r["env_steps"] < env_steps]
      self._wall0 = float(self.rows[-1].get("wall_s", 0.0)) if self.rows else 0.0
      self._tb = SummaryWriter(str(self._paths.tensorboard),
                               purge_step=env_steps if self._resume else None)
    row: dict[str, Any] = {"env_steps": env_steps,
                           "wall_s": round(self._wall0 + time.time() - self._t0,
                                           3)}
    for k, v in metrics.items():
      try:
        row[k] = float(v)
      except (TypeError, ValueError):
        continue
      if math.isfinite(row[k]):
        self._tb.add_scalar(k, row[k], env_steps)
    self.rows.append(row)
    self._tb.flush()
    self._write_csv()

  def _write_csv(self) -> None:
    keys: list[str] = []
    for row in self.rows:
      keys.extend(k for k in row if k not in keys)
    tmp = self._paths.metrics.with_name("metrics.csv.tmp")
    with tmp.open("w", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=keys)
      writer.writeheader()
      writer.writerows(self.rows)
    os.replace(tmp, self._paths.metrics)

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _num(v: str) -> Any:
  try:
    return float(v)
  except (TypeError, ValueError):
    return v
