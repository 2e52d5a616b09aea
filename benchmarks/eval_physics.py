"""Does a trained policy's evaluation depend on the solver's budget?

Evaluates a run's final policy (any agent, loaded as evaluate.py does)
deterministically under several physics settings, from the same initial
states: ``m/I/L`` is the default-mode env with ``iterations=I``,
``ls_iterations=L`` (MJX's early-exit solver), ``d/I/L`` the differentiable
env with ``diff_iterations=I``, ``diff_ls_iterations=L`` (exactly I
iterations). Every other field is the run's own env config. If the numbers
move beyond their spread between settings that should both converge, the
evaluation is measuring the solver, not the policy (docs/envs.md, "Default
mode must converge too").

Usage: python benchmarks/eval_physics.py RUN_DIR m/4/8 m/8/8 m/50/50 d/8/3
       [--episodes 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

# `python benchmarks/eval_physics.py` puts benchmarks/ first on sys.path,
# where benchmarks/envs.py would shadow the `envs` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import jax  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402
import agents  # noqa: E402
from agents import rollout  # noqa: E402
from trainlib import evaluation, rundir  # noqa: E402


def parse_setting(text: str) -> tuple[bool, int, int]:
  """``"m/4/8"`` -> (False, 4, 8); ``"d/8/3"`` -> (True, 8, 3)."""
  parts = text.split("/")
  if len(parts) != 3 or parts[0] not in ("m", "d") or not all(
      p.isdigit() and int(p) > 0 for p in parts[1:]):
    raise argparse.ArgumentTypeError(
        f"{text!r}: write MODE/ITERATIONS/LS_ITERATIONS, MODE m (default mode) "
        "or d (differentiable), e.g. m/8/8 or d/8/3")
  return parts[0] == "d", int(parts[1]), int(parts[2])


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("run_dir")
  parser.add_argument("settings", nargs="+", type=parse_setting)
  parser.add_argument("--episodes", type=int, default=10)
  parser.add_argument("--seed", type=int, default=1,
                      help="PRNG key of the initial states (default 1)")
  args = parser.parse_args(argv)
  resolved = rundir.read_config(os.path.join(args.run_dir, "config.yaml"))
  algo = agents.algorithm(resolved.agent)
  params = algo.load_params(rundir.RunPaths(Path(args.run_dir)).policy(resolved.agent))
  length = resolved.episode_length
  print(f"{resolved.env_name}: {args.run_dir}, {args.episodes} episodes of "
        f"{length} steps, key {args.seed}")
  print("| physics | return | forward velocity | episode returns (min … max) |")
  print("|---|---|---|---|")
  for differentiable, iterations, ls_iterations in args.settings:
    fields = (dict(diff_iterations=iterations, diff_ls_iterations=ls_iterations)
              if differentiable else
              dict(iterations=iterations, ls_iterations=ls_iterations))
    config = dataclasses.replace(resolved.env_config, **fields)
    env = envs.env_class(resolved.env_name)(config, differentiable=differentiable)
    record = evaluation.recorder(env)
    apply = algo.make_apply(env, resolved.agent_config)
    result = jax.device_get(jax.jit(
        lambda k, env=env, record=record, apply=apply: rollout.evaluate(
            env, lambda obs, key: apply(params, obs, key), k, args.episodes,
            length, record))(jax.random.PRNGKey(args.seed)))
    s = evaluation.summarize(result, length, float(env.dt))
    velocity = s.get("forward_velocity_mean")
    mode = "differentiable" if differentiable else "default"
    print(f"| {mode} mode, {iterations} / {ls_iterations} | {s['return_mean']:.1f} ± "
          f"{s['return_std']:.1f} | "
          f"{'-' if velocity is None else f'{velocity:.2f} m/s'} | "
          f"{np.min(s['returns']):.0f} … {np.max(s['returns']):.0f} |", flush=True)


if __name__ == "__main__":
  main()
