"""Fault figures for train.py / evaluate.py (issue 25, item 4):
``python -m benchmarks.faults [--kills K] [--seed S] [--out DIR]`` (as root,
for the tmpfs of the disk-full case), from the repository root.

(a) one uninterrupted short SHAC run (pendulum_swingup, 2 envs x 8 steps,
    ``UPDATES`` updates, a checkpoint after every update);
(b) K runs of the same command, each SIGKILLed at a random moment (seeded;
    every third one when orbax's temporary checkpoint directory appears,
    i.e. during a checkpoint write), then ``--resume``d (a resume is itself
    killed again at random, at most twice) until it finishes; its final
    policy.msgpack is compared byte for byte with (a)'s;
(c) disk full: the run directory on a small tmpfs, filled with a file after
    the third checkpoint; checks the error, that the last complete
    checkpoint restores, and that ``--resume`` finishes once space is freed;
(d) corruption: a garbled and a cut config.yaml, a cut policy.msgpack, the
    newest orbax step cut (an older one kept) and the only step cut; each
    resume/evaluate should fail with one line naming the file and the fix.

Prints a markdown table and writes it to docs/benchmarks_faults.md.
Train.py processes use the usual compilation cache ($MJX_DIFFRL_JAX_CACHE).
"""

from __future__ import annotations

import argparse
import errno
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UPDATES = 30
STEPS_PER_UPDATE = 16
TASK = [
    "pendulum_swingup", "--agent", "shac", "--num-envs", "2", "--horizon", "8",
    "--policy-hidden-sizes", "16", "--critic-epochs", "1",
    "--critic-minibatches", "1", "--critic-hidden-sizes", "16",
    "--log-every", "1", "--checkpoint-every", "1",
    "--env.episode-length", "24", "--eval-episodes", "2", "--eval-every", "0",
    "--no-video",
]


def _env() -> dict[str, str]:
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  return env


def _cmd(*args: str) -> list[str]:
  return [sys.executable, *args]


def _run(args: list[str], log: Path) -> subprocess.CompletedProcess:
  with log.open("w") as out:
    return subprocess.run(_cmd(*args), cwd=ROOT, env=_env(), stdout=out,
                          stderr=subprocess.PIPE, text=True, timeout=900)


def fill_disk(mount: Path) -> Path:
  """Writes ``mount/filler`` until the file system is full; returns it (its
  removal frees the space).

  Unbuffered writes: a buffered file would keep the bytes of the last short
  write and raise ENOSPC again from ``close()``, depending on how the run
  directory's size aligns with the chunk (CI saw exactly that)."""
  filler = mount / "filler"
  fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
  try:
    for size in (1 << 16, 1 << 12, 1):  # then the last partial page
      chunk = bytes(size)
      while True:
        try:
          if os.write(fd, chunk) < size:
            break
        except OSError as e:
          if e.errno != errno.ENOSPC:
            raise
          break
  finally:
    os.close(fd)
  return filler


def _tmp_dirs(run_dir: Path) -> list[str]:
  try:
    return [p for p in os.listdir(run_dir / "checkpoints")
            if "orbax-checkpoint-tmp" in p]
  except OSError:
    return []


def _steps(run_dir: Path) -> list[int]:
  try:
    return sorted(int(p) for p in os.listdir(run_dir / "checkpoints") if p.isdigit())
  except OSError:
    return []


def _kill_at(args: list[str], log: Path, after_step: int, delay: float | None,
             run_dir: Path) -> dict:
  """Starts train.py and SIGKILLs it at a moment of training: once the
  checkpoint of update ``after_step`` exists, either ``delay`` s later, or
  (delay None) as soon as orbax's temporary directory of a later checkpoint
  appears (a kill during a checkpoint write). Returns what the kill
  interrupted (``killed`` False: the process ended first)."""
  t0 = time.perf_counter()
  with log.open("w") as out:
    proc = subprocess.Popen(_cmd(*args), cwd=ROOT, env=_env(), stdout=out,
                            stderr=subprocess.STDOUT)
  try:
    reached = None
    while proc.poll() is None and time.perf_counter() - t0 < 600:
      if reached is None:
        if max(_steps(run_dir), default=0) >= after_step:
          reached = time.perf_counter()
      elif delay is None:
        if any(int(p.split(".")[0]) > after_step for p in _tmp_dirs(run_dir)
               if p.split(".")[0].isdigit()):
          break
      elif time.perf_counter() - reached >= delay:
        break
      time.sleep(0.001)
    if proc.poll() is not None:
      return {"killed": False, "at_s": time.perf_counter() - t0}
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  return {"killed": True, "at_s": round(time.perf_counter() - t0, 2),
          "in_write": bool(_tmp_dirs(run_dir)), "steps": _steps(run_dir)}


