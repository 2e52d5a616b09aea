"""Where does the backward pass of one differentiable env step spend its time?

    python benchmarks/backward_profile.py [--names hopper] [--batch 64]

For a batch of ``B`` states of a task in differentiable mode (a random reset
followed by ``--warmup`` steps of random actions, so contacts are active on
the contact tasks), each stage of one physics step is timed on its own, as
MJX runs it (``mjx.step`` = ``forward`` + integrator, ``forward`` =
``fwd_position`` (kinematics, inertia, collision, constraint rows) ->
``fwd_velocity`` -> ``fwd_actuation`` -> ``fwd_acceleration`` -> solver):

* ``forward``: ``jit(vmap(stage))`` on the stage's input data;
* ``vjp``: ``jit(vmap(value_and_grad))`` of the sum of the stage's float
  outputs with respect to its float inputs (one reverse pass of the stage).

Rows for the whole physics step (``envs.physics.step``) and the whole env
step (``env.step``: ``n_frames`` physics steps plus observation, reward and
the non-finite guard) give the totals the stages add up to. Times are the
median of ``--repeats`` calls after compilation, in milliseconds per batch.
Sensors are left out (the tasks define none).
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
from mujoco import mjx  # noqa: E402

import envs  # noqa: E402
from envs import physics  # noqa: E402


def _integrate(m, d):
  if m.opt.integrator == mjx.IntegratorType.EULER:
    return mjx.euler(m, d)
  if m.opt.integrator == mjx.IntegratorType.IMPLICITFAST:
    return mjx.implicit(m, d)
  return mjx.rungekutta4(m, d)


def _solve(m, d):
  if d._impl.efc_J.size == 0:  # pylint: disable=protected-access
    return d.replace(qacc=d.qacc_smooth)  # what mjx.forward does
  return physics._solve(m, d)  # pylint: disable=protected-access


STAGES = [
    ("fwd_position (kinematics, inertia, collision, constraints)", mjx.fwd_position),
    ("fwd_velocity", mjx.fwd_velocity),
    ("fwd_actuation", mjx.fwd_actuation),
    ("fwd_acceleration", mjx.fwd_acceleration),
    ("constraint solver (fixed iterations, implicit derivative)", _solve),
    ("integrator", _integrate),
]


def _float_split(tree):
  leaves, treedef = jax.tree.flatten(tree)
  idx = [i for i, x in enumerate(leaves) if jnp.issubdtype(x.dtype, jnp.floating)]
  return leaves, treedef, idx


def _scalar(out):
  return sum(jnp.sum(x) for x in jax.tree.leaves(out)
             if jnp.issubdtype(x.dtype, jnp.floating))


def _vjp_program(fn, example):
  """jit(vmap(value_and_grad)) of ``_scalar(fn(x))`` w.r.t. x's float leaves."""
  leaves, treedef, idx = _float_split(example)

  def one(floats, others):
    full = list(others)
    for i, f in zip(idx, floats):
      full[i] = f
    return _scalar(fn(jax.tree.unflatten(treedef, full)))

  vg = jax.jit(jax.vmap(jax.value_and_grad(one)))

  def run(x):
    xl = jax.tree.leaves(x)
    return vg([xl[i] for i in idx], xl)

  return run


def _time(fn, arg, repeats):
  t = time.perf_counter()
  jax.block_until_ready(fn(arg))
  compile_s = time.perf_counter() - t
  runs = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(arg))
    runs.append(time.perf_counter() - t)
  return compile_s, 1e3 * statistics.median(runs)


def profile(name: str, batch: int, warmup: int, repeats: int) -> list[str]:
  env = envs.make(name, differentiable=True)
  m = env.sys
  keys = jax.random.split(jax.random.PRNGKey(0), batch)
  state = jax.jit(jax.vmap(env.reset))(keys)
  actions = jax.random.uniform(jax.random.PRNGKey(1), (warmup, batch, env.action_size),
                               minval=-1.0, maxval=1.0)
  step = jax.jit(jax.vmap(env.step))
  for a in actions:
    state = step(state, a)
  action = actions[-1]
  d = state.pipeline_state.replace(ctrl=action)
  ncon = int(jnp.sum(d._impl.contact.dist < 0)) if d._impl.contact.dist.size else 0  # pylint: disable=protected-access

  rows = []
  total_fwd = total_vjp = 0.0
  x = d
  for label, stage in STAGES:
    fn = lambda dd, stage=stage: stage(m, dd)
    fc, ft = _time(jax.jit(jax.vmap(fn)), x, repeats)
    vc, vt = _time(_vjp_program(fn, jax.tree.map(lambda v: v[0], x)), x, repeats)
    rows.append((label, ft, vt, fc, vc))
    total_fwd += ft
    total_vjp += vt
    x = jax.jit(jax.vmap(fn))(x)

  whole = lambda dd: physics.step(m, dd)
  fc, ft = _time(jax.jit(jax.vmap(whole)), d, repeats)
  vc, vt = _time(_vjp_program(whole, jax.tree.map(lambda v: v[0], d)), d, repeats)

  env_fn = lambda s: env.step(s, jnp.zeros(env.action_size))
  ec, et = _time(jax.jit(jax.vmap(env_fn)), state, repeats)
  evc, evt = _time(_vjp_program(env_fn, jax.tree.map(lambda v: v[0], state)), state, repeats)

  lines = [f"### {name}: B={batch}, {ncon} penetrating contacts in the batch "
           f"after {warmup} steps, n_frames={env.config.n_frames}, "
           f"iterations {m.opt.iterations} / ls {m.opt.ls_iterations}",
           "",
           "| stage | forward ms | vjp ms | vjp / forward | share of the stages' vjp | compile fwd / vjp s |",
           "|---|---:|---:|---:|---:|---:|"]
  for label, ft_, vt_, fc_, vc_ in rows:
    lines.append(f"| {label} | {ft_:.2f} | {vt_:.2f} | {vt_ / ft_:.1f}× | "
                 f"{100 * vt_ / total_vjp:.0f} % | {fc_:.1f} / {vc_:.1f} |")
  lines.append(f"| sum of the stages | {total_fwd:.2f} | {total_vjp:.2f} | "
               f"{total_vjp / total_fwd:.1f}× | 100 % | |")
  lines.append(f"| one physics step (`envs.physics.step`) | {ft:.2f} | {vt:.2f} | "
               f"{vt / ft:.1f}× | | {fc:.1f} / {vc:.1f} |")
  lines.append(f"| one env step (`env.step`, {env.config.n_frames} physics steps + "
               f"reward, obs, guard) | {et:.2f} | {evt:.2f} | {evt / et:.1f}× | | "
               f"{ec:.1f} / {evc:.1f} |")
  return lines


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--names", nargs="*", default=["hopper"])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--warmup", type=int, default=20)
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args()
  print(f"jax {jax.__version__}, load average before {os.getloadavg()[0]:.2f}\n")
  for name in args.names:
    print("\n".join(profile(name, args.batch, args.warmup, args.repeats)), flush=True)
    print()
  print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  main()
