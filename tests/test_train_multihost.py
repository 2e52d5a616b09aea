"""train.py as several processes (jax.distributed) on localhost.

Two processes with one CPU device each (gloo collectives) train a tiny SHAC
job; a one-process job with two devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=2``) trains the same
global batch with the same seed. Both processes must end with identical
parameters, equal to the one-process job's up to reduction order, and only
process 0 may write the run directory. Then a two-process run is killed
(SIGKILL of process 1) after its second checkpoint: process 0 must stop
with a clear error within a bound, and ``--resume`` with two processes must
finish it. Bad launches (coordinator nobody answers, num_envs not divisible
by the global device count, different configs or process counts) must fail
fast with a clear message.

Each process is ``train.py`` itself; a small wrapper (``WORKER``) only
records the parameters ``agents.loop.train`` returns in each process, so
the test can compare processes without a test hook in the code.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NUM_UPDATES = 20  # the killed run blocks in its next collective after checkpoint 2
STEPS_PER_UPDATE = 2 * 4  # global num_envs * horizon
TINY = [
    "pendulum_swingup", "--agent", "shac", "--num-envs", "2", "--horizon", "4",
    "--critic-epochs", "1", "--critic-minibatches", "1",
    "--policy-hidden-sizes", "8", "--critic-hidden-sizes", "8",
    "--num-timesteps", str(NUM_UPDATES * STEPS_PER_UPDATE),
    "--log-every", "1", "--checkpoint-every", "2",
    "--env.episode-length", "16", "--eval-episodes", "2", "--no-video",
    "--no-gradient-check",  # tested in tests/agents/test_health.py, test_thirdparty_cli.py
]
HEARTBEAT_S = 20
KILL_BOUND_S = 90  # heartbeat timeout + margin for a loaded 2-core machine
TIMEOUT_S = 900

# Runs train.py's main() and saves the parameters shac.train returned in
# this process (argv: OUT.npz TRAIN_ARGS...).
WORKER = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import jax
from agents import loop
out, argv = sys.argv[1], sys.argv[2:]
_train = loop.train
def train(*args, **kwargs):
  params, metrics = _train(*args, **kwargs)
  leaves = jax.tree.leaves((params.network, params.normalizer))
  np.savez(out, *[np.asarray(x) for x in leaves])
  return params, metrics
loop.train = train
import train as cli
sys.exit(cli.main(argv))
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(cache: Path, devices: int = 1) -> dict[str, str]:
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  flags.append(f"--xla_force_host_platform_device_count={devices}")
  env = dict(os.environ, MJX_DIFFRL_JAX_CACHE=str(cache), PYTHONUNBUFFERED="1",
             XLA_FLAGS=" ".join(flags))
  for var in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    env.pop(var, None)
  return env


def _launch(i: int, n: int, port: int, args: list[str], log: Path,
            cache: Path, out: Path | None = None,
            extra: tuple[str, ...] = ()) -> subprocess.Popen:
  """Process ``i`` of ``n``: the command docs/agents.md shows."""
  cmd = [sys.executable, "train.py", *args]
  if out is not None:
    cmd = [sys.executable, "-c", WORKER, str(out), *args]
  cmd += ["--coordinator-address", f"localhost:{port}",
          "--num-processes", str(n), "--process-id", str(i),
          "--heartbeat-timeout", str(HEARTBEAT_S), *extra]
  return subprocess.Popen(cmd, cwd=ROOT, env=_env(cache), stdout=log.open("w"),
                          stderr=subprocess.STDOUT)


def _wait(procs: list[subprocess.Popen], logs: list[Path],
          timeout: float = TIMEOUT_S) -> list[str]:
  t0 = time.perf_counter()
  try:
    for p in procs:
      p.wait(timeout=max(1.0, timeout - (time.perf_counter() - t0)))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  return [log.read_text() for log in logs]


def _finished_checkpoints(run_dir: Path) -> list[int]:
  ckpt = run_dir / "checkpoints"
  if not ckpt.exists():
    return []
  return sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())


def _params(path: Path) -> list[np.ndarray]:
  with np.load(path) as f:
    return [f[f"arr_{i}"] for i in range(len(f.files))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, jax_cache_dir):
  """The same job as 2 processes x 1 device and as 1 process x 2 devices."""
  tmp = tmp_path_factory.mktemp("multihost")
  cache = jax_cache_dir
  port = _free_port()
  logs = [tmp / f"p{i}.log" for i in range(2)]
  procs = [_launch(i, 2, port, [*TINY, "--run-dir", str(tmp / "two")],
                   logs[i], cache, out=tmp / f"p{i}.npz") for i in range(2)]
  outs = _wait(procs, logs)
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  ref = subprocess.run(
      [sys.executable, "-c", WORKER, str(tmp / "ref.npz"), *TINY,
       "--run-dir", str(tmp / "one")],
      cwd=ROOT, env=_env(cache, devices=2), capture_output=True, text=True,
      timeout=TIMEOUT_S)
  assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]
  return {"tmp": tmp, "cache": cache, "outs": outs, "ref_out": ref.stdout}


@pytest.mark.slow
def test_processes_hold_identical_parameters(runs):
  tmp = runs["tmp"]
  p0, p1 = _params(tmp / "p0.npz"), _params(tmp / "p1.npz")
  assert len(p0) == len(p1) > 4
  for a, b in zip(p0, p1):
    np.testing.assert_array_equal(a, b)
  assert "process 1 of 2 (1 local device, 2 in all)" in runs["outs"][1]


@pytest.mark.slow
def test_two_processes_match_one_process_two_devices(runs):
  tmp = runs["tmp"]
  assert "2 devices" in runs["ref_out"] and "process 0 of" not in runs["ref_out"]
  two, one = _params(tmp / "p0.npz"), _params(tmp / "ref.npz")
  assert len(two) == len(one)
  for a, b in zip(two, one):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  # the 2-process run's policy evaluates like the 1-process run's
  ev2 = json.loads((tmp / "two" / "eval.json").read_text())
  ev1 = json.loads((tmp / "one" / "eval.json").read_text())
  np.testing.assert_allclose(ev2["returns"], ev1["returns"], rtol=1e-3,
                             atol=1e-3)


@pytest.mark.slow
def test_only_process_0_writes_the_run_dir(runs):
  tmp = runs["tmp"]
  two, one = tmp / "two", tmp / "one"
  # the same files as a 1-process run, once each
  assert sorted(p.name for p in two.iterdir()) == \
      sorted(p.name for p in one.iterdir())
  assert len(list((two / "tb").iterdir())) == 1  # one TensorBoard writer
  rows = list(csv.DictReader((two / "metrics.csv").open()))
  steps = [int(r["env_steps"]) for r in rows]
  assert steps == sorted(set(steps))  # one writer: no row twice
  assert steps[-1] == NUM_UPDATES * STEPS_PER_UPDATE
  out0, out1 = runs["outs"]
  assert "run dir:" in out0 and "eval: return" in out0
  for line in ("run dir:", "compiling", "eval:", "done in"):
    assert line not in out1, out1[-2000:]
  # checkpoints: orbax writes them from both processes; the last is complete
  assert _finished_checkpoints(two)[-1] == NUM_UPDATES


@pytest.mark.slow
def test_killed_process_stops_the_run_and_resume_finishes(runs):
  tmp, cache = runs["tmp"], runs["cache"]
  run_dir = tmp / "killed"
  args = [*TINY, "--run-dir", str(run_dir)]
  logs = [tmp / f"k{i}.log" for i in range(2)]
  port = _free_port()
  procs = [_launch(i, 2, port, args, logs[i], cache) for i in range(2)]
  t0 = time.perf_counter()
  try:
    while len(_finished_checkpoints(run_dir)) < 2:
      if any(p.poll() is not None for p in procs):
        pytest.fail("a process exited before the second checkpoint:\n" +
                    "\n".join(log.read_text()[-2000:] for log in logs))
      if time.perf_counter() - t0 > TIMEOUT_S:
        pytest.fail(f"no second checkpoint after {TIMEOUT_S}s")
      time.sleep(0.02)
  except BaseException:
    for p in procs:
      p.kill()
    raise
  procs[1].send_signal(signal.SIGKILL)
  t_kill = time.perf_counter()
  out0 = _wait(procs[:1], logs[:1], timeout=KILL_BOUND_S)[0]
  stop_s = time.perf_counter() - t_kill
  procs[1].wait()
  assert procs[0].returncode not in (0, None), out0[-2000:]
  assert stop_s < KILL_BOUND_S
  # ours (a collective failed) or JAX's (heartbeat timeout of process 1)
  assert ("Another process probably died" in out0
          or "another task died" in out0), out0[-3000:]
  killed_at = max(_finished_checkpoints(run_dir))
  assert killed_at < NUM_UPDATES, "the run finished before it was killed"

  # resume with two processes
  port = _free_port()
  logs = [tmp / f"r{i}.log" for i in range(2)]
  procs = [_launch(i, 2, port, ["--resume", str(run_dir)], logs[i], cache)
           for i in range(2)]
  outs = _wait(procs, logs)
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  assert (f"resumed from checkpoint at update {killed_at} "
          f"({killed_at * STEPS_PER_UPDATE} env steps)") in outs[0]
  rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
  steps = [int(r["env_steps"]) for r in rows]
  assert steps == sorted(set(steps))
  assert steps[-1] == NUM_UPDATES * STEPS_PER_UPDATE
  assert json.loads((run_dir / "eval.json").read_text())["episodes"] == 2
  print(f"process 0 stopped {stop_s:.1f}s after process 1 was killed")


def test_unreachable_coordinator_fails_fast(tmp_path):
  """Process 1 of 2 with no process 0: a clear error after the timeout."""
  t0 = time.perf_counter()
  proc = subprocess.run(
      [sys.executable, "train.py", *TINY, "--run-dir", str(tmp_path / "r"),
       "--coordinator-address", f"localhost:{_free_port()}",
       "--num-processes", "2", "--process-id", "1",
       "--initialization-timeout", "3"],
      cwd=ROOT, env=_env(tmp_path / "cache"), capture_output=True, text=True,
      timeout=120)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "not all 2 processes joined the run within 3s" in proc.stderr
  assert time.perf_counter() - t0 < 60
  assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_num_envs_not_divisible_by_global_devices(tmp_path):
  args = [*TINY, "--num-envs", "3", "--critic-minibatches", "1",
          "--run-dir", str(tmp_path / "r")]
  port = _free_port()
  logs = [tmp_path / f"p{i}.log" for i in range(2)]
  procs = [_launch(i, 2, port, args, logs[i], tmp_path / "cache")
           for i in range(2)]
  outs = _wait(procs, logs, timeout=300)
  assert all(p.returncode != 0 for p in procs)
  # process 1 may instead be ended by JAX when process 0 (the coordinator)
  # exits first
  assert "num_envs=3 must be a multiple of the number of devices (2 over " \
      "2 processes)" in outs[0], outs[0][-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("extra, index, message", [
    (["--seed", "7"], 0, "processes [1] were started with another config "
     "than process 0"),
    (["--num-processes", "3"], 1, "the coordinator runs 2 processes, this one "
     "was told --num-processes 3"),
])
def test_mismatched_processes_stop(tmp_path, extra, index, message):
  """Process 1 started with another command line than process 0."""
  args = [*TINY, "--run-dir", str(tmp_path / "r")]
  port = _free_port()
  logs = [tmp_path / f"p{i}.log" for i in range(2)]
  procs = [_launch(0, 2, port, args, logs[0], tmp_path / "cache"),
           _launch(1, 2, port, args, logs[1], tmp_path / "cache",
                   extra=tuple(extra))]
  t0 = time.perf_counter()
  outs = _wait(procs, logs, timeout=300)
  assert all(p.returncode != 0 for p in procs)
  assert message in outs[index], outs[index][-2000:]
  assert time.perf_counter() - t0 < 120
  assert not (tmp_path / "r" / "metrics.csv").exists()


@pytest.mark.parametrize("argv, environ, message", [
    (["--num-processes", "2"], {}, "missing --coordinator-address"),
    (["--coordinator-address", "h:1", "--num-processes", "2",
      "--process-id", "2"], {}, "--process-id must be in 0..1"),
    (["--coordinator-address", "nohost", "--num-processes", "2",
      "--process-id", "0"], {}, "must be HOST:PORT"),
    (["--num-processes", "two", "--process-id", "0"],
     {"JAX_COORDINATOR_ADDRESS": "h:1"}, "must be an integer"),
])
def test_bad_launch_flags(argv, environ, message):
  from configs import LaunchError
  from trainlib import cli
  with pytest.raises(LaunchError, match=message):
    cli.parse_train(["pendulum_swingup", *argv], backend="cpu", environ=environ)


def test_launch_flags_and_variables():
  from trainlib import cli, startup
  command = cli.parse_train(
      ["pendulum_swingup", "--num_processes=4", "--seed", "1",
       "--process-id", "3", "--run-dir", "r"], backend="cpu",
      environ={"JAX_COORDINATOR_ADDRESS": "node0:1234", "JAX_PROCESS_ID": "0"})
  assert command.resolved.run.seed == 1  # the rest went to the config
  # the flag beats the variable
  assert command.launch.processes == startup.ProcessGroup("node0:1234", 4, 3)
  command = cli.parse_train(["pendulum_swingup"], backend="cpu", environ={})
  assert command.launch.processes is None
