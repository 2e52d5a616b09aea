"""Spread of the learning tests' results over seeds and CPU instruction sets.

XLA:CPU generates different code for different instruction sets (AVX-512,
AVX2, SSE4.2), and chaotic training amplifies the rounding differences, so a
learning test's verdict must hold across machines, not just on the one it was
tuned on. This script runs the exact runs of tests/agents/test_agents_learning.py
(same env, config and metric, from tests/agents/learning_configs.py) for
several seeds and prints one line per run, plus the return of a uniformly
random policy on the same env for each seed. Run it once per instruction-set
setting and set each test's threshold with a clear margin below the worst
result. Run it from the repository root as a module (pytest does not collect
it: its name does not start with ``test_``):

  python -m tests.agents.learning_spread --seeds 0 1 2 3 4
  XLA_FLAGS=--xla_cpu_max_isa=AVX2 python -m tests.agents.learning_spread --seeds 0 1 2 3 4
  XLA_FLAGS=--xla_cpu_max_isa=SSE4_2 python -m tests.agents.learning_spread --seeds 0 1 2 3 4

``--locomotion`` runs the hopper test's SHAC run instead, ``--toy`` the toy
pendulum test's SAPO run (``--agents shac`` for SHAC on the same run, for
comparison).

Output: CSV rows ``isa,agent,episodes,seed,first,final,skipped,wall_s`` (``--csv`` appends
them to a file as well). Returns do not depend on machine load; only the wall
time does.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

import jax

from tests.agents import learning_configs as lc

# the toy env module (agents_toy_env), as tests/agents/conftest.py does
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _isa() -> str:
  """The instruction-set setting, plus any other XLA:CPU code-generation
  flag that changes numerics (the test session's
  ``--xla_cpu_use_fusion_emitters=false``, tests/conftest.py)."""
  isa, extra = "native", []
  for flag in os.environ.get("XLA_FLAGS", "").split():
    if flag.startswith("--xla_cpu_max_isa="):
      isa = flag.split("=", 1)[1]
    elif flag == "--xla_cpu_use_fusion_emitters=false":
      extra.append("no-fusion-emitters")
  return "+".join([isa, *extra])


def random_return(env, seed: int, num_envs: int = 64, length: int = 1000) -> float:
  """Mean return of a uniformly random policy (one episode of at most
  ``length`` steps per env)."""
  from agents import rollout  # pylint: disable=import-outside-toplevel

  def policy(obs, key):
    return jax.random.uniform(key, (obs.shape[0], env.action_size), minval=-1.0, maxval=1.0)

  fn = jax.jit(lambda k: rollout.evaluate(env, policy, k, num_envs, length).returns.mean())
  return float(fn(jax.random.PRNGKey(seed)))


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
  p.add_argument("--agents", nargs="+", default=None,
                 help="default: shac apg; with --toy: sapo")
  p.add_argument("--episodes", type=int, nargs="+", default=[3],
                 help="training length(s) in 1000-step episodes per env")
  p.add_argument("--no-random", action="store_true",
                 help="skip the random-policy baseline")
  p.add_argument("--csv", default=None, help="also append the rows to this file")
  p.add_argument("--locomotion", action="store_true",
                 help="the locomotion test's run instead (SHAC on the hopper, "
                      "learning_configs.run_locomotion; --agents and --episodes "
                      "do not apply): first and last logging window's return")
  p.add_argument("--toy", action="store_true",
                 help="the toy pendulum test's run instead (SAPO, "
                      "learning_configs.run_toy; --episodes does not apply): "
                      "first and last logging window's return")
  args = p.parse_args()
  if args.locomotion:
    locomotion(args)
    return
  if args.toy:
    toy(args)
    return
  args.agents = args.agents or ["shac", "apg"]

  import envs  # pylint: disable=import-outside-toplevel
  env = envs.make(lc.ENV, differentiable=True)
  isa = _isa()
  rows = []
  print("isa,agent,episodes,seed,first,final,skipped,wall_s", flush=True)
  for seed in [] if args.no_random else args.seeds:
    t0 = time.perf_counter()
    rows.append((isa, "random", 1, seed, float("nan"),
                 round(random_return(env, seed), 2), 0,
                 round(time.perf_counter() - t0, 1)))
    print(",".join(str(x) for x in rows[-1]), flush=True)
  for episodes, agent, seed in itertools.product(args.episodes, args.agents,
                                                 args.seeds):
    t0 = time.perf_counter()
    first, final, metrics = lc.run(agent, env, episodes, seed)
    rows.append((isa, agent, episodes, seed, round(first, 2), round(final, 2),
                 int(metrics["train/skipped_updates"]),
                 round(time.perf_counter() - t0, 1)))
    print(",".join(str(x) for x in rows[-1]), flush=True)
  if args.csv:
    with open(args.csv, "a", encoding="utf-8") as f:
      for r in rows:
        f.write(",".join(str(x) for x in r) + "\n")


def locomotion(args) -> None:
  env = lc.make_locomotion_env()
  isa = _isa()
  print("isa,agent,seed,first,last,skipped,wall_s", flush=True)
  for seed in [] if args.no_random else args.seeds:
    ret = random_return(env, seed, lc.LOCOMOTION_ENVS, lc.LOCOMOTION_EPISODE)
    print(f"{isa},random,{seed},nan,{ret:.2f},0,0", flush=True)
  for seed in args.seeds:
    t0 = time.perf_counter()
    first, last, metrics = lc.run_locomotion(env, seed)
    print(f"{isa},shac,{seed},{first:.2f},{last:.2f},"
          f"{int(metrics['train/skipped_updates'])},{time.perf_counter() - t0:.1f}",
          flush=True)


def toy(args) -> None:
  env = lc.make_toy_env()
  isa = _isa()
  print("isa,agent,seed,first,last,skipped,wall_s", flush=True)
  for seed in [] if args.no_random else args.seeds:
    ret = random_return(env, seed, lc.TOY_ENVS, lc.TOY_EPISODE)
    print(f"{isa},random,{seed},nan,{ret:.2f},0,0", flush=True)
  for agent, seed in itertools.product(args.agents or ["sapo"], args.seeds):
    t0 = time.perf_counter()
    first, last, metrics = lc.run_toy(env, seed, agent)
    print(f"{isa},{agent},{seed},{first:.2f},{last:.2f},"
          f"{int(metrics['train/skipped_updates'])},{time.perf_counter() - t0:.1f}",
          flush=True)


if __name__ == "__main__":
  main()
