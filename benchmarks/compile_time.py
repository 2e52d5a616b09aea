"""Where a task's compile time goes: reset, trace, lower, XLA compile, run.

Times the program the test suite compiles for a task (``tests/conftest.py``,
``EnvRuns``): a vmapped rollout of ``--batch`` envs for ``--steps`` steps,
and in ``--mode diff`` the ``value_and_grad`` of the return of its first 32
steps with respect to the actions. Nothing is cached (run it with the
persistent compilation cache off, the default here), so every number is a
cold compile in a fresh process. XLA flags are read from ``$XLA_FLAGS``, so
comparing flags means one process per setting::

    for f in "" --xla_cpu_use_fusion_emitters=false; do
      XLA_FLAGS="$f" python benchmarks/compile_time.py hopper --mode diff
    done

The printed value and gradient sum show whether a flag changed the numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import envs  # noqa: E402

HORIZON = 32


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("task", choices=envs.names())
  p.add_argument("--mode", choices=("default", "diff"), default="diff")
  p.add_argument("--batch", type=int, default=2)
  p.add_argument("--steps", type=int, default=200)
  args = p.parse_args(argv)
  if args.steps < HORIZON:
    p.error(f"--steps must be at least {HORIZON} (the differentiated return's length)")

  diff = args.mode == "diff"
  env = envs.make(args.task, differentiable=diff)

  def ret(actions, state):
    def body(s, a):
      s = env.step(s, a)
      return s, s.reward
    rewards = jax.lax.scan(body, state, actions)[1]
    return jnp.sum(rewards[:HORIZON])

  per_env = jax.value_and_grad(ret) if diff else ret
  fn = jax.jit(lambda state0, actions: jax.vmap(per_env)(actions, state0))
  keys = jax.random.split(jax.random.PRNGKey(0), args.batch)
  actions = jax.random.uniform(jax.random.PRNGKey(1),
                               (args.batch, args.steps, env.action_size),
                               minval=-1.0, maxval=1.0)
  load = os.getloadavg()[0]
  t = time.perf_counter()
  state0 = jax.block_until_ready(jax.jit(jax.vmap(env.reset))(keys))
  t_reset = time.perf_counter() - t
  t = time.perf_counter()
  traced = fn.trace(state0, actions)
  t_trace = time.perf_counter() - t
  t = time.perf_counter()
  lowered = traced.lower()
  t_lower = time.perf_counter() - t
  t = time.perf_counter()
  compiled = lowered.compile()
  t_compile = time.perf_counter() - t
  jax.block_until_ready(compiled(state0, actions))
  t = time.perf_counter()
  out = jax.block_until_ready(compiled(state0, actions))
  t_run = time.perf_counter() - t
  value, grad = out if diff else (out, jnp.zeros(()))
  print(f"{args.task} {args.mode} B={args.batch} T={args.steps} "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}: reset {t_reset:.1f} s, "
        f"trace {t_trace:.1f} s, lower {t_lower:.1f} s, compile {t_compile:.1f} s, "
        f"run {t_run:.2f} s; value {[round(float(v), 5) for v in value]}, "
        f"|grad| sum {float(jnp.abs(grad).sum()):.6g}; load {load:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
  main()
