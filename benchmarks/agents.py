"""Benchmark: SHAC, APG and Brax PPO at equal wall-clock, several seeds.

Every (env, agent, seed) trains from the env's preset (``configs/<env>.yaml``,
the agent's section: what ``python train.py <env> --agent <agent>`` runs) for
the same wall-clock budget, compile included, evaluation excluded. SHAC and
APG train on ``envs.make(name, differentiable=True)``, PPO (Brax's
``ppo.train``) on the default-mode env. A run ends at the first update (PPO:
the first training epoch) that passes the budget, or earlier where its preset's
``num_timesteps`` is reached (SHAC/APG: the learning rate decays over it).
PPO gets ``num_timesteps`` far past the budget and a constant learning rate.

Every agent is evaluated the same way, in this process, at the start and about
``--evals`` times over the budget: the deterministic policy on the default-mode
env, ``EVAL_ENVS`` episodes of the preset's episode length from fixed initial
states, via ``agents.rollout.evaluate`` and ``trainlib.run.summarize``
(``benchmarks.common.evaluator``; return, forward velocity, fall rate: the
numbers of train.py's eval.json).

Writes, merged with the rows of other (env, agent) pairs already in ``--out``:

* ``agents_benchmark.csv``: env, agent, seed, budget_s, env_steps, wall_s,
  compile_s, eval_return, forward_velocity, fall_rate;
* ``agents_benchmark.png``: return and forward velocity against env steps and
  against wall-clock (one row per env, one thin line per seed);
* ``agents_benchmark.md``: final numbers (mean ± std over seeds) and, per
  seed, when SHAC first reached PPO's final return.

Usage: python -m benchmarks.agents [--envs ...] [--agents ...] [--seeds ...]
       [--budget-s S] [--evals N] [--ppo-epoch-steps N] [--out docs]
       [--plot-only]
"""

from __future__ import annotations

import os
import time

# XLA:CPU logs spurious machine-feature errors when it loads executables
# from the persistent cache (as train.py, set before jaxlib loads).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import numpy as np  # noqa: E402

import agents  # noqa: E402
from benchmarks import common  # noqa: E402

common.enable_cache()  # the one cache directory of train.py

EVAL_ENVS = 10
EVAL_KEY = jax.random.PRNGKey(7)
FIELDS = ("env", "agent", "seed", "budget_s", "env_steps", "wall_s", "compile_s",
          "eval_return", "forward_velocity", "fall_rate")
AGENTS = tuple(agents.ALGORITHMS)  # the agent table
DEFAULT_AGENTS = ("shac", "apg", "ppo")


class Evaluator:
  """The deterministic evaluation of every agent on one env's default mode
  (one per env: :func:`evaluator_for`), through the agent table's
  ``make_apply`` as evaluate.py does."""

  def __init__(self, resolved):
    self.env = common.make_env(resolved)
    self.length = common.episode_length(self.env, resolved.agent_config)
    self._compiled = {}

  def summary(self, agent: str, config, params) -> dict[str, float]:
    """``params`` of ``agent`` (its ``load_params`` form); the jitted
    evaluation is built once per agent."""
    if agent not in self._compiled:
      apply = common.make_apply(agent, self.env, config)
      self._compiled[agent] = common.evaluator(
          self.env, lambda p: lambda obs, key: apply(p, obs, key), EVAL_ENVS,
          self.length)
    s = self._compiled[agent](params, EVAL_KEY)
    return {"eval_return": s["return_mean"],
            "forward_velocity": s.get("forward_velocity_mean", float("nan")),
            "fall_rate": s["fall_rate"]}


_EVALUATORS: dict[str, Evaluator] = {}


def evaluator_for(resolved) -> Evaluator:
  """The env's :class:`Evaluator`, built once per process (its compiled
  evaluations are kept across seeds)."""
  if resolved.env_name not in _EVALUATORS:
    _EVALUATORS[resolved.env_name] = Evaluator(resolved)
  return _EVALUATORS[resolved.env_name]


