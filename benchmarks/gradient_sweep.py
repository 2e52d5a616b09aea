"""NaN sweep: float32 gradients of the physics state through differentiable mode.

    python benchmarks/gradient_sweep.py [--tasks hopper ant] [--horizon 32]
                                        [--states 16] [--out table.md]

For every task (default: ``envs.names()``), in float32 (training precision),
the gradient with respect to the ``[horizon, nu]`` actions of
``w . [qpos_T, qvel_T]`` (two fixed random ``w``; a NaN anywhere in the
Jacobian of the final state reaches such a projection) is computed by reverse
mode from these start states:

* ``random reset``: ``--states`` random ``env.reset`` states, uniform random
  actions in [-1, 1];
* ``resting (settled)``: the initial pose settled for 300 steps of C MuJoCo at
  zero control (converged solver), small random actions;
* ``leaving ground``: the resting state with an upward root velocity of
  1.5 m/s, so every contact breaks during the rollout (tasks with a floor);
* ``joint at limit``: a reset state with every limited joint put just past
  (and, in a second copy, exactly at) its range bound, random actions;
* ``zero velocity``: ``qpos0`` and the resting pose with ``qvel = 0`` and zero
  actions (norms and friction at zero velocity).

All start states of a task go through one compiled, vmapped gradient. The
table counts start states whose gradient has a NaN/inf, and whose final
state is non-finite.

MuJoCo Playground's DM Control suite envs (under ``envs.physics.patch_mjx()``)
are not swept yet: ``playground`` is an optional package, not installed on the
machine this was written on; the script says so when it is importable.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# `python benchmarks/gradient_sweep.py` puts benchmarks/ first on sys.path,
# where benchmarks/envs.py would shadow the `envs` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402
from envs import physics  # noqa: E402

N_PROJECTIONS = 2


def _resting(env: envs.MjxEnv, steps: int = 300) -> tuple[np.ndarray, np.ndarray]:
  m = physics.differentiable_model(env.mj_model, 100, 50)
  m.opt.tolerance = 1e-12
  d = mujoco.MjData(m)
  for _ in range(steps):
    mujoco.mj_step(m, d)
  return d.qpos.copy(), d.qvel.copy()


def _has_floor(env: envs.MjxEnv) -> bool:
  m = env.mj_model
  root_types = (int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_SLIDE))
  return (bool((m.geom_type == int(mujoco.mjtGeom.mjGEOM_PLANE)).any())
          and m.njnt > 0 and int(m.jnt_type[0]) in root_types)


def _root_up_index(env: envs.MjxEnv) -> int:
  """qvel index of the root's vertical velocity (free joint: 2; planar: 1)."""
  return 2 if int(env.mj_model.jnt_type[0]) == int(mujoco.mjtJoint.mjJNT_FREE) else 1


def _at_limits(env: envs.MjxEnv, qpos: np.ndarray, past: float) -> np.ndarray:
  m = env.mj_model
  qpos = qpos.copy()
  side = 0
  scalar = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
  for j in range(m.njnt):
    if not m.jnt_limited[j] or int(m.jnt_type[j]) not in scalar:
      continue
    lo, hi = m.jnt_range[j]
    qpos[m.jnt_qposadr[j]] = lo - past if side == 0 else hi + past
    side ^= 1
  return qpos


def start_cases(env: envs.MjxEnv, n_states: int, horizon: int, key: jax.Array):
  """[(label, qpos [n, nq], qvel [n, nv], actions [n, T, nu])]."""
  nu, nv = env.action_size, env.mj_model.nv
  rng = np.random.default_rng(0)
  keys = jax.random.split(key, n_states)
  reset = jax.jit(jax.vmap(env.reset))(keys).pipeline_state
  rq, rv = np.asarray(reset.qpos), np.asarray(reset.qvel)
  rest_q, rest_v = _resting(env)
  small = lambda n: rng.uniform(-0.1, 0.1, (n, horizon, nu))
  cases = [("random reset", rq, rv, rng.uniform(-1, 1, (n_states, horizon, nu))),
           ("resting (settled)", np.tile(rest_q, (4, 1)), np.tile(rest_v, (4, 1)),
            np.concatenate([np.zeros((1, horizon, nu)), small(3)]))]
  if _has_floor(env):
    up = rest_v.copy()
    up[_root_up_index(env)] += 1.5
    cases.append(("leaving ground", np.tile(rest_q, (4, 1)), np.tile(up, (4, 1)),
                  np.concatenate([np.zeros((1, horizon, nu)), small(3)])))
  if env.mj_model.jnt_limited.any():
    lim = np.stack([_at_limits(env, rq[i % n_states], 0.02 if i < 2 else 0.0)
                    for i in range(4)])
    cases.append(("joint at limit", lim, rv[:4] if n_states >= 4 else np.zeros((4, nv)),
                  rng.uniform(-1, 1, (4, horizon, nu))))
  q0 = np.asarray(env.mj_model.qpos0)
  cases.append(("zero velocity", np.stack([q0, rest_q]), np.zeros((2, nv)),
                np.zeros((2, horizon, nu))))
  return cases