def kill_and_resume(out: Path, kills: int, seed: int, update_s: float,
                    reference: bytes) -> list[dict]:
  """K trials; trial i's first kill: after the checkpoint of a random
  update (1 .. UPDATES - 2), plus a random delay of up to two updates'
  time, or (every third trial) during the next checkpoint's write. A
  resumed process is killed again the same way with probability 0.3
  (at most twice)."""
  rng = random.Random(seed)
  rows = []
  for i in range(kills):
    run_dir = out / f"kill{i}"
    shutil.rmtree(run_dir, ignore_errors=True)
    first = ["train.py", *TASK, "--num-timesteps", str(UPDATES * STEPS_PER_UPDATE),
             "--run-dir", str(run_dir)]
    after = rng.randint(1, UPDATES - 2)
    delay = None if i % 3 == 0 else round(rng.uniform(0.0, 2 * update_s), 3)
    t0 = time.perf_counter()
    events = [_kill_at(first, out / f"kill{i}.0.log", after, delay, run_dir)]
    n = 0
    while True:
      n += 1
      args = ["train.py", "--resume", str(run_dir)]
      done_step = max(_steps(run_dir), default=0)
      if n <= 2 and done_step < UPDATES - 2 and rng.random() < 0.3:
        ev = _kill_at(args, out / f"kill{i}.{n}.log",
                      rng.randint(done_step + 1, UPDATES - 1),
                      round(rng.uniform(0.0, 2 * update_s), 3), run_dir)
        events.append(ev)
        if ev["killed"]:
          continue
        break
      done = _run(args, out / f"kill{i}.{n}.log")
      if done.returncode != 0:
        events.append({"killed": False, "error": done.stderr.strip()[-300:]})
      break
    policy = run_dir / "policy.msgpack"
    same = policy.exists() and policy.read_bytes() == reference
    kills_done = [e for e in events if e.get("killed")]
    rows.append({
        "trial": i, "first_kill": (f"after ckpt {after}, in the next write"
                                   if delay is None else
                                   f"after ckpt {after} + {delay}s"),
        "kills": len(kills_done),
        "in_write": sum(e["in_write"] for e in kills_done),
        "steps_at_kill": [e["steps"] for e in kills_done],
        "resumes": n, "match": same,
        "error": next((e["error"] for e in events if "error" in e), ""),
        "wall_s": round(time.perf_counter() - t0, 1)})
    print(rows[-1], flush=True)
  return rows


def _one_line_check(proc: subprocess.CompletedProcess, name: str) -> dict:
  lines = [l for l in proc.stderr.splitlines()
           if l.strip() and "warp" not in l and "compil" not in l
           and "%|" not in l]
  err = [l for l in lines if l.startswith("error:")]
  return {"rc": proc.returncode, "traceback": "Traceback" in proc.stderr,
          "lines": len(lines), "names_file": any(name in l for l in err),
          "message": (err[0] if err else (lines[-1] if lines else ""))[:300]}