class Clock:
  """Training wall-clock (evaluation excluded) and the evaluation schedule."""

  def __init__(self, budget_s: float, evals: int):
    self.budget_s, self.every = budget_s, budget_s / max(evals, 1)
    self.t0, self.eval_s, self.next_eval = time.perf_counter(), 0.0, 0.0

  def wall(self) -> float:
    return time.perf_counter() - self.t0 - self.eval_s

  def due(self) -> bool:
    return self.wall() >= self.next_eval or self.wall() >= self.budget_s

  def record(self, evaluate, base: dict, steps: int, rows: list) -> None:
    wall = self.wall()
    t = time.perf_counter()
    row = {**base, "env_steps": int(steps), "wall_s": round(wall, 2), **evaluate()}
    self.eval_s += time.perf_counter() - t
    self.next_eval = (wall // self.every + 1) * self.every
    rows.append(row)
    print(f"  {row['env']} {row['agent']} seed={row['seed']} steps={steps:,} "
          f"wall={wall:.0f}s return={row['eval_return']:.1f} "
          f"v={row['forward_velocity']:.2f} falls={row['fall_rate']:.1f}", flush=True)


def run_ours(name: str, agent: str, seed: int, budget_s: float, evals: int,
             rows: list) -> None:
  resolved = common.resolve(name, agent)
  config = resolved.agent_config
  env = common.make_env(resolved, differentiable=True)
  evaluator = evaluator_for(resolved)
  base = {"env": name, "agent": agent, "seed": seed, "budget_s": budget_s,
          "compile_s": float("nan")}
  state = {"ts": None, "steps": 0}

  def evaluate(ts):
    return lambda: evaluator.summary(agent, config,
                                     common.policy_params(env, config, ts))

  clock = Clock(budget_s, evals)
  clock.record(evaluate(common.init_state(agent, env, config, seed)), base, 0, rows)
  clock = Clock(budget_s, evals)
  clock.next_eval = clock.every

  def progress_fn(steps, metrics):
    if "train/compile_s" in metrics:
      base["compile_s"] = round(float(metrics["train/compile_s"]), 1)

  def stop(ts):  # after every update; True ends the run at the budget
    state["ts"] = ts
    state["steps"] = int(ts.iteration) * config.steps_per_update
    if clock.due():
      clock.record(evaluate(ts), base, state["steps"], rows)
    return clock.wall() >= budget_s

  if common.train_until(agent, env, config, seed, progress_fn, stop):
    return
  if rows[-1]["env_steps"] != state["steps"]:  # ended at num_timesteps
    clock.record(evaluate(state["ts"]), base, state["steps"], rows)


def run_ppo(name: str, seed: int, budget_s: float, evals: int, epoch_steps: int,
            rows: list) -> None:
  from brax.training.agents.ppo import train as brax_ppo  # pylint: disable=import-outside-toplevel
  resolved = common.resolve(name, "ppo")
  config = resolved.agent_config
  evaluator = evaluator_for(resolved)
  base = {"env": name, "agent": "ppo", "seed": seed, "budget_s": budget_s,
          "compile_s": float("nan")}
  kwargs = common.ppo_kwargs(config, evaluator.length)
  epochs = 10_000
  kwargs.update(num_evals=epochs + 1, run_evals=False)
  clock = Clock(budget_s, evals)

  def policy_params_fn(step, make_policy, params):
    del make_policy
    if step == 0:  # the initial policy (Brax's set-up time stays on the clock)
      clock.record(lambda: evaluator.summary("ppo", config, params), base, 0, rows)
      clock.next_eval = clock.every
      return
    if clock.due():
      clock.record(lambda: evaluator.summary("ppo", config, params), base, step, rows)
    if clock.wall() >= budget_s:
      raise common.StopTraining  # Brax's ppo.train has no stop hook

  try:
    brax_ppo.train(environment=evaluator.env, num_timesteps=epochs * epoch_steps,
                   seed=seed, policy_params_fn=policy_params_fn, **kwargs)
  except common.StopTraining:
    pass


# --------------------------------------------------------------------------
# CSV, summary, plot
# --------------------------------------------------------------------------


def read_rows(path: str) -> list[dict]:
  rows = common.read_csv(path)
  if rows and set(FIELDS) - set(rows[0]):
    return []  # an older format: replaced
  out = []
  for r in rows:
    out.append({k: (r[k] if k in ("env", "agent") else
                    int(r[k]) if k in ("seed", "env_steps") else float(r[k]))
                for k in FIELDS})
  return out


def _runs(rows, name, agent):
  seeds = sorted({r["seed"] for r in rows if r["env"] == name and r["agent"] == agent})
  return {s: [r for r in rows if r["env"] == name and r["agent"] == agent
              and r["seed"] == s] for s in seeds}


def _pm(values, spec="{:.1f}") -> str:
  values = np.asarray(values, float)
  if not np.isfinite(values).any():
    return "-"
  if len(values) == 1:
    return spec.format(values[0])
  return f"{spec.format(values.mean())} ± {spec.format(values.std())}"


def summarize(rows: list[dict]) -> str:
  lines = ["| env | agent | seeds | budget (s) | env steps at the end | wall-clock (s) "
           "| compile (s) | final return | forward velocity (m/s) | fall rate |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  notes = []
  for name in sorted({r["env"] for r in rows}):
    finals = {}
    for agent in AGENTS:
      runs = _runs(rows, name, agent)
      if not runs:
        continue
      last = [rs[-1] for rs in runs.values()]
      finals[agent] = last
      lines.append(
          f"| {name} | {agent.upper()} | {len(last)} | {last[0]['budget_s']:.0f} "
          f"| {_pm([r['env_steps'] for r in last], '{:,.0f}')} "
          f"| {_pm([r['wall_s'] for r in last], '{:.0f}')} "
          f"| {_pm([r['compile_s'] for r in last], '{:.0f}') if agent != 'ppo' else '-'} "
          f"| {_pm([r['eval_return'] for r in last])} "
          f"| {_pm([r['forward_velocity'] for r in last], '{:.2f}')} "
          f"| {_pm([r['fall_rate'] for r in last], '{:.2f}')} |")
    if "ppo" in finals and "shac" in finals:
      target = float(np.mean([r["eval_return"] for r in finals["ppo"]]))
      ppo_steps = float(np.mean([r["env_steps"] for r in finals["ppo"]]))
      ppo_wall = float(np.mean([r["wall_s"] for r in finals["ppo"]]))
      for seed, rs in _runs(rows, name, "shac").items():
        hit = [r for r in rs if r["eval_return"] >= target]
        if hit:
          h = hit[0]
          ratio = ppo_steps / max(h["env_steps"], 1)
          steps = (f"{ratio:.1f}x fewer than" if ratio >= 1 else
                   f"{1 / ratio:.2f}x as many as")
          notes.append(
              f"- {name}, SHAC seed {seed}: first reached PPO's final return "
              f"(mean {target:.1f}) at {h['env_steps']:,} env steps "
              f"({steps} PPO's {ppo_steps:,.0f}) and {h['wall_s']:.0f} s "
              f"({h['wall_s'] / ppo_wall:.2f}x PPO's {ppo_wall:.0f} s).")
        else:
          notes.append(
              f"- {name}, SHAC seed {seed}: did not reach PPO's final return "
              f"(mean {target:.1f}); its best evaluation was "
              f"{max(r['eval_return'] for r in rs):.1f}.")
  return "\n".join(lines + [""] + notes) + "\n"


def plot(rows: list[dict], path: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  names = sorted({r["env"] for r in rows})
  fig, axes = plt.subplots(len(names), 4, figsize=(20, 3.6 * len(names)), squeeze=False)
  for i, name in enumerate(names):
    for agent, color in zip(AGENTS, ("C0", "C1", "C2")):
      for j, (seed, rs) in enumerate(_runs(rows, name, agent).items()):
        steps = np.maximum([r["env_steps"] for r in rs], 1)
        wall = [r["wall_s"] for r in rs]
        label = agent.upper() if j == 0 else None
        for col, (x, key) in enumerate(((steps, "eval_return"), (wall, "eval_return"),
                                        (steps, "forward_velocity"),
                                        (wall, "forward_velocity"))):
          axes[i, col].plot(x, [r[key] for r in rs], ".-", color=color, lw=1,
                            alpha=0.8, label=label)
    has_velocity = any(np.isfinite(r["forward_velocity"]) for r in rows
                       if r["env"] == name)
    for col, (xlabel, ylabel) in enumerate(
        (("env steps", "eval return"), ("wall-clock s (compile incl.)", "eval return"),
         ("env steps", "forward velocity m/s"),
         ("wall-clock s (compile incl.)", "forward velocity m/s"))):
      ax = axes[i, col]
      if col >= 2 and not has_velocity:
        ax.axis("off")
        ax.text(0.5, 0.5, f"{name}: no forward direction", ha="center",
                va="center", transform=ax.transAxes)
        continue
      if col in (0, 2):
        ax.set_xscale("log")
      ax.set_xlabel(xlabel)
      ax.set_ylabel(f"{name}: {ylabel}")
      ax.grid(alpha=0.3)
      ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=80)


def main(argv: list[str] | None = None) -> None:
  parser = common.parser(__doc__)
  parser.add_argument("--envs", nargs="+", default=["hopper", "half_cheetah"])
  parser.add_argument("--agents", nargs="+", default=list(DEFAULT_AGENTS), choices=AGENTS)
  parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
  parser.add_argument("--budget-s", type=float, default=150.0,
                      help="wall-clock per run, compile included (default 150)")
  parser.add_argument("--evals", type=int, default=8,
                      help="evaluations over the budget, besides the initial one")
  parser.add_argument("--ppo-epoch-steps", type=int, default=51_200,
                      help="PPO env steps between budget checks (Brax's epoch)")
  parser.add_argument("--out", default="docs")
  parser.add_argument("--plot-only", action="store_true",
                      help="train nothing: redraw the PNG and the summary from the CSV")
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  csv_path = os.path.join(args.out, "agents_benchmark.csv")
  if args.plot_only:
    args.envs = []
  kept = [r for r in read_rows(csv_path)
          if not (r["env"] in args.envs and r["agent"] in args.agents)]
  rows: list[dict] = []
  for name in args.envs:
    for agent in args.agents:
      for seed in args.seeds:
        if agent == "ppo":
          run_ppo(name, seed, args.budget_s, args.evals, args.ppo_epoch_steps, rows)
        else:
          run_ours(name, agent, seed, args.budget_s, args.evals, rows)
        common.write_csv(csv_path, FIELDS, kept + rows)  # after every run: nothing is lost
  everything = kept + rows
  plot(everything, os.path.join(args.out, "agents_benchmark.png"))
  text = summarize(everything)
  common.write_text(os.path.join(args.out, "agents_benchmark.md"), text)
  print(text, flush=True)


if __name__ == "__main__":
  main()
