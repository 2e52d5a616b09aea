"""Repro harness for the persistent-compilation-cache crash (issue 25, item 3).

    python -m benchmarks.cache_crash --runs 10 --sequence mjx --cache fresh
    python -m benchmarks.cache_crash --runs 10 --sequence envs --cache shared
    python -m benchmarks.cache_crash --python /other/venv/bin/python ...

With jaxlib 0.9.2 the cache write (``executable.serialize()``, called from
``jax._src.compilation_cache.put_executable_and_time``) was seen to kill long
processes that had compiled many programs with a segmentation fault. This
driver starts ``--runs`` fresh child processes, one after the other (never
two at once), each of which turns JAX's persistent compilation cache on and
compiles a fixed sequence of distinct programs, printing a line before and
after each compile. The driver records every child's exit status (a negative
status is the signal that ended it: -11 is SIGSEGV), the program it was
compiling or writing when it died, and the Python stack that
``faulthandler`` (``python -X faulthandler``) printed, and writes one JSON
line per child to ``--out``.

Sequences (``--sequence``):

* ``synthetic``: ``--programs`` small pure-JAX programs (a scanned tanh
  layer and its gradient, a different width each), to call the cache write
  many times cheaply;
* ``mjx``: MuJoCo MJX rollouts and their gradients (``value_and_grad`` of the
  return with respect to the controls; constraints disabled, since reverse
  mode cannot go through MJX's own solver loop) of the project's task models
  (``envs/assets/<task>.xml``) through ``mujoco.mjx`` only, so that it runs
  in a venv without Brax (e.g. a newer JAX);
* ``envs``: the project's envs, ``envs.make(task, differentiable=...)``,
  rolled out and differentiated as ``tests/conftest.py``'s ``EnvRuns`` does
  (the programs of the test sessions that crashed).

Each of ``--variants`` variants of an ``mjx``/``envs`` program has another
rollout length, so every compile is a new program and, cold, a new cache
entry. Cache modes (``--cache``):

* ``fresh``: an empty directory per child (every eligible program written);
* ``shared``: one directory for all children; child ``i`` bakes its run index
  into every other program (``--salt``), so that later children read half
  of their programs from the cache and write the other half;
* ``off``: no cache (the control).

``--crash-at K`` checks the harness itself: each child raises a real
SIGSEGV before program K, and the record must say so.

``--min-compile-secs`` is JAX's ``jax_persistent_cache_min_compile_time_secs``
(default 0: every program is written, the worst case; ``train.py`` uses 0.5).

Results, the jax 0.12 check and the options: docs/training.md,
"Compilation cache".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "envs" / "assets"
# --tasks default: model files (mjx) and registered task names (envs)
DEFAULT_TASKS = {"mjx": ("pendulum", "cartpole", "acrobot", "reacher"),
                 "envs": ("pendulum_swingup", "cartpole_swingup",
                          "acrobot_swingup", "reacher")}


# --------------------------------------------------------------------------
# Child: compile a fixed sequence of programs with the cache on
# --------------------------------------------------------------------------


def _say(text: str) -> None:
  print(f"[child] {text}", flush=True)


def _cache_entries(path: str | None) -> int:
  if not path:
    return 0
  return sum(1 for p in Path(path).iterdir() if not p.name.endswith("-atime"))


def _synthetic_programs(n: int, salt: int):
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  for i in range(n):
    width = 8 + i
    mix = float(salt if i % 2 else 0)

    def loss(w, x, width=width, mix=mix):
      def body(h, _):
        h = jnp.tanh(h @ w + mix)
        return h, jnp.sum(h * h)
      _, ys = jax.lax.scan(body, x, None, length=16)
      return jnp.sum(ys)

    fn = jax.value_and_grad(loss)
    w = jnp.eye(width) * 0.5
    x = jnp.ones((4, width))
    yield f"synthetic[w={width},salt={mix:g}]", fn, (w, x)


def _mjx_programs(tasks, variants: int, batch: int, steps: int, salt: int):
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import mujoco  # pylint: disable=import-outside-toplevel
  from mujoco import mjx  # pylint: disable=import-outside-toplevel
  k = 0
  for task in tasks:
    model = mujoco.MjModel.from_xml_path(str(ASSETS / f"{task}.xml"))
    # Reverse mode cannot go through MJX's early-exit solver loop (the
    # project's envs.physics patch is not used here), so the gradient
    # programs run the model without constraints.
    free = mujoco.MjModel.from_xml_path(str(ASSETS / f"{task}.xml"))
    free.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONSTRAINT
    for v in range(variants):
      for mode in ("rollout", "grad"):
        mx = mjx.put_model(model if mode == "rollout" else free)
        d0 = mjx.make_data(mx)
        mix = float(salt if k % 2 else 0)
        k += 1
        length = steps + v

        def ret(ctrl, mix=mix, mx=mx, d0=d0):
          def body(d, u):
            d = mjx.step(mx, d.replace(ctrl=u))
            return d, jnp.sum(d.qpos * d.qpos) + mix
          _, r = jax.lax.scan(body, d0, ctrl)
          return jnp.sum(r)

        fn = jax.vmap(ret if mode == "rollout" else jax.value_and_grad(ret))
        ctrl = jnp.zeros((batch, length, model.nu))
        yield f"mjx[{task},{mode},T={length},salt={mix:g}]", fn, (ctrl,)


def _envs_programs(tasks, variants: int, batch: int, steps: int, salt: int):
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import envs  # pylint: disable=import-outside-toplevel
  k = 0
  for task in tasks:
    for differentiable in (False, True):
      env = envs.make(task, differentiable=differentiable)
      keys = jax.random.split(jax.random.PRNGKey(0), batch)
      state0 = jax.jit(jax.vmap(env.reset))(keys)
      for v in range(variants):
        mix = float(salt if k % 2 else 0)
        k += 1
        length = steps + v

        def ret(actions, state, env=env, mix=mix):
          def body(s, a):
            s = env.step(s, a)
            return s, s.reward + mix
          _, reward = jax.lax.scan(body, state, actions)
          return jnp.sum(reward)

        if differentiable:
          fn = jax.vmap(jax.value_and_grad(ret))
          mode = "grad"
        else:
          fn = jax.vmap(ret)
          mode = "rollout"
        actions = jnp.zeros((batch, length, env.action_size))
        yield (f"envs[{task},{mode},T={length},salt={mix:g}]", fn,
               (actions, state0))


def child(args: argparse.Namespace) -> int:
  """Compiles (and runs once) each program of the sequence."""
  import faulthandler  # pylint: disable=import-outside-toplevel
  faulthandler.enable(all_threads=True)
  from trainlib import startup  # pylint: disable=import-outside-toplevel
  if args.sequence != "synthetic":
    startup.import_mjx_quietly()
  import jax  # pylint: disable=import-outside-toplevel
  import jaxlib  # pylint: disable=import-outside-toplevel
  cache = args.cache_dir or None
  if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs",
                      args.min_compile_secs)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  _say(f"jax {jax.__version__} jaxlib {jaxlib.__version__} cache={cache} min_compile_secs={args.min_compile_secs} salt={args.salt}")
  if args.sequence == "synthetic":
    programs = _synthetic_programs(args.programs, args.salt)
  elif args.sequence == "mjx":
    programs = _mjx_programs(args.tasks, args.variants, args.batch, args.steps,
                             args.salt)
  else:
    programs = _envs_programs(args.tasks, args.variants, args.batch,
                              args.steps, args.salt)
  for i, (name, fn, fn_args) in enumerate(programs):
    _say(f"program {i} {name}: compiling")
    if i == args.crash_at:  # the harness's self-check: a real SIGSEGV
      faulthandler._sigsegv()  # pylint: disable=protected-access
    before = _cache_entries(cache)
    compiled = jax.jit(fn).lower(*fn_args).compile()
    jax.block_until_ready(compiled(*fn_args))
    _say(f"program {i} {name}: done, cache entries {before} -> "
         f"{_cache_entries(cache)}")
  _say("all programs compiled")
  return 0


# --------------------------------------------------------------------------
# Driver: N fresh children, one at a time
# --------------------------------------------------------------------------

_PROGRAM = re.compile(r"^\[child\] program (\d+) (\S+): (compiling|done)")


def _last_program(stdout: str) -> tuple[int | None, str | None, str | None]:
  last = (None, None, None)
  for line in stdout.splitlines():
    m = _PROGRAM.match(line)
    if m:
      last = (int(m.group(1)), m.group(2), m.group(3))
  return last


def _fault_stack(stderr: str) -> list[str]:
  """The frames of the thread faulthandler marks as current, innermost first."""
  lines = stderr.splitlines()
  for i, line in enumerate(lines):
    if line.startswith("Fatal Python error"):
      frames = []
      for later in lines[i + 1:]:
        if later.startswith("Current thread"):
          frames = []
          continue
        if later.strip().startswith("File "):
          frames.append(later.strip())
        elif frames and not later.strip():
          break
      return [lines[i]] + frames
  return []


def run_child(args: argparse.Namespace, index: int, cache_dir: str | None,
              log_dir: Path) -> dict:
  cmd = [args.python, "-X", "faulthandler", "-m", "benchmarks.cache_crash",
         "--child", "--sequence", args.sequence, "--tasks", *args.tasks,
         "--variants", str(args.variants), "--programs", str(args.programs),
         "--batch", str(args.batch), "--steps", str(args.steps),
         "--min-compile-secs", str(args.min_compile_secs),
         "--salt", str(index if args.cache == "shared" else 0),
         "--crash-at", str(args.crash_at),
         "--cache-dir", cache_dir or ""]
  env = dict(os.environ, PYTHONUNBUFFERED="1", JAX_PLATFORMS="cpu")
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  start = time.monotonic()
  out, err = log_dir / f"child{index}.out", log_dir / f"child{index}.err"
  with out.open("w") as fo, err.open("w") as fe:
    rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fo, stderr=fe,
                        timeout=args.child_timeout, check=False).returncode
  stdout, stderr = out.read_text(), err.read_text()
  number, name, phase = _last_program(stdout)
  record = {
      "run": index, "returncode": rc,
      "signal": signal.Signals(-rc).name if rc < 0 else None,
      "completed": "[child] all programs compiled" in stdout,
      "last_program": number, "last_name": name, "last_phase": phase,
      "fault_stack": _fault_stack(stderr),
      "cache_entries": _cache_entries(cache_dir) if cache_dir else None,
      "elapsed_s_not_a_benchmark": round(time.monotonic() - start, 1),
  }
  return record


def driver(args: argparse.Namespace) -> int:
  out = Path(args.out)
  log_dir = out.with_suffix("")
  log_dir.mkdir(parents=True, exist_ok=True)
  shared = tempfile.mkdtemp(prefix="jaxcache-shared-") if args.cache == "shared" else None
  records = []
  with out.open("a") as f:
    for i in range(args.runs):
      fresh = (tempfile.mkdtemp(prefix="jaxcache-fresh-")
               if args.cache == "fresh" else None)
      record = run_child(args, i, fresh or shared, log_dir)
      record.update(sequence=args.sequence, cache=args.cache,
                    python=args.python, tasks=list(args.tasks),
                    variants=args.variants, programs=args.programs,
                    min_compile_secs=args.min_compile_secs)
      records.append(record)
      f.write(json.dumps(record) + "\n")
      f.flush()
      status = ("ok" if record["completed"] and record["returncode"] == 0
                else f"DIED rc={record['returncode']} {record['signal'] or ''} "
                     f"at program {record['last_program']} "
                     f"{record['last_name']} ({record['last_phase']})")
      print(f"run {i}: {status}; cache entries {record['cache_entries']}",
            flush=True)
      for frame in record["fault_stack"][:8]:
        print(f"    {frame}", flush=True)
      if fresh:
        shutil.rmtree(fresh, ignore_errors=True)
  if shared:
    shutil.rmtree(shared, ignore_errors=True)
  died = [r for r in records if not (r["completed"] and r["returncode"] == 0)]
  signals = sorted({r["signal"] or str(r["returncode"]) for r in died})
  print(f"{len(records)} runs of sequence {args.sequence} (cache {args.cache}, "
        f"min_compile_secs {args.min_compile_secs}): {len(died)} died "
        f"{signals if died else ''}; records in {out}, logs in {log_dir}")
  return 0


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--runs", type=int, default=5, help="child processes")
  p.add_argument("--sequence", choices=("synthetic", "mjx", "envs"),
                 default="mjx")
  p.add_argument("--tasks", nargs="+",
                 help="mjx: envs/assets/<task>.xml; envs: envs.names() "
                      "(default: four small tasks)")
  p.add_argument("--variants", type=int, default=2,
                 help="rollout lengths per task and mode (mjx, envs)")
  p.add_argument("--programs", type=int, default=40, help="synthetic programs")
  p.add_argument("--batch", type=int, default=2)
  p.add_argument("--steps", type=int, default=8, help="shortest rollout")
  p.add_argument("--cache", choices=("fresh", "shared", "off"), default="fresh")
  p.add_argument("--min-compile-secs", type=float, default=0.0)
  p.add_argument("--python", default=sys.executable,
                 help="interpreter of the children (another venv)")
  p.add_argument("--child-timeout", type=float, default=3600)
  p.add_argument("--out", default=os.path.join(tempfile.gettempdir(),
                                               "cache_crash", "records.jsonl"),
                 help="JSON lines; the children's logs go beside it")
  p.add_argument("--crash-at", type=int, default=-1,
                 help="self-check: each child segfaults on purpose before "
                      "compiling this program (the record must say SIGSEGV)")
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--salt", type=int, default=0, help=argparse.SUPPRESS)
  p.add_argument("--cache-dir", default="", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if not args.tasks:
    args.tasks = list(DEFAULT_TASKS.get(args.sequence, DEFAULT_TASKS["mjx"]))
  return child(args) if args.child else driver(args)


if __name__ == "__main__":
  sys.exit(main())