def disk_full(out: Path, reference: bytes) -> dict:
  mnt = out / "tmpfs"
  mnt.mkdir(exist_ok=True)
  if os.geteuid() != 0:
    return {"skipped": "not root: cannot mount a tmpfs"}
  subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
                 check=True)
  try:
    run_dir = mnt / "run"
    args = ["train.py", *TASK, "--num-timesteps", str(UPDATES * STEPS_PER_UPDATE),
            "--run-dir", str(run_dir)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(_cmd(*args), cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    while proc.poll() is None and len(_steps(run_dir)) < 2:  # steps 2, 3 kept
      time.sleep(0.005)
    filler = fill_disk(mnt)
    _, stderr = proc.communicate(timeout=600)
    res = _one_line_check(subprocess.CompletedProcess(args, proc.returncode, "", stderr),
                          str(run_dir))
    res["fill_s"] = round(time.perf_counter() - t0, 1)
    res["steps_left"] = _steps(run_dir)
    res["tmp_left"] = _tmp_dirs(run_dir)
    filler.unlink()  # free space, resume
    t1 = time.perf_counter()
    resumed = _run(["train.py", "--resume", str(run_dir)], out / "diskfull.resume.log")
    log = (out / "diskfull.resume.log").read_text(errors="replace")
    res["resume_rc"] = resumed.returncode
    res["resumed_from"] = next((l.strip() for l in log.splitlines()
                                if "resumed from" in l), "")
    res["resume_s"] = round(time.perf_counter() - t1, 1)
    res["finished"] = (run_dir / "policy.msgpack").exists()
    res["resume_tail"] = resumed.stderr.strip()[-300:] if resumed.returncode else ""
    return res
  finally:
    subprocess.run(["umount", str(mnt)], check=False)


def _cut(path: Path, keep: float = 0.5) -> None:
  data = path.read_bytes()
  path.write_bytes(data[: int(len(data) * keep)])


def _cut_step(step_dir: Path) -> None:
  """Cuts the array data files of one orbax step in half."""
  for p in step_dir.rglob("*"):
    if p.is_file() and p.parent.name == "d":
      _cut(p)


def corruption(out: Path, base: Path) -> list[dict]:
  def copy(name):
    d = out / f"corrupt-{name}"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(base, d)
    return d

  cases = []
  d = copy("config-garbled")
  (d / "config.yaml").write_bytes(b"env_name: [pendulum\n\x00\x01")
  cases.append(("config.yaml garbled", "train.py --resume", ["train.py", "--resume", str(d)],
                d / "config.yaml"))
  cases.append(("config.yaml garbled", "evaluate.py", ["evaluate.py", str(d), "--no-video"],
                d / "config.yaml"))
  d = copy("config-cut")
  _cut(d / "config.yaml", 0.3)
  cases.append(("config.yaml cut to 30%", "train.py --resume",
                ["train.py", "--resume", str(d)], d / "config.yaml"))
  d = copy("policy-cut")
  _cut(d / "policy.msgpack")
  cases.append(("policy.msgpack cut in half", "evaluate.py",
                ["evaluate.py", str(d), "--no-video"], d / "policy.msgpack"))
  d = copy("step-newest-cut")
  newest = max(_steps(d))
  _cut_step(d / "checkpoints" / str(newest))
  cases.append((f"newest orbax step ({newest}) cut, older kept",
                "train.py --resume", ["train.py", "--resume", str(d)],
                d / "checkpoints" / str(newest)))
  d = copy("step-only-cut")
  for s in _steps(d)[:-1]:
    shutil.rmtree(d / "checkpoints" / str(s))
  _cut_step(d / "checkpoints" / str(newest))
  cases.append((f"only orbax step ({newest}) cut", "train.py --resume",
                ["train.py", "--resume", str(d)], d / "checkpoints" / str(newest)))
  rows = []
  for what, command, args, named in cases:
    t0 = time.perf_counter()
    proc = _run(args, out / f"{what.replace(' ', '_')[:20]}.log")
    row = {"damage": what, "command": command,
           **_one_line_check(proc, str(named)),
           "s": round(time.perf_counter() - t0, 1)}
    log = (out / f"{what.replace(' ', '_')[:20]}.log").read_text(errors="replace")
    row["resumed"] = next((l.strip() for l in log.splitlines()
                           if "resumed from" in l or "skipped checkpoint" in l), "")
    rows.append(row)
    print(row, flush=True)
  return rows


def _update_s(run_dir: Path) -> float:
  """Median wall time of one update (metrics.csv's train/update_s)."""
  import csv  # pylint: disable=import-outside-toplevel
  with (run_dir / "metrics.csv").open(newline="") as f:
    xs = sorted(float(r["train/update_s"]) for r in csv.DictReader(f)
                if r.get("train/update_s"))
  return xs[len(xs) // 2] if xs else 0.05


def _machine() -> str:
  model = ""
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        model = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  return f"{os.cpu_count()} CPUs (nproc), {model or platform.processor()}"


def _uptime() -> str:
  return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--kills", type=int, default=10)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", type=Path, default=Path("/tmp/mjx-diffrl-faults"))
  p.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks_faults.md")
  args = p.parse_args(argv)
  out = args.out.resolve()
  out.mkdir(parents=True, exist_ok=True)
  load0 = _uptime()
  t0 = time.perf_counter()

  base = out / "uninterrupted"
  shutil.rmtree(base, ignore_errors=True)
  proc = _run(["train.py", *TASK, "--num-timesteps", str(UPDATES * STEPS_PER_UPDATE),
               "--run-dir", str(base)], out / "uninterrupted.log")
  if proc.returncode:
    print(f"the uninterrupted run failed (exit {proc.returncode}):\n"
          f"{proc.stderr[-3000:]}", file=sys.stderr)
    return 1
  base_s = time.perf_counter() - t0
  # a second uninterrupted run: is training itself deterministic here?
  again = out / "uninterrupted2"
  shutil.rmtree(again, ignore_errors=True)
  t1 = time.perf_counter()
  _run(["train.py", *TASK, "--num-timesteps", str(UPDATES * STEPS_PER_UPDATE),
        "--run-dir", str(again)], out / "uninterrupted2.log")
  again_s = time.perf_counter() - t1
  reference = (base / "policy.msgpack").read_bytes()
  update_s = _update_s(again)
  repeat_same = (again / "policy.msgpack").read_bytes() == reference
  print(f"uninterrupted: {base_s:.1f}s, repeat identical: {repeat_same}, "
        f"{update_s:.3f}s per update", flush=True)

  kills = kill_and_resume(out, args.kills, args.seed, update_s, reference)
  full = disk_full(out, reference)
  print(full, flush=True)
  corrupt = corruption(out, base)
  total = time.perf_counter() - t0
  load1 = _uptime()

  matched = sum(r["match"] for r in kills)
  in_write = sum(r["in_write"] for r in kills)
  n_kills = sum(r["kills"] for r in kills)
  lines = [
      "# Fault figures (`python -m benchmarks.faults`)", "",
      f"Machine: {_machine()}. Load before: `{load0}`; after: `{load1}`. "
      f"Total {total:.0f} s. Command: `python -m benchmarks.faults --kills "
      f"{args.kills} --seed {args.seed}` (as root). Task: `train.py "
      f"{' '.join(TASK)} --num-timesteps {UPDATES * STEPS_PER_UPDATE}` "
      f"({UPDATES} updates, a checkpoint after each).", "",
      f"## Kill and resume: K = {args.kills} runs ({n_kills} SIGKILLs, "
      f"{in_write} while an orbax temporary checkpoint directory existed); "
      f"{matched} of {args.kills} finished bit-identical to the uninterrupted run", "",
      f"Uninterrupted run: {base_s:.1f} s (compiles or loads the update from "
      f"the cache); a second one, {again_s:.1f} s, "
      f"{'is' if repeat_same else 'is NOT'} bit-identical to it; "
      f"{update_s * 1000:.0f} ms per update.", "",
      "| trial | first kill | kills | kills during a checkpoint write | "
      "complete checkpoints at each kill | processes after the first | "
      "policy.msgpack identical | wall s |",
      "|---|---|---|---|---|---|---|---|",
  ]
  for r in kills:
    lines.append(f"| {r['trial']} | {r['first_kill']} | {r['kills']} | {r['in_write']} | "
                 f"{r['steps_at_kill']} | {r['resumes']} | "
                 f"{'yes' if r['match'] else 'no'} | {r['wall_s']} |"
                 + (f" error: {r['error']}" if r["error"] else ""))
  lines += [
      "", "A checkpoint holds the train state and the envs' state after the "
      "same update (agents/checkpoint.py, `StateCheckpoints.save`), so a "
      "resumed run continues as the uninterrupted one would; a checkpoint "
      "write cut by a kill leaves a temporary directory that the resume "
      "ignores (it restores the last complete one)."]
  lines += ["", "## Disk full (16 MiB tmpfs filled once 2 checkpoints exist)", ""]
  if "skipped" in full:
    lines.append(f"skipped: {full['skipped']}")
  else:
    lines += [
        "| exit code | Traceback in stderr | stderr lines | error names the run | "
        "checkpoints left | temporary dirs left | resume after freeing space | "
        "resumed from | finished |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {full['rc']} | {full['traceback']} | {full['lines']} | {full['names_file']} | "
        f"{full['steps_left']} | {len(full['tmp_left'])} | exit {full['resume_rc']} "
        f"({full['resume_s']} s) | {full['resumed_from']} | {full['finished']} |",
        "", f"Last stderr line (the lines before it are orbax's background writer threads reporting the same failure, with their tracebacks): `{full['message']}`"]
  lines += ["", "## Corruption", "",
            "| damage | command | exit code | Traceback | stderr lines | "
            "error names the file | message / what happened | s |",
            "|---|---|---|---|---|---|---|---|"]
  for r in corrupt:
    msg = r["message"].replace("|", "\\|")
    if r["rc"] == 0:
      msg = f"(exit 0) {r['resumed']}"
    lines.append(f"| {r['damage']} | `{r['command']}` | {r['rc']} | {r['traceback']} | "
                 f"{r['lines']} | {r['names_file']} | `{msg}` | {r['s']} |")
  text = "\n".join(lines) + "\n"
  print(text)
  args.doc.write_text(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
