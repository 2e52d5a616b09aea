"""GPU benchmark: env throughput, SHAC update rate, a timed hopper SHAC run, memory.

    python -m benchmarks.gpu          # sized for about 8 minutes on a GPU
                                      # (not yet run on one)
    python -m benchmarks.gpu --tiny   # tiny sizes and the cheapest env: checks
                                      # the script on a CPU (100 s on the
                                      # loaded 2-core CPU, cold cache)

It prints a Markdown table (also written to ``--out`` if given):

* **physics**: env steps/s of ``hopper`` and ``ant`` at B = 1024 and 4096,
  T = 32: default-mode forward, differentiable forward and differentiable
  ``value_and_grad`` (``benchmarks.envs.bench``; compile times too).
  Rows start while less than ``--physics-seconds`` have passed; the rest are
  printed as skipped (the persistent compilation cache makes a rerun faster).
* **SHAC**: one ``agents.shac.train`` run on ``hopper`` with the preset of
  the backend in use (``configs/hopper.yaml``; on a GPU its untuned ``gpu``
  values), stopped ``--shac-seconds`` after its first (compiling) update:
  compile time, updates/s and env steps/s after compilation, the last
  training window's return, and the deterministic policy's return and mean
  forward velocity over ``--eval-envs`` episodes on the default-mode env.
* **memory**: the peak of ``nvidia-smi``'s ``memory.used`` (all GPUs, polled
  every 0.2 s; skipped when nvidia-smi is absent) and JAX's
  ``peak_bytes_in_use`` (None on CPU). ``XLA_PYTHON_CLIENT_PREALLOCATE`` is
  set to false unless already set, so nvidia-smi shows memory in use rather
  than JAX's default 75 % preallocation.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as train.py

import jax  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks.envs import bench  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Sizes:
  """What one benchmark run measures."""
  physics_envs: tuple[str, ...] = ("hopper", "ant")
  batches: tuple[int, ...] = (1024, 4096)
  steps: int = 32
  repeats: int = 3
  physics_seconds: float = 120.0
  shac_env: str = "hopper"
  shac_seconds: float = 300.0
  eval_envs: int = 16
  eval_length: int | None = None  # None: the env's episode_length
  shac_overrides: tuple[tuple[str, object], ...] = ()


TINY = Sizes(physics_envs=("pendulum_swingup",), batches=(2,), steps=2,
             repeats=1, physics_seconds=60.0, shac_env="pendulum_swingup",
             shac_seconds=2.0, eval_envs=2, eval_length=8,
             shac_overrides=(("num_envs", 2), ("horizon", 4),
                             ("critic_epochs", 1), ("critic_minibatches", 1),
                             ("policy_hidden_sizes", (8,)),
                             ("critic_hidden_sizes", (8,)), ("log_every", 1),
                             ("num_timesteps", 1_000_000)))


# --------------------------------------------------------------------------
# GPU memory (nvidia-smi)
# --------------------------------------------------------------------------


def which_nvidia_smi() -> str | None:
  """Path of nvidia-smi, or None."""
  return shutil.which("nvidia-smi")


class GpuMemory:
  """Polls ``nvidia-smi --query-gpu=memory.used`` in a thread.

  ``peak_mib`` is the largest sum over GPUs seen so far, None when nvidia-smi
  is absent or never answered.
  """

  QUERY = ("--query-gpu=memory.used", "--format=csv,noheader,nounits")

  def __init__(self, interval_s: float = 0.2):
    self.smi = which_nvidia_smi()
    self.interval_s = interval_s
    self.peak_mib: float | None = None
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None

  def read(self) -> float | None:
    """memory.used summed over GPUs, in MiB (None if unavailable)."""
    if self.smi is None:
      return None
    try:
      out = subprocess.run([self.smi, *self.QUERY], capture_output=True,
                           text=True, timeout=5, check=False).stdout
      values = [float(v) for v in out.split()]
    except (OSError, subprocess.SubprocessError, ValueError):
      return None
    return sum(values) if values else None

  def poll(self) -> None:
    used = self.read()
    if used is not None:
      self.peak_mib = used if self.peak_mib is None else max(self.peak_mib,
                                                             used)

  def _loop(self) -> None:
    while not self._stop.wait(self.interval_s):
      self.poll()

  def __enter__(self) -> "GpuMemory":
    if self.smi is not None:
      self.poll()
      self._thread = threading.Thread(target=self._loop, daemon=True)
      self._thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
    if self.smi is not None:
      self.poll()


def jax_peak_mib() -> float | None:
  """Largest ``peak_bytes_in_use`` over JAX's devices (None on CPU)."""
  peaks = []
  for d in jax.devices():
    try:
      stats = d.memory_stats() or {}
    except Exception:  # pylint: disable=broad-except  (backends without stats)
      stats = {}
    if "peak_bytes_in_use" in stats:
      peaks.append(stats["peak_bytes_in_use"] / 2**20)
  return max(peaks) if peaks else None


