"""The progress bar of a training run (tqdm on stderr)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping

from trainlib.rundir import RETURN_KEYS

__all__ = ["Progress"]


class Progress:
  """tqdm bar: env steps / total, latest return, steps/s and ETA.

  The bar starts at the first progress report, after compilation, so its
  rate and ETA exclude compile time; the compile time is printed on its own
  line.
  """

  def __init__(self, total: int, desc: str = "train", file=None):
    self.total = int(total)
    self.desc = desc
    self.file = file if file is not None else sys.stderr
    self.bar = None
    self.t_start = time.perf_counter()
    self.compile_s: float | None = None
    self.latest_return = math.nan
    self._write(f"{desc}: compiling (the first update includes XLA "
                f"compilation; cached runs start faster)...")

  def _write(self, msg: str) -> None:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    tqdm.write(msg, file=self.file)

  def __call__(self, env_steps: int, metrics: Mapping[str, float]) -> None:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    env_steps = int(env_steps)
    for key in RETURN_KEYS:
      value = metrics.get(key)
      if value is not None and math.isfinite(float(value)):
        self.latest_return = float(value)
    if self.bar is None:
      first_s = time.perf_counter() - self.t_start
      if "train/compile_s" in metrics:
        self.compile_s = float(metrics["train/compile_s"])
        self._write(f"{self.desc}: compiled in {self.compile_s:.1f}s "
                    f"(first report after {first_s:.1f}s)")
      else:
        self.compile_s = first_s
        self._write(f"{self.desc}: first report after {first_s:.1f}s "
                    f"(compile + first iteration)")
      self.bar = tqdm(total=self.total, initial=min(env_steps, self.total),
                      desc=self.desc, unit="step", unit_scale=True,
                      dynamic_ncols=True, smoothing=0.3, file=self.file,
                      mininterval=0.5)
    else:
      self.bar.update(max(0, min(env_steps, self.total) - self.bar.n))
    postfix = {"return": (f"{self.latest_return:.1f}"
                          if math.isfinite(self.latest_return) else "-")}
    sps = metrics.get("train/sps")
    if sps is not None:
      postfix["sps"] = f"{float(sps):.0f}"
    self.bar.set_postfix(postfix, refresh=True)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()
