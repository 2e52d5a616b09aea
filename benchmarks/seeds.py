"""Seed table: `python train.py <task> --seed S` with the task's preset,
judged against the task's target, one row per (task, seed).

    python -m benchmarks.seeds --tasks hopper --seeds 0 1 2 3 4
    python -m benchmarks.seeds --tasks cartpole_swingup --seeds 0 1 --jobs 2

Each run is the whole command a user types (compile, training, final
evaluation and video), in its own run directory under ``--runs``, with the
persistent compilation cache off (train.py's default; ``MJX_DIFFRL_JAX_CACHE``
is removed from the child's environment). Per run it records:

* ``return``, ``velocity`` and ``falls``: the final deterministic
  evaluation (``eval.json``: 10 episodes of 1000 steps);
* ``stability``: the lowest of the last three periodic evaluations
  (``eval/episode_return`` in ``metrics.csv``) divided by the final
  evaluation's return (issue 27's criterion: >= 0.8 on a run that holds);
* ``wall_s``: the whole command's wall clock, with the 1-minute load before
  and after and ``concurrent``, the number of runs going at once: this
  invocation's, plus ``--others`` declared for other jobs on the machine
  (1 = measured alone, if nothing else ran: see the loads);
* ``success``: the task's target (``TARGETS``) met, and the run within the
  task's wall-clock budget when it ran alone.

Every finished row is merged into ``<out>/seeds.csv`` at once (a later run of
the same task and seed replaces the earlier row), and ``seeds.md`` (per-run
table and per-task summary: success count, median and spread) and
``seeds.png`` are rewritten from the whole CSV, so an interrupted table
keeps its finished rows.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

from benchmarks import common


@dataclasses.dataclass(frozen=True)
class Target:
  """What a run of a task must reach (issue 27's table)."""
  budget_s: float
  min_return: float | None = None
  min_velocity: float | None = None
  max_falls: int | None = None
  seeds_needed: str = "all"

  def describe(self) -> str:
    parts = []
    if self.min_return is not None:
      parts.append(f"return >= {self.min_return:g}")
    if self.min_velocity is not None:
      parts.append(f">= {self.min_velocity:g} m/s")
    if self.max_falls is not None:
      parts.append(f"<= {self.max_falls} falls")
    parts.append(f"<= {self.budget_s / 60:g} min")
    return ", ".join(parts)


TARGETS: dict[str, Target] = {
    "cartpole_swingup": Target(budget_s=300, min_return=800, seeds_needed="5 of 5"),
    "hopper": Target(budget_s=900, min_velocity=2.0, max_falls=0, seeds_needed="4 of 5"),
    "half_cheetah": Target(budget_s=1200, min_velocity=3.0, seeds_needed="4 of 5"),
    "ant": Target(budget_s=1800, min_velocity=1.5, max_falls=0, seeds_needed="2 of 3"),
    "humanoid": Target(budget_s=3600, min_velocity=0.5, max_falls=0, seeds_needed="2 of 3"),
}

FIELDS = ["task", "seed", "agent", "success", "reached", "return", "velocity",
          "falls", "episodes", "stability", "last_evals", "wall_s", "within_budget",
          "concurrent", "load_before", "load_after", "commit", "args", "run_dir"]


def _commit() -> str:
  try:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def periodic_evals(metrics_csv: Path) -> list[float]:
  """The periodic evaluation returns of a run, in order."""
  return [float(r["eval/episode_return"]) for r in common.read_csv(str(metrics_csv))
          if r.get("eval/episode_return") not in (None, "", "nan")]


def stability(evals: list[float], final: float) -> float:
  """min(last three periodic evaluations) / final return (NaN without any)."""
  if not evals or not final:
    return math.nan
  return min(evals[-3:]) / final


def judge(target: Target, ev: dict) -> bool:
  """Whether the final evaluation ``ev`` (eval.json) meets ``target``."""
  falls = round(ev["fall_rate"] * ev["episodes"])
  ok = True
  if target.min_return is not None:
    ok &= ev["return_mean"] >= target.min_return
  if target.min_velocity is not None:
    ok &= ev.get("forward_velocity_mean", -math.inf) >= target.min_velocity
  if target.max_falls is not None:
    ok &= falls <= target.max_falls
  return bool(ok)


def run_one(task: str, seed: int, runs: Path, extra: list[str], concurrent: int,
            log) -> dict:
  """Runs ``train.py task --seed seed`` and returns its row."""
  run_dir = runs / task / f"seed{seed}"
  if run_dir.exists():
    raise SystemExit(f"{run_dir} exists; remove it or pass another --runs")
  env = {k: v for k, v in os.environ.items() if k != "MJX_DIFFRL_JAX_CACHE"}
  cmd = [sys.executable, "train.py", task, "--seed", str(seed), "--run-dir",
         str(run_dir), *extra]
  load_before = common.load_average()
  commit = _commit()
  t0 = time.perf_counter()
  run_dir.parent.mkdir(parents=True, exist_ok=True)
  with open(run_dir.parent / f"seed{seed}.log", "w") as out:
    rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                        cwd=Path(__file__).resolve().parents[1]).returncode
  wall = time.perf_counter() - t0
  row = {"task": task, "seed": seed, "wall_s": round(wall, 1),
         "concurrent": concurrent, "load_before": round(load_before, 2),
         "load_after": round(common.load_average(), 2), "commit": commit,
         "args": " ".join(extra), "run_dir": str(run_dir)}
  if rc != 0:
    log(f"{task} seed {seed}: train.py exited {rc} (log: {run_dir.parent}/seed{seed}.log)")
    return {**row, "success": False, "reached": False}
  ev = json.loads((run_dir / "eval.json").read_text())
  evals = periodic_evals(run_dir / "metrics.csv")
  target = TARGETS[task]
  reached = judge(target, ev)
  within = wall <= target.budget_s
  row.update({
      "agent": _agent(run_dir, extra),
      "reached": reached,
      "success": reached and (within or concurrent > 1),
      "return": round(ev["return_mean"], 1),
      "velocity": (round(ev["forward_velocity_mean"], 3)
                   if "forward_velocity_mean" in ev else ""),
      "falls": round(ev["fall_rate"] * ev["episodes"]),
      "episodes": ev["episodes"],
      "stability": round(stability(evals, ev["return_mean"]), 3),
      "last_evals": " ".join(f"{e:.0f}" for e in evals[-3:]),
      "within_budget": within if concurrent == 1 else "",
  })
  log(f"{task} seed {seed}: return {row['return']}, velocity {row['velocity']}, "
      f"falls {row['falls']}, stability {row['stability']}, {wall:.0f} s "
      f"({'alone' if concurrent == 1 else f'{concurrent} at once'})")
  return row


