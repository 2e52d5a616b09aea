"""Does packing the rollout's scan carry speed up reverse mode on XLA:CPU?

    python benchmarks/carry_packing.py [--names hopper] [--batch 64] [--steps 32]

JAX issue #40150: reverse mode through a ``lax.scan`` whose carry has many
small leaves runs much slower on XLA:CPU's thunk runtime. A Brax ``State``
holding an ``mjx.Data`` has dozens of leaves. This script times the same
differentiable rollout (``vmap(env.step)`` scanned over ``steps`` steps of
given actions, summed reward) two ways, each jitted, forward and
``value_and_grad`` with respect to the actions:

* ``plain``: the scan carries the batched ``State`` as is;
* ``packed``: the scan carries one ``[B, n]`` array per dtype; the body
  unpacks it, steps, and packs again (slices and a concatenate, which AD
  handles like any other op);
* ``+ checkpoint``: the scan body under ``jax.checkpoint``, so reverse mode
  saves only each step's carry and recomputes the step's internals.

It checks that both give the same values and gradients, then prints env
steps/s (median of ``--repeats`` runs after compile) and compile seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402


def pack(tree):
  """``(arrays, spec)``: the batched leaves of ``tree`` as one ``[B, n]``
  array per dtype, and what :func:`unpack` needs to undo it."""
  leaves, treedef = jax.tree.flatten(tree)
  groups: dict = {}
  layout = []
  for leaf in leaves:
    key = jnp.dtype(leaf.dtype).name
    flat = leaf.reshape(leaf.shape[0], -1)
    start = sum(a.shape[1] for a in groups.get(key, []))
    groups.setdefault(key, []).append(flat)
    layout.append((key, start, flat.shape[1], leaf.shape[1:]))
  arrays = {k: jnp.concatenate(v, axis=1) for k, v in groups.items()}
  return arrays, (treedef, tuple(layout))


def unpack(arrays, spec):
  treedef, layout = spec
  leaves = [arrays[k][:, s:s + n].reshape((arrays[k].shape[0],) + shape)
            for k, s, n, shape in layout]
  return jax.tree.unflatten(treedef, leaves)


def make_programs(env, state0):
  """``{variant: (jit(forward), jit(value_and_grad))}`` of the summed reward."""
  step = jax.vmap(env.step)
  _, spec = pack(state0)

  def plain_body(s, a):
    s = step(s, a)
    return s, s.reward

  def packed_body(p, a):
    s = step(unpack(p, spec), a)
    return pack(s)[0], s.reward

  def program(body, packed):
    def fn(actions, state):
      carry = pack(state)[0] if packed else state
      _, rewards = jax.lax.scan(body, carry, actions)
      return jnp.sum(rewards)
    return fn

  variants = {
      "plain": program(plain_body, False),
      "packed": program(packed_body, True),
      # jax.checkpoint: the backward pass recomputes each step from its carry
      # instead of reading residuals stacked by the forward scan
      "plain + checkpoint": program(jax.checkpoint(plain_body), False),
      "packed + checkpoint": program(jax.checkpoint(packed_body), True),
  }
  return {name: (jax.jit(fn), jax.jit(jax.value_and_grad(fn)))
          for name, fn in variants.items()}


def _time(fn, *args, repeats):
  t = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t
  runs = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    runs.append(time.perf_counter() - t)
  return out, first, statistics.median(runs)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--names", nargs="*", default=["hopper"])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=32)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  print(f"jax {jax.__version__}, B={args.batch}, T={args.steps}, "
        f"load average {os.getloadavg()[0]:.2f}")
  print("| task | carry | leaves | forward steps/s | value_and_grad steps/s | "
        "grad/fwd | fwd compile s | grad compile s |")
  print("|---|---|---:|---:|---:|---:|---:|---:|")
  for name in args.names:
    env = envs.make(name, differentiable=True)
    keys = jax.random.split(jax.random.PRNGKey(0), args.batch)
    state0 = jax.block_until_ready(jax.jit(jax.vmap(env.reset))(keys))
    actions = jax.random.uniform(jax.random.PRNGKey(1),
                                 (args.steps, args.batch, env.action_size),
                                 minval=-1.0, maxval=1.0)
    n_leaves = len(jax.tree.leaves(state0))
    results = {}
    for carry, (fwd, vg) in make_programs(env, state0).items():
      _, fc, ft = _time(fwd, actions, state0, repeats=args.repeats)
      out, gc, gt = _time(vg, actions, state0, repeats=args.repeats)
      results[carry] = out
      n = len(pack(state0)[0]) if carry.startswith("packed") else n_leaves
      sps = args.batch * args.steps
      print(f"| {name} | {carry} | {n} | {sps / ft:,.0f} | {sps / gt:,.0f} | "
            f"{gt / ft:.2f} | {fc:.1f} | {gc:.1f} |", flush=True)
    v0, g0 = results["plain"]
    for carry, (v1, g1) in results.items():
      gdiff = float(jnp.max(jnp.abs(g1 - g0)) / jnp.max(jnp.abs(g0)))
      print(f"  {name}, {carry}: value equal to plain: {bool(v0 == v1)}, "
            f"max |grad diff| / max |grad| = {gdiff:.1e} (float32)")
      assert gdiff < 1e-4, gdiff
  print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  main()