# --------------------------------------------------------------------------
# physics throughput
# --------------------------------------------------------------------------


def physics_rows(sizes: Sizes, log=print) -> list[dict]:
  """Forward (both modes) and value_and_grad env steps/s per (env, batch).

  Rows are ordered by batch, then env, and start only while less than
  ``sizes.physics_seconds`` have passed; later ones get ``skipped=True``.
  """
  t0 = time.perf_counter()
  rows = []
  for batch in sizes.batches:
    for name in sizes.physics_envs:
      row = {"env": name, "batch": batch, "steps": sizes.steps}
      if time.perf_counter() - t0 > sizes.physics_seconds:
        rows.append({**row, "skipped": True})
        continue
      t_row = time.perf_counter()
      default = bench(name, False, batch, sizes.steps, sizes.repeats)
      diff = bench(name, True, batch, sizes.steps, sizes.repeats)
      row.update(
          skipped=False, default_sps=default["forward_sps"],
          diff_sps=diff["forward_sps"], grad_sps=diff.get("grad_sps"),
          grad_finite=diff.get("grad_finite", False),
          compile_s=(default["forward_compile_s"] + diff["forward_compile_s"]
                     + (diff.get("grad_compile_s") or 0.0)),
          row_s=time.perf_counter() - t_row, jax_peak_mib=jax_peak_mib())
      rows.append(row)
      log(f"# physics {name} B={batch}: {row}")
  return rows


# --------------------------------------------------------------------------
# SHAC: update rate and a timed run
# --------------------------------------------------------------------------


def shac_run(sizes: Sizes, seed: int = 0, log=print) -> dict:
  """Trains SHAC for ``sizes.shac_seconds`` after its first update, then
  evaluates the deterministic policy on the default-mode env.

  Returns:
    compile_s, run_s (training after the first update), updates,
    updates_per_s and env_sps (median over logging windows after the first),
    train_return (last window), eval_return, forward_velocity (m/s, None for
    envs without a ``forward`` reward term), num_envs, horizon, backend.
  """
  from agents import networks  # pylint: disable=import-outside-toplevel

  resolved = common.resolve(sizes.shac_env, "shac")
  config = dataclasses.replace(resolved.agent_config,
                               **dict(sizes.shac_overrides))
  resolved = dataclasses.replace(resolved, agent_config=config)
  env = common.make_env(resolved, differentiable=True)

  clock: dict = {"start": None, "ts": None, "metrics": {}}
  windows: list[tuple[float, float]] = []

  def progress_fn(env_steps, metrics):
    del env_steps
    clock["metrics"] = metrics
    if clock["start"] is None:  # the first (compiling) update
      clock["start"] = time.perf_counter()
      clock["compile_s"] = metrics.get("train/compile_s", float("nan"))
    else:
      windows.append((metrics["train/update_s"], metrics["train/sps"]))

  def stop(train_state):  # after every update: the deadline
    clock["ts"] = train_state
    return (clock["start"] is not None
            and time.perf_counter() - clock["start"] >= sizes.shac_seconds)

  common.train_until("shac", env, config, seed, progress_fn, stop)
  ts = jax.block_until_ready(clock["ts"])
  run_s = time.perf_counter() - clock["start"]
  updates = int(jax.device_get(ts.iteration))
  log(f"# shac {sizes.shac_env}: {updates} updates, {run_s:.1f}s after the "
      f"first")

  # deterministic evaluation on the default-mode env, with the reward terms
  eval_env = common.make_env(resolved)
  length = sizes.eval_length or common.episode_length(eval_env, config)
  evaluate = common.evaluator(eval_env, networks.make_policy, sizes.eval_envs,
                              length)
  summary = evaluate(common.policy_params(env, config, ts),
                     jax.random.PRNGKey(seed + 1))
  velocity = summary.get("forward_velocity_mean")
  return {
      "env": sizes.shac_env, "backend": resolved.backend,
      "num_envs": config.num_envs, "horizon": config.horizon,
      "compile_s": clock["compile_s"], "run_s": run_s, "updates": updates,
      "updates_per_s": (1.0 / statistics.median(u for u, _ in windows)
                        if windows else None),
      "env_sps": statistics.median(s for _, s in windows) if windows else None,
      "train_return": clock["metrics"].get("train/episode_return"),
      "eval_return": summary["return_mean"], "forward_velocity": velocity,
      "eval_envs": sizes.eval_envs, "eval_length": length,
      "jax_peak_mib": jax_peak_mib(),
  }


# --------------------------------------------------------------------------
# table
# --------------------------------------------------------------------------


