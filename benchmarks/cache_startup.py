"""Second-run start-up of train.py under each compilation-cache choice
(docs/training.md, "Compilation cache"): ``python -m benchmarks.cache_startup``.

For each choice, a short cart-pole run is started twice in fresh processes
(the first fills the cache, when there is one); the second's whole-command
wall clock and its "compiled in" time are what a user restarting a run
waits. Choices: ``off`` (the default), ``on`` (``MJX_DIFFRL_JAX_CACHE=<dir>``,
programs over 0.5 s written) and ``on-10s`` (only programs over 10 s
written). Run it alone: it is a timing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["cartpole_swingup", "--num-timesteps", "20480", "--no-video",
        "--eval-every", "0", "--eval-episodes", "2"]
# train.py with the cache's threshold raised (what the on-10s choice would set)
_RAISED = ("import sys, runpy, jax\n"
           "from trainlib import startup\n"
           "enable = startup.enable_compilation_cache\n"
           "def raised(path=None):\n"
           "  out = enable(path)\n"
           "  jax.config.update('jax_persistent_cache_min_compile_time_secs', 10.0)\n"
           "  return out\n"
           "startup.enable_compilation_cache = raised\n"
           "sys.argv = ['train.py', *sys.argv[1:]]\n"
           "runpy.run_path('train.py', run_name='__main__')\n")


def _train(choice: str, cache: Path | None, run_dir: Path) -> tuple[float, float]:
  env = dict(os.environ)
  env.pop("MJX_DIFFRL_JAX_CACHE", None)
  if cache is not None:
    env["MJX_DIFFRL_JAX_CACHE"] = str(cache)
  cmd = ([sys.executable, "-c", _RAISED] if choice == "on-10s"
         else [sys.executable, "train.py"])
  t0 = time.perf_counter()
  proc = subprocess.run([*cmd, *ARGS, "--run-dir", str(run_dir)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=900, check=True)
  wall = time.perf_counter() - t0
  m = re.search(r"compiled in ([\d.]+)s", proc.stderr + proc.stdout)
  return wall, float(m.group(1)) if m else float("nan")


def main(argv=None) -> int:
  p = common.parser(__doc__)
  p.add_argument("--choices", nargs="+", default=["off", "on", "on-10s"])
  args = p.parse_args(argv)
  print(f"load before: {common.load_average():.2f}", flush=True)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for choice in args.choices:
      cache = None if choice == "off" else Path(tmp) / f"cache-{choice}"
      first = _train(choice, cache, Path(tmp) / f"{choice}-1")
      second = _train(choice, cache, Path(tmp) / f"{choice}-2")
      entries = len(list(cache.iterdir())) if cache is not None else 0
      rows.append((choice, first, second, entries))
      print(f"{choice}: first run {first[0]:.1f} s (compiled in {first[1]:.1f} s), "
            f"second run {second[0]:.1f} s (compiled in {second[1]:.1f} s), "
            f"{entries} cache entries", flush=True)
  print(f"load after: {common.load_average():.2f}")
  print("\n| choice | second run, whole command | its compile | cache entries |")
  print("|---|---|---|---|")
  for choice, _, second, entries in rows:
    print(f"| {choice} | {second[0]:.1f} s | {second[1]:.1f} s | {entries} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