def sweep_task(name: str, n_states: int, horizon: int) -> list[dict]:
  env = envs.make(name, differentiable=True)
  key = jax.random.PRNGKey(0)
  cases = start_cases(env, n_states, horizon, key)
  qpos = jnp.asarray(np.concatenate([c[1] for c in cases]), jnp.float32)
  qvel = jnp.asarray(np.concatenate([c[2] for c in cases]), jnp.float32)
  actions = jnp.asarray(np.concatenate([c[3] for c in cases]), jnp.float32)
  n = qpos.shape[0]
  w = jax.random.normal(jax.random.PRNGKey(1), (N_PROJECTIONS, env.mj_model.nq + env.mj_model.nv))

  def start(k, q, v):
    state = env.reset(k)
    data = physics.forward(env.sys, state.pipeline_state.replace(qpos=q, qvel=v))
    return state.replace(pipeline_state=data)

  reset_keys = jax.random.split(key, n)
  states = jax.jit(jax.vmap(start))(reset_keys, qpos, qvel)

  def final(state, a):
    s = jax.lax.scan(lambda s, u: (env.step(s, u), None), state, a)[0]
    return jnp.concatenate([s.pipeline_state.qpos, s.pipeline_state.qvel])

  def grads(state, a):
    x, vjp = jax.vjp(lambda a: final(state, a), a)
    return x, jax.vmap(vjp)(w)[0]

  t = time.perf_counter()
  x, g = jax.jit(jax.vmap(grads))(states, actions)
  x, g = np.asarray(x), np.asarray(g)
  print(f"# {name}: {time.perf_counter() - t:.0f} s (incl. compile)", file=sys.stderr,
        flush=True)
  rows, i = [], 0
  for label, cq, _, _ in cases:
    k = cq.shape[0]
    gi, xi = g[i:i + k], x[i:i + k]
    bad_g = ~np.isfinite(gi.reshape(k, -1)).all(axis=1)
    bad_x = ~np.isfinite(xi).all(axis=1)
    finite = gi[np.isfinite(gi)]
    rows.append({"task": name, "case": label, "n": k, "nan_grad": int(bad_g.sum()),
                 "nan_state": int(bad_x.sum()),
                 "max_abs": float(np.abs(finite).max()) if finite.size else float("nan")})
    i += k
  return rows


def table(rows: list[dict], horizon: int) -> str:
  lines = [
      f"NaN sweep, float32, reverse-mode gradient of {N_PROJECTIONS} random "
      f"projections of [qpos, qvel] after {horizon} steps w.r.t. the actions.",
      "",
      "| task | start states | n | non-finite gradients | non-finite final states | max abs gradient |",
      "|---|---|---:|---:|---:|---:|",
  ]
  for r in rows:
    lines.append(f"| {r['task']} | {r['case']} | {r['n']} | {r['nan_grad']} | "
                 f"{r['nan_state']} | {r['max_abs']:.3g} |")
  total = sum(r["nan_grad"] for r in rows)
  lines += ["", f"Total start states with a non-finite gradient: {total} of "
            f"{sum(r['n'] for r in rows)}."]
  return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tasks", nargs="*", default=None)
  parser.add_argument("--horizon", type=int, default=32)
  parser.add_argument("--states", type=int, default=16)
  parser.add_argument("--out", default=None)
  args = parser.parse_args(argv)
  names = args.tasks or envs.names()
  for n in names:
    envs.env_class(n)
  try:
    import playground  # noqa: F401
    print("# playground is installed, but sweeping its envs is not implemented "
          "here yet", file=sys.stderr)
  except ImportError:
    print("# playground not installed: sweeping project tasks only", file=sys.stderr)
  rows = []
  for name in names:
    rows += sweep_task(name, args.states, args.horizon)
    if args.out:
      with open(args.out, "w") as fh:
        fh.write(table(rows, args.horizon))
  print(table(rows, args.horizon))


if __name__ == "__main__":
  main(sys.argv[1:])