def table(sizes: Sizes, physics: list[dict], shac_result: dict,
          smi_peak: float | None, wall_s: float) -> str:
  """The Markdown report."""
  gpus = common.system_gpus()
  lines = [
      f"{common.backend_line()}; jax {jax.__version__}; "
      f"nvidia-smi: {', '.join(gpus) if gpus else 'no GPU listed'}; host "
      f"{platform.machine()}, {os.cpu_count()} cores, load average "
      f"{common.load_average():.1f} at the end; total {wall_s:.0f} s.",
      "",
      f"Physics: env steps/s, B envs x T={sizes.steps} steps, median of "
      f"{sizes.repeats} after compilation (benchmarks/envs.py bench).",
      "",
      "| env | B | default fwd steps/s | diff fwd steps/s | "
      "diff value_and_grad steps/s | first calls s (compile + 1 run, "
      "3 programs) |",
      "|---|---:|---:|---:|---:|---:|",
  ]
  for r in physics:
    if r["skipped"]:
      lines.append(f"| {r['env']} | {r['batch']} | skipped (time budget; "
                   f"rerun with a larger --physics-seconds) | | | |")
      continue
    grad = common.fmt(r["grad_sps"]) + ("" if r["grad_finite"] else " (non-finite!)")
    lines.append(f"| {r['env']} | {r['batch']} | {common.fmt(r['default_sps'])} | "
                 f"{common.fmt(r['diff_sps'])} | {grad} | {common.fmt(r['compile_s'], '{:.0f}')}"
                 f" |")
  s = shac_result
  lines += [
      "",
      f"SHAC on {s['env']} (preset values for backend '{s['backend']}': "
      f"num_envs {s['num_envs']} x horizon {s['horizon']}), stopped "
      f"{sizes.shac_seconds:g} s after the first update; evaluation: "
      f"deterministic policy, {s['eval_envs']} episodes x {s['eval_length']} "
      f"steps, default-mode env.",
      "",
      "| compile s | updates/s | env steps/s | updates | training s after "
      "compile | train return (last window) | eval return | eval forward "
      "velocity m/s |",
      "|---:|---:|---:|---:|---:|---:|---:|---:|",
      f"| {common.fmt(s['compile_s'], '{:.1f}')} | {common.fmt(s['updates_per_s'], '{:.2f}')}"
      f" | {common.fmt(s['env_sps'])} | {s['updates']} | {s['run_s']:.0f} | "
      f"{common.fmt(s['train_return'], '{:.1f}')} | {common.fmt(s['eval_return'], '{:.1f}')} "
      f"| {common.fmt(s['forward_velocity'], '{:.2f}')} |",
      "",
      "Memory: nvidia-smi memory.used peak (all GPUs): "
      + (f"{smi_peak:,.0f} MiB" if smi_peak is not None
         else "skipped (nvidia-smi not found)")
      + "; JAX peak_bytes_in_use: "
      + (f"{s['jax_peak_mib']:,.0f} MiB" if s["jax_peak_mib"] is not None
         else "n/a (backend has no memory stats)") + ".",
  ]
  return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
  p = common.parser(__doc__)
  p.add_argument("--tiny", action="store_true",
                 help="tiny sizes and pendulum_swingup: a quick check on CPU")
  p.add_argument("--physics-envs", nargs="+", default=None)
  p.add_argument("--batches", nargs="+", type=int, default=None)
  p.add_argument("--physics-seconds", type=float, default=None)
  p.add_argument("--shac-env", default=None)
  p.add_argument("--shac-seconds", type=float, default=None)
  common.add_out(p, help="also write the table here")
  args = p.parse_args(argv)
  sizes = TINY if args.tiny else Sizes()
  for field, value in (("physics_envs", args.physics_envs),
                       ("batches", args.batches),
                       ("physics_seconds", args.physics_seconds),
                       ("shac_env", args.shac_env),
                       ("shac_seconds", args.shac_seconds)):
    if value is not None:
      sizes = dataclasses.replace(
          sizes, **{field: tuple(value) if isinstance(value, list) else value})
  for name in (*sizes.physics_envs, sizes.shac_env):
    common.check_env_name(name)  # a typo fails before any compile

  t0 = time.perf_counter()
  print(f"# {common.backend_line()}", flush=True)
  with GpuMemory() as memory:
    physics = physics_rows(sizes, log=lambda s: print(s, flush=True))
    shac_result = shac_run(sizes, log=lambda s: print(s, flush=True))
  report = table(sizes, physics, shac_result, memory.peak_mib,
                 time.perf_counter() - t0)
  print(report, flush=True)
  common.write_text(args.out, report)
  return report


if __name__ == "__main__":
  common.enable_cache()
  main(sys.argv[1:])
