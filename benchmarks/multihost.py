"""Benchmark: SHAC throughput with 1, 2, 4, ... processes (jax.distributed).

Every process has one CPU device and steps the same number of envs
(``--envs-per-process``), so the global batch grows with the process count
(weak scaling). For each count N the script starts N copies of itself on
localhost (``--worker``), which join with ``trainlib.distributed`` (the same
code path as ``train.py --coordinator-address ...``) and run
``agents.shac.train``. Process 0 reports:

* ``update_s``: median seconds per SHAC update after the compiling one;
* ``env steps/s``: global env steps per second (N x envs x horizon / update_s);
* ``speedup``: env steps/s relative to N = 1;
* ``all-reduce ms``: median time of one jitted mean over the processes of an
  array as large as the SHAC actor's parameters (what the gradient all-reduce
  moves each update), measured separately after training. The critic's
  minibatches, which mix envs of all processes, add further collectives
  inside the update; ``update_s`` includes them.

Each process is a separate XLA:CPU client; on a machine with C cores, N > C
processes share cores, so the speedup is bounded by C (and by other load:
the script prints ``uptime`` before and after).

Usage: python benchmarks/multihost.py [--processes 1 2 4]
       [--envs-per-process 8] [--horizon 8] [--updates 30]
       [--env pendulum_swingup]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

# `python benchmarks/multihost.py` puts benchmarks/ first on sys.path, where
# benchmarks/agents.py and benchmarks/envs.py would shadow the packages.
_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)

RESULT = "MULTIHOST_RESULT "


def _worker(args: argparse.Namespace) -> None:
  from trainlib import distributed
  if args.num_processes > 1:
    distributed.initialize(distributed.Launch(
        coordinator_address=args.coordinator_address,
        num_processes=args.num_processes, process_id=args.process_id,
        initialization_timeout=120, heartbeat_timeout=60))
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jax.sharding import NamedSharding, PartitionSpec
  from agents import loop, shac
  from trainlib.cli import import_envs_quietly
  envs = import_envs_quietly()

  n = jax.process_count()
  with distributed.local_model_device():
    env = envs.make(args.env, differentiable=True)
  config = shac.Config(
      num_envs=args.envs_per_process * jax.device_count(), horizon=args.horizon,
      num_timesteps=args.updates * args.envs_per_process * jax.device_count()
      * args.horizon, critic_epochs=2, critic_minibatches=2,
      policy_hidden_sizes=(64, 64), critic_hidden_sizes=(64, 64),
      log_every=1)
  update_s: list[float] = []
  compile_s: list[float] = []

  def progress(_, metrics):
    if "train/compile_s" in metrics:
      compile_s.append(metrics["train/compile_s"])
    else:
      update_s.append(metrics["train/update_s"])

  t0 = time.perf_counter()
  params, _ = shac.train(env, config, jax.random.PRNGKey(0), progress)
  wall_s = time.perf_counter() - t0

  # all-reduce of an actor-sized array (the gradient mean of one update)
  size = sum(int(np.size(x)) for x in jax.tree.leaves(params.network))
  mesh = loop.make_mesh(jax.device_count())
  local = np.ones((jax.local_device_count(), size), np.float32)
  x = jax.make_array_from_process_local_data(
      NamedSharding(mesh, PartitionSpec(loop.BATCH_AXIS)), local)
  mean = jax.jit(lambda a: jnp.mean(a, axis=0),
                 out_shardings=NamedSharding(mesh, PartitionSpec()))
  mean(x).block_until_ready()
  times = []
  for _ in range(50):
    t = time.perf_counter()
    mean(x).block_until_ready()
    times.append(time.perf_counter() - t)
  if jax.process_index() == 0:
    step_s = statistics.median(update_s[1:] or update_s)
    print(RESULT + json.dumps({
        "processes": n, "num_envs": config.num_envs, "horizon": args.horizon,
        "updates": config.num_updates, "compile_s": compile_s[0],
        "wall_s": wall_s, "update_s": step_s,
        "sps": config.num_envs * args.horizon / step_s,
        "allreduce_ms": 1e3 * statistics.median(times),
        "allreduce_floats": size}), flush=True)
  distributed.finish()


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _uptime() -> str:
  with open("/proc/loadavg", encoding="utf-8") as f:
    return " ".join(f.read().split()[:3])


def _launch(n: int, args: argparse.Namespace) -> dict:
  port = _free_port()
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
             TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
  common = [sys.executable, os.path.abspath(__file__), "--worker",
            "--env", args.env, "--envs-per-process", str(args.envs_per_process),
            "--horizon", str(args.horizon), "--updates", str(args.updates),
            "--num-processes", str(n), "--coordinator-address",
            f"localhost:{port}"]
  procs = [subprocess.Popen(common + ["--process-id", str(i)], cwd=_ROOT,
                            env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
           for i in range(n)]
  outs = [p.communicate(timeout=args.timeout)[0] for p in procs]
  for p, out in zip(procs, outs):
    if p.returncode != 0:
      raise SystemExit(f"{n} processes: a worker failed:\n{out[-3000:]}")
  line = [l for l in outs[0].splitlines() if l.startswith(RESULT)][0]
  return json.loads(line[len(RESULT):])


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
  p.add_argument("--envs-per-process", type=int, default=8)
  p.add_argument("--horizon", type=int, default=8)
  p.add_argument("--updates", type=int, default=30)
  p.add_argument("--env", default="pendulum_swingup")
  p.add_argument("--timeout", type=float, default=3600)
  p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--num-processes", type=int, default=1, help=argparse.SUPPRESS)
  p.add_argument("--process-id", type=int, default=0, help=argparse.SUPPRESS)
  p.add_argument("--coordinator-address", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.worker:
    _worker(args)
    return
  print(f"load average before: {_uptime()} ({os.cpu_count()} cores)")
  rows = [_launch(n, args) for n in args.processes]
  print(f"load average after: {_uptime()}")
  base = next((r["sps"] for r in rows if r["processes"] == 1), rows[0]["sps"])
  print(f"\n{args.env}, SHAC, {args.envs_per_process} envs x horizon "
        f"{args.horizon} per process, {args.updates} updates\n")
  print("| processes | global envs | compile (s) | update (s) | env steps/s "
        "| speedup | all-reduce of actor grads (ms) |")
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['processes']} | {r['num_envs']} | {r['compile_s']:.0f} | "
          f"{r['update_s']:.3f} | {r['sps']:.0f} | {r['sps'] / base:.2f}x | "
          f"{r['allreduce_ms']:.2f} ({r['allreduce_floats']} floats) |")


if __name__ == "__main__":
  main()
