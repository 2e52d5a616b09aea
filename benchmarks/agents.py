"""Benchmark: SHAC, APG and Brax PPO on cartpole_swingup and pendulum_swingup.

One process runs every (agent, env) pair in turn and writes

* ``docs/agents_benchmark.csv``: agent, env, env_steps, wall_s, eval_return;
* ``docs/agents_benchmark.png``: return vs env steps and vs wall-clock;
* ``docs/agents_benchmark.md``: a summary table (final returns, and when SHAC
  first reached PPO's final return).

Evaluation is the same for every agent: the deterministic policy, 16 envs, one
1000-step episode each, on the default-mode env (``envs.make(name)``), via
``agents.rollout.evaluate`` (the evaluation of ``train.py``'s eval.json: the
same seed gives the same initial states) for SHAC/APG and Brax's own
evaluator for PPO.
Wall-clock is time since the start of ``train`` (compile included) minus time
spent in evaluation. SHAC/APG train on ``envs.make(name, differentiable=True)``,
PPO on the default-mode env.

Usage: python benchmarks/agents.py [--envs ...] [--agents ...] [--ours-steps N]
       [--ppo-steps N] [--out docs]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import os
import sys
import time

# `python benchmarks/agents.py` puts benchmarks/ first on sys.path, where this
# file and benchmarks/envs.py would shadow the `agents` and `envs` packages.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import jax
import jax.numpy as jnp
import numpy as np

from trainlib import cache  # noqa: E402

cache.enable_compilation_cache()  # the one cache directory of train.py

import envs  # noqa: E402
from agents import apg, loop, networks, rollout, shac  # noqa: E402

EVAL_ENVS = 16
EPISODE = 1000

SHAC_CONFIG = shac.Config(num_envs=64, horizon=32, learning_rate=1e-2,
                          critic_learning_rate=1e-3, log_every=20)
APG_CONFIG = apg.Config(num_envs=64, horizon=32, learning_rate=1e-2, log_every=20)
PPO_KWARGS = dict(num_envs=128, batch_size=128, num_minibatches=4, unroll_length=32,
                  num_updates_per_batch=4, learning_rate=3e-4, entropy_cost=1e-2,
                  discounting=0.99, reward_scaling=10.0, normalize_observations=True,
                  episode_length=EPISODE, num_eval_envs=EVAL_ENVS,
                  deterministic_eval=True)


@functools.lru_cache(maxsize=None)
def _evaluator(name: str):
  env = envs.make(name)
  return jax.jit(lambda p, k: rollout.evaluate(env, networks.make_policy(p), k,
                                               EVAL_ENVS, EPISODE).returns.mean())


def random_return(name: str) -> float:
  env = envs.make(name)
  policy = lambda obs, key: jax.random.uniform(key, obs.shape[:-1] + (env.action_size,),
                                              minval=-1.0, maxval=1.0)
  f = jax.jit(lambda k: rollout.evaluate(env, policy, k, EVAL_ENVS, EPISODE).returns.mean())
  return float(f(jax.random.PRNGKey(0)))


def run_ours(agent: str, name: str, steps: int, evals: int, rows: list) -> None:
  mod = {"shac": shac, "apg": apg}[agent]
  base = SHAC_CONFIG if agent == "shac" else APG_CONFIG
  config = dataclasses.replace(base, num_timesteps=steps)
  env = envs.make(name, differentiable=True)
  evaluate = _evaluator(name)
  every = max(config.num_updates // evals, 1)
  clock = {"t0": time.perf_counter(), "eval_s": 0.0}

  def on_checkpoint(ts):
    t = time.perf_counter()
    wall = t - clock["t0"] - clock["eval_s"]  # training time so far, evals excluded
    pp = loop.policy_params(env, config, ts)
    ret = float(evaluate(pp, jax.random.PRNGKey(7)))
    clock["eval_s"] += time.perf_counter() - t
    rows.append((agent, name, int(ts.iteration) * config.steps_per_update, wall, ret))
    print(f"  {agent} {name} steps={rows[-1][2]} wall={wall:.0f}s return={ret:.1f}",
          flush=True)

  compile_s = [0.0]

  def progress(s, m):
    compile_s[0] = m.get("train/compile_s", compile_s[0])

  on_checkpoint(mod.init(env, config, jax.random.PRNGKey(0)))  # the initial policy
  clock.update(t0=time.perf_counter(), eval_s=0.0)
  mod.train(env, config, jax.random.PRNGKey(0), progress, checkpoint_fn=on_checkpoint,
            checkpoint_every=every)
  print(f"  {agent} {name} compile_s={compile_s[0]:.0f}", flush=True)


def run_ppo(name: str, steps: int, evals: int, rows: list) -> None:
  from brax.training.agents.ppo import train as ppo
  env = envs.make(name)
  t0 = time.perf_counter()

  def progress(s, m):
    wall = time.perf_counter() - t0 - float(m.get("eval/walltime", 0.0))
    ret = float(m["eval/episode_reward"])
    rows.append(("ppo", name, int(s), wall, ret))
    print(f"  ppo {name} steps={s} wall={wall:.0f}s return={ret:.1f}", flush=True)

  ppo.train(env, num_timesteps=steps, num_evals=evals + 1, seed=0, progress_fn=progress,
            **PPO_KWARGS)


def summarize(rows: list, randoms: dict, out: str) -> str:
  lines = ["| env | agent | env steps | wall-clock (s) | final return |",
           "|---|---|---|---|---|"]
  notes = []
  for name in sorted({r[1] for r in rows}):
    lines.append(f"| {name} | random policy | - | - | {randoms.get(name, float('nan')):.1f} |")
    final = {}
    for agent in ("shac", "apg", "ppo"):
      rs = [r for r in rows if r[0] == agent and r[1] == name]
      if rs:
        last = rs[-1]
        final[agent] = last
        lines.append(f"| {name} | {agent.upper()} | {last[2]:,} | {last[3]:.0f} | {last[4]:.1f} |")
    if "ppo" in final and "shac" in final:
      target = final["ppo"][4]
      hit = [r for r in rows if r[0] == "shac" and r[1] == name and r[4] >= target]
      if hit:
        h = hit[0]
        notes.append(
            f"- {name}: SHAC first reached PPO's final return ({target:.1f}) at "
            f"{h[2]:,} env steps ({final['ppo'][2] / max(h[2], 1):.1f}x fewer than PPO's "
            f"{final['ppo'][2]:,}) and {h[3]:.0f} s ({h[3] / final['ppo'][3]:.2f}x PPO's "
            f"{final['ppo'][3]:.0f} s).")
      else:
        notes.append(f"- {name}: SHAC did not reach PPO's final return ({target:.1f}); "
                     f"its best was {max(r[4] for r in rows if r[0] == 'shac' and r[1] == name):.1f}.")
  text = "\n".join(lines + [""] + notes) + "\n"
  with open(os.path.join(out, "agents_benchmark.md"), "w") as f:
    f.write(text)
  return text


def plot(rows: list, out: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  names = sorted({r[1] for r in rows})
  fig, axes = plt.subplots(len(names), 2, figsize=(11, 4 * len(names)), squeeze=False)
  for i, name in enumerate(names):
    for agent, color in (("shac", "C0"), ("apg", "C1"), ("ppo", "C2")):
      rs = [r for r in rows if r[0] == agent and r[1] == name]
      if not rs:
        continue
      steps, wall, ret = zip(*[(r[2], r[3], r[4]) for r in rs])
      axes[i, 0].plot(np.maximum(steps, 1), ret, "o-", color=color, label=agent.upper())
      axes[i, 1].plot(wall, ret, "o-", color=color, label=agent.upper())
    axes[i, 0].set_xscale("log")
    axes[i, 0].set_xlabel("env steps")
    axes[i, 1].set_xlabel("wall-clock s (2-core CPU, compile included)")
    for ax in axes[i]:
      ax.set_ylabel(f"{name} eval return")
      ax.grid(alpha=0.3)
      ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(out, "agents_benchmark.png"), dpi=90)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--envs", nargs="+", default=["cartpole_swingup", "pendulum_swingup"])
  parser.add_argument("--agents", nargs="+", default=["shac", "apg", "ppo"])
  parser.add_argument("--ours-steps", type=int, default=307_200)
  parser.add_argument("--ppo-steps", type=int, default=1_048_576)
  parser.add_argument("--evals", type=int, default=8)
  parser.add_argument("--out", default="docs")
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  rows: list = []
  randoms = {}
  path = os.path.join(args.out, "agents_benchmark.csv")
  for name in args.envs:
    randoms[name] = random_return(name)
    print(f"{name}: random policy return {randoms[name]:.1f}", flush=True)
    for agent in args.agents:
      if agent == "ppo":
        run_ppo(name, args.ppo_steps, args.evals, rows)
      else:
        run_ours(agent, name, args.ours_steps, args.evals, rows)
      with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["agent", "env", "env_steps", "wall_s", "eval_return"])
        w.writerows(rows)
      plot(rows, args.out)
      print(summarize(rows, randoms, args.out), flush=True)


if __name__ == "__main__":
  main()
