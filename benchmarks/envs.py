"""Env steps per second for every task, both modes, forward and value_and_grad.

    python benchmarks/envs.py [--batch 64] [--steps 16] [--names hopper ant]
                              [--out docs/benchmarks_envs.md]

For each task and mode it times, after compilation:

* ``forward``: ``jit(vmap(reset)) `` once, then a jitted ``lax.scan`` of
  ``vmap(step)`` over ``steps`` steps of random actions;
* ``value_and_grad``: a jitted ``value_and_grad`` of the batch's summed
  ``steps``-step return with respect to the ``[steps, batch, nu]`` actions.

Env steps/s = ``batch * steps / seconds`` (median of ``--repeats`` runs).
Default mode has no ``value_and_grad`` where the model has constraints:
MJX's early-exit solver loop is a ``while_loop`` that reverse mode cannot
differentiate (that is what differentiable mode is for); those cells say so.
Compile times are reported too (they dominate short runs on CPU).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import envs


def _time(fn, *args, repeats: int) -> tuple[float, float]:
  """(compile+first-run seconds, median run seconds)."""
  t = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t
  runs = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    runs.append(time.perf_counter() - t)
  return first, statistics.median(runs)


def bench(name: str, differentiable: bool, batch: int, steps: int, repeats: int) -> dict:
  env = envs.make(name, differentiable=differentiable)
  keys = jax.random.split(jax.random.PRNGKey(0), batch)
  state = jax.jit(jax.vmap(env.reset))(keys)
  actions = jax.random.uniform(jax.random.PRNGKey(1), (steps, batch, env.action_size),
                               minval=-1.0, maxval=1.0)
  step = jax.vmap(env.step)

  def rollout_return(actions, state):
    def body(s, a):
      s = step(s, a)
      return s, s.reward

    _, rewards = jax.lax.scan(body, state, actions)
    return jnp.sum(rewards)

  row = {"name": name, "mode": "differentiable" if differentiable else "default"}
  forward = jax.jit(rollout_return)
  compile_s, run_s = _time(forward, actions, state, repeats=repeats)
  row["forward_sps"] = batch * steps / run_s
  row["forward_compile_s"] = compile_s

  try:
    vg = jax.jit(jax.value_and_grad(rollout_return))
    compile_s, run_s = _time(vg, actions, state, repeats=repeats)
    value, grad = vg(actions, state)
    finite = bool(np.isfinite(np.asarray(grad)).all())
    row["grad_sps"] = batch * steps / run_s
    row["grad_compile_s"] = compile_s
    row["grad_finite"] = finite
  except Exception as err:  # reverse mode through MJX's while loop
    row["grad_sps"] = None
    row["grad_error"] = type(err).__name__
  return row


def _fmt(x, spec="{:,.0f}"):
  return "n/a" if x is None else spec.format(x)


def table(rows: list[dict], batch: int, steps: int) -> str:
  lines = [
      f"Env steps/s, B={batch}, {steps}-step jitted scans, median of repeats, "
      f"after compilation. Machine: {platform.machine()} CPU, "
      f"{jax.device_count()} JAX device(s) ({jax.devices()[0].platform}), "
      f"jax {jax.__version__}.",
      "",
      "| task | mode | forward steps/s | value_and_grad steps/s | grad / forward | compile fwd / grad (s) |",
      "|---|---|---:|---:|---:|---:|",
  ]
  for r in rows:
    ratio = (None if r.get("grad_sps") is None
             else r["forward_sps"] / r["grad_sps"])
    grad = _fmt(r.get("grad_sps"))
    if r.get("grad_sps") is None:
      grad = "n/a (while loop)"
    elif not r.get("grad_finite", True):
      grad += " (non-finite!)"
    lines.append(
        f"| {r['name']} | {r['mode']} | {_fmt(r['forward_sps'])} | {grad} | "
        f"{_fmt(ratio, '{:.1f}x slower')} | {r['forward_compile_s']:.0f} / "
        f"{_fmt(r.get('grad_compile_s'), '{:.0f}')} |")
  return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--names", nargs="*", default=None)
  parser.add_argument("--modes", nargs="*", default=["default", "differentiable"],
                      choices=["default", "differentiable"])
  parser.add_argument("--out", default=None, help="write the markdown table here")
  args = parser.parse_args(argv)
  names = args.names or envs.names()
  for n in names:
    envs.env_class(n)  # clear error on a typo before any compile
  rows = []
  for name in names:
    for mode in args.modes:
      row = bench(name, mode == "differentiable", args.batch, args.steps, args.repeats)
      rows.append(row)
      print(row, flush=True)
      if args.out:  # rewrite after every row so a cut-short run keeps its results
        with open(args.out, "w") as f:
          f.write(table(rows, args.batch, args.steps))
  print(table(rows, args.batch, args.steps))


if __name__ == "__main__":
  main(sys.argv[1:])