def _agent(run_dir: Path, extra: list[str]) -> str:
  """The agent of a run: ``--agent`` in ``extra``, else the preset's default."""
  if "--agent" in extra:
    return extra[extra.index("--agent") + 1]
  for line in (run_dir / "config.yaml").read_text().splitlines():
    if line.startswith("default_agent:"):
      return line.split(":", 1)[1].strip()
  return ""


def merge(csv_path: Path, new: list[dict]) -> list[dict]:
  """The CSV's rows with ``new`` replacing rows of the same (task, seed)."""
  rows = {(r["task"], str(r["seed"])): r for r in common.read_csv(str(csv_path))}
  for r in new:
    rows[(r["task"], str(r["seed"]))] = {k: r.get(k, "") for k in FIELDS}
  order = list(TARGETS)
  return sorted(rows.values(), key=lambda r: (order.index(r["task"])
                                              if r["task"] in order else 99,
                                              int(r["seed"])))


def _true(v) -> bool:
  return str(v) == "True"


def markdown(rows: list[dict]) -> str:
  """Per-task summary and per-run table of ``rows``."""
  lines = ["# Seed table (`python -m benchmarks.seeds`)", "",
           "Written by benchmarks/seeds.py from seeds.csv; every row is the whole "
           "`python train.py <task> --seed S` command with the preset. "
           "`stability` = lowest of the last three periodic evaluations / final "
           "evaluation. `concurrent` > 1: that many runs shared the 2 cores, so "
           "the wall clock is not a timing (returns do not depend on load).", "",
           "## Per task", "",
           "| task | target | seeds needed | succeeded | median return | return range "
           "| median velocity | velocity range | median stability | wall clock alone |",
           "|---|---|---|---|---:|---|---:|---|---:|---|"]
  for task in dict.fromkeys(r["task"] for r in rows):
    rs = [r for r in rows if r["task"] == task and r.get("return") not in ("", None)]
    target = TARGETS.get(task)
    n = len([r for r in rows if r["task"] == task])
    rets = [float(r["return"]) for r in rs]
    vels = [float(r["velocity"]) for r in rs if r["velocity"] not in ("", None)]
    stabs = [float(r["stability"]) for r in rs if r["stability"] not in ("", "nan")]
    alone = [f"{float(r['wall_s']) / 60:.1f} min (seed {r['seed']})"
             for r in rows if r["task"] == task and str(r["concurrent"]) == "1"]
    med = lambda xs, f: f.format(statistics.median(xs)) if xs else "n/a"  # noqa: E731
    rng = lambda xs, f: (f.format(min(xs)) + " to " + f.format(max(xs))) if xs else "n/a"  # noqa: E731
    lines.append(
        f"| {task} | {target.describe() if target else ''} | "
        f"{target.seeds_needed if target else ''} | "
        f"{sum(_true(r['success']) for r in rows if r['task'] == task)} of {n} | "
        f"{med(rets, '{:.1f}')} | {rng(rets, '{:.1f}')} | {med(vels, '{:.2f}')} | "
        f"{rng(vels, '{:.2f}')} | {med(stabs, '{:.2f}')} | "
        f"{', '.join(alone) or 'not timed alone'} |")
  lines += ["", "## Per run", "",
            "| task | seed | target met | return | velocity (m/s) | falls | stability "
            "| last 3 periodic evals | wall clock | concurrent | load before/after | commit |",
            "|---|---:|---|---:|---:|---|---:|---|---:|---:|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['task']} | {r['seed']} | {'yes' if _true(r['reached']) else 'no'} | "
        f"{r['return']} | {r['velocity']} | {r['falls']} of {r['episodes']} | "
        f"{r['stability']} | {r['last_evals']} | {float(r['wall_s']) / 60:.1f} min | "
        f"{r['concurrent']} | {r['load_before']}/{r['load_after']} | {r['commit']} |")
  return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
  """Final return and stability per seed, one panel per task."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  tasks = list(dict.fromkeys(r["task"] for r in rows))
  if not tasks:
    return
  fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3), squeeze=False)
  for ax, task in zip(axes[0], tasks):
    rs = [r for r in rows if r["task"] == task and r["return"] not in ("", None)]
    key = "velocity" if rs and rs[0]["velocity"] not in ("", None) else "return"
    xs = [int(r["seed"]) for r in rs]
    ys = [float(r[key]) for r in rs]
    colors = ["tab:green" if _true(r["reached"]) else "tab:red" for r in rs]
    ax.bar(xs, ys, color=colors)
    target = TARGETS.get(task)
    line = target and (target.min_velocity if key == "velocity" else target.min_return)
    if line:
      ax.axhline(line, color="k", ls="--", lw=1)
    ax.set_title(task)
    ax.set_xlabel("seed")
    ax.set_ylabel("forward velocity (m/s)" if key == "velocity" else "return")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv=None) -> int:
  p = common.parser(__doc__)
  p.add_argument("--tasks", nargs="+", required=True, choices=sorted(TARGETS))
  p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
  p.add_argument("--jobs", type=int, default=1,
                 help="runs at once (returns do not depend on load; wall clocks "
                      "of runs with --jobs > 1 are not timings)")
  p.add_argument("--others", type=int, default=0,
                 help="jobs of other invocations sharing the machine for the "
                      "whole table (e.g. a second benchmarks.seeds): counted in "
                      "`concurrent`, so no wall clock is taken for a timing")
  p.add_argument("--runs", default="runs/seeds", help="parent of the run directories")
  p.add_argument("--out", default="docs/seeds", help="where seeds.csv/.md/.png go")
  p.add_argument("train_args", nargs="*",
                 help="extra train.py arguments after --, e.g. -- --no-video")
  args = p.parse_args(argv)
  if args.others < 0:
    p.error(f"--others must be >= 0, got {args.others}")
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  csv_path = out / "seeds.csv"

  def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

  def record(row):
    rows = merge(csv_path, [row])
    common.write_csv(str(csv_path), FIELDS, rows)
    (out / "seeds.md").write_text(markdown(rows))
    plot(rows, out / "seeds.png")

  jobs = [(t, s) for t in args.tasks for s in args.seeds]
  log(f"{len(jobs)} runs, {args.jobs} at a time, load {common.load_average():.2f}")
  with futures.ThreadPoolExecutor(args.jobs) as pool:
    pending = [pool.submit(run_one, t, s, Path(args.runs), args.train_args,
                           min(args.jobs, len(jobs)) + args.others, log)
               for t, s in jobs]
    for fut in futures.as_completed(pending):
      record(fut.result())
  log(f"done; {csv_path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
