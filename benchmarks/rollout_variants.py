"""Rollout-gradient variants that might make the reverse pass cheaper, timed against the rollout as is.

    python -m benchmarks.rollout_variants --names pendulum_swingup hopper [--batch 64] [--steps 32]

Each variant computes the same function; this times ``jit(value_and_grad)``
of the batch's summed return over ``--steps`` steps of ``vmap(env.step)``
(the program ``benchmarks.envs`` times), with respect to the actions:

* ``as_is``: ``lax.scan`` over ``env.step``;
* ``pruned``: after each step, every field of the carried ``mjx.Data`` other
  than MuJoCo's state and inputs (``qpos``, ``qvel``, ``act``, ``time``,
  ``qacc_warmstart``, ``ctrl``, ...) is put under ``stop_gradient``. The next
  step recomputes those fields from the state, and the step's reward and
  observation are read before the cut, so the gradient is the same; the
  reverse pass no longer carries their (zero) cotangents from step to step;
* ``unroll2`` / ``unroll4``: the same scan with ``unroll=2`` / ``4``
  (fewer loop iterations, each with more work).

The programs run alternately, call by call; the script prints each one's
median, its speed against ``as_is``, its compile time and the largest
gradient difference from ``as_is`` (relative to the largest entry).
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import envs
from benchmarks import common

# MuJoCo's state and inputs: what a step reads from the data it is given
STATE_FIELDS = {"qpos", "qvel", "act", "qacc_warmstart", "time", "ctrl",
                "qfrc_applied", "xfrc_applied", "mocap_pos", "mocap_quat",
                "eq_active", "userdata"}
VARIANTS = ("as_is", "pruned", "unroll2", "unroll4")


def _stop_derived(data):
  def leaf(path, x):
    name = getattr(path[-1], "name", None) or str(path[-1])
    return x if name in STATE_FIELDS else jax.lax.stop_gradient(x)
  return jax.tree_util.tree_map_with_path(leaf, data)


def summed_return(env, variant: str):
  """``R(actions [T, B, nu], state)``: the summed reward of a scanned
  ``vmap(env.step)``, built as ``variant`` says."""
  step = jax.vmap(env.step)
  unroll = {"unroll2": 2, "unroll4": 4}.get(variant, 1)

  def rollout_return(actions, state):
    def body(s, a):
      s = step(s, a)
      reward = s.reward
      if variant == "pruned":
        s = s.replace(pipeline_state=_stop_derived(s.pipeline_state))
      return s, reward

    _, rewards = jax.lax.scan(body, state, actions, unroll=unroll)
    return jnp.sum(rewards)

  return rollout_return


def bench(name: str, batch: int, steps: int, repeats: int,
          variants=VARIANTS) -> list[dict]:
  env = envs.make(name, differentiable=True)
  state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), batch))
  actions = jax.random.uniform(jax.random.PRNGKey(1), (steps, batch, env.action_size),
                               minval=-1.0, maxval=1.0)
  programs = {v: jax.jit(jax.value_and_grad(summed_return(env, v))) for v in variants}
  rows = {v: {"name": name, "variant": v} for v in variants}
  grads = {}
  for v, program in programs.items():
    t = time.perf_counter()
    _, grads[v] = jax.block_until_ready(program(actions, state))
    rows[v]["compile_s"] = time.perf_counter() - t
  times = {v: [] for v in variants}
  order = list(variants)
  for _ in range(repeats):
    for v in order:
      t = time.perf_counter()
      jax.block_until_ready(programs[v](actions, state))
      times[v].append(time.perf_counter() - t)
    order.reverse()
  base = np.asarray(grads[variants[0]])
  for v in variants:
    rows[v]["ms"] = 1e3 * statistics.median(times[v])
    rows[v]["speed"] = rows[variants[0]]["ms"] / rows[v]["ms"] if "ms" in rows[variants[0]] else 1.0
    rows[v]["grad_rel_diff"] = float(np.max(np.abs(np.asarray(grads[v]) - base))
                                     / np.max(np.abs(base)))
  return [rows[v] for v in variants]


def main() -> None:
  p = common.parser(__doc__)
  p.add_argument("--names", nargs="+", default=["pendulum_swingup", "hopper"])
  p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--steps", type=int, default=32)
  p.add_argument("--repeats", type=int, default=9)
  a = p.parse_args()
  if a.variants[0] != "as_is":
    a.variants = ["as_is", *[v for v in a.variants if v != "as_is"]]
  print(f"load before {common.load_average():.2f}", flush=True)
  print("| task | variant | value_and_grad ms | speed vs as_is | compile (s) | max grad diff (rel.) |")
  print("|---|---|---:|---:|---:|---:|")
  for name in a.names:
    for r in bench(name, a.batch, a.steps, a.repeats, tuple(a.variants)):
      print(f"| {name} | {r['variant']} | {r['ms']:.1f} | {r['speed']:.2f}x | "
            f"{r['compile_s']:.0f} | {r['grad_rel_diff']:.1e} |", flush=True)
  print(f"load after {common.load_average():.2f}")


if __name__ == "__main__":
  main()
