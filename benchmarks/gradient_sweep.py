"""NaN sweep: float32 gradients of the physics state through differentiable mode.

    python -m benchmarks.gradient_sweep [--tasks hopper ant] [--horizon 32]
                                        [--states 16] [--out table.md]
    python -m benchmarks.gradient_sweep --playground [CheetahRun WalkerWalk ...]
    python -m benchmarks.gradient_sweep --no-playground

What is swept:

* every project task (default: ``envs.names()``), differentiable mode at its
  default settings;
* when MuJoCo Playground is importable (``pip install -e '.[playground]'``),
  every env of its DM Control suite (``dm_control_suite.ALL_ENVS``), built
  and traced inside ``envs.physics.patch_mjx()`` with MJX's JAX
  implementation (``impl='jax'``; Playground's default ``warp`` needs a GPU)
  and ``opt.tolerance = 0`` (its own ``iterations``/``ls_iterations``), and
  rolled out with the env's own ``step`` (``n_substeps`` physics steps, its
  reward and observation code included). ``--playground NAME ...`` sweeps
  only those envs, ``--no-playground`` none.

For every env, in float32 (training precision), the gradient with respect to
the ``[horizon, nu]`` actions of ``w . [qpos_T, qvel_T]`` (two fixed random
``w``; a NaN anywhere in the Jacobian of the final state reaches such a
projection) and of the summed reward is computed by reverse mode from these
start states:

* ``random reset``: ``--states`` random ``env.reset`` states, uniform random
  actions in [-1, 1];
* ``resting (settled)``: the initial pose ``qpos0`` settled for 300 steps of
  C MuJoCo at zero control (converged solver), zero and small random actions;
* ``leaving ground``: the resting state with an upward root velocity of
  1.5 m/s, so every contact breaks during the rollout (envs with a floor
  plane and a free or vertical slide root joint);
* ``joint at limit``: a reset state with every limited hinge/slide joint put
  just past (and, in a second copy, exactly at) its range bound, random
  actions;
* ``zero velocity``: ``qpos0`` and the resting pose with ``qvel = 0`` and zero
  actions (norms and friction at zero velocity).

All start states of an env go through one compiled, vmapped gradient. The
table counts start states whose state gradient, reward gradient, or final
state has a NaN/inf. Start states whose final state is already non-finite
(the forward simulation blew up) are counted apart: no gradient can be
finite there.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

import envs
from benchmarks import common
from envs import physics

N_PROJECTIONS = 2


@dataclasses.dataclass(frozen=True)
class Target:
  """What the sweep needs from an env, project task or Playground.

  ``reset(key) -> state``, ``step(state, action) -> state``, ``data(state)
  -> mjx.Data``, ``with_data(state, data) -> state``, ``reward(state) ->
  scalar``; ``model`` is the ``mjx.Model`` stepped and ``mj_model`` its host
  model (for C MuJoCo settling and joint metadata). ``physics_step(data,
  action) -> data``, where given, is the env's physics alone (no reward or
  observation code), used to locate a NaN.
  """

  name: str
  mj_model: mujoco.MjModel
  model: Any
  nu: int
  reset: Callable
  step: Callable
  data: Callable
  with_data: Callable
  reward: Callable
  physics_step: Callable | None = None


def project_target(name: str) -> Target:
  env = envs.make(name, differentiable=True)
  return Target(
      name=name, mj_model=env.mj_model, model=env.sys, nu=env.action_size,
      reset=env.reset, step=env.step, data=lambda s: s.pipeline_state,
      with_data=lambda s, d: s.replace(pipeline_state=d), reward=lambda s: s.reward)


def playground_target(name: str) -> Target:
  """A Playground DM Control suite env at tolerance 0, ``impl='jax'``.

  Must be called, and everything it returns traced, inside
  ``physics.patch_mjx()``.
  """
  from mujoco_playground import dm_control_suite
  from mujoco_playground._src import mjx_env
  env = dm_control_suite.load(name, config_overrides={"impl": "jax"})
  model = env._mjx_model  # built by the patched mjx.put_model: static tolerance
  env._mjx_model = model.replace(opt=model.opt.replace(tolerance=0.0))
  assert physics.is_differentiable(env.mjx_model), name
  return Target(
      name=f"playground {name}", mj_model=env.mj_model, model=env.mjx_model,
      nu=env.action_size, reset=env.reset, step=env.step,
      data=lambda s: s.data, with_data=lambda s, d: s.replace(data=d),
      reward=lambda s: s.reward,
      physics_step=lambda d, a: mjx_env.step(env.mjx_model, d, a, env.n_substeps))


def playground_names() -> list[str] | None:
  """Playground's DM Control suite env names, or None if it is not installed."""
  try:
    from mujoco_playground import dm_control_suite
  except ImportError:
    return None
  return list(dm_control_suite.ALL_ENVS)


# --------------------------------------------------------------------------
# Start states
# --------------------------------------------------------------------------


def _resting(mj_model: mujoco.MjModel, steps: int = 300) -> tuple[np.ndarray, np.ndarray]:
  m = physics.differentiable_model(mj_model, 100, 50)
  m.opt.tolerance = 1e-12
  d = mujoco.MjData(m)
  for _ in range(steps):
    mujoco.mj_step(m, d)
  return d.qpos.copy(), d.qvel.copy()


def _up_dof(m: mujoco.MjModel) -> int | None:
  """qvel index of the root's vertical velocity, if the model stands on a floor.

  A floor is a plane geom; the root is the first joint. A free root moves up
  along dof +2; a planar root has a slide joint along z among the joints of
  its body.
  """
  if m.njnt == 0 or not (m.geom_type == int(mujoco.mjtGeom.mjGEOM_PLANE)).any():
    return None
  root_body = m.jnt_bodyid[0]
  for j in range(m.njnt):
    if m.jnt_bodyid[j] != root_body:
      continue
    if int(m.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_FREE):
      return int(m.jnt_dofadr[j]) + 2
    if (int(m.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_SLIDE)
        and abs(abs(m.jnt_axis[j][2]) - 1) < 1e-6):
      return int(m.jnt_dofadr[j])
  return None


def _at_limits(m: mujoco.MjModel, qpos: np.ndarray, past: float) -> np.ndarray:
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


def start_cases(target: Target, n_states: int, horizon: int, key: jax.Array):
  """[(label, qpos [n, nq], qvel [n, nv], actions [n, T, nu])]."""
  m = target.mj_model
  nu, nv = target.nu, m.nv
  rng = np.random.default_rng(0)
  keys = jax.random.split(key, n_states)
  reset = jax.jit(jax.vmap(lambda k: target.data(target.reset(k))))(keys)
  rq, rv = np.asarray(reset.qpos), np.asarray(reset.qvel)
  rest_q, rest_v = _resting(m)
  small = lambda n: rng.uniform(-0.1, 0.1, (n, horizon, nu))
  cases = [("random reset", rq, rv, rng.uniform(-1, 1, (n_states, horizon, nu))),
           ("resting (settled)", np.tile(rest_q, (4, 1)), np.tile(rest_v, (4, 1)),
            np.concatenate([np.zeros((1, horizon, nu)), small(3)]))]
  up = _up_dof(m)
  if up is not None:
    rest_up = rest_v.copy()
    rest_up[up] += 1.5
    cases.append(("leaving ground", np.tile(rest_q, (4, 1)), np.tile(rest_up, (4, 1)),
                  np.concatenate([np.zeros((1, horizon, nu)), small(3)])))
  if m.jnt_limited.any():
    lim = np.stack([_at_limits(m, rq[i % n_states], 0.02 if i < 2 else 0.0)
                    for i in range(4)])
    cases.append(("joint at limit", lim, rv[:4] if n_states >= 4 else np.zeros((4, nv)),
                  rng.uniform(-1, 1, (4, horizon, nu))))
  q0 = np.asarray(m.qpos0)
  cases.append(("zero velocity", np.stack([q0, rest_q]), np.zeros((2, nv)),
                np.zeros((2, horizon, nu))))
  return cases


# --------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------


def sweep(target: Target, n_states: int, horizon: int) -> list[dict]:
  """Rows of NaN counts per start-state case (see the module docstring)."""
  key = jax.random.PRNGKey(0)
  cases = start_cases(target, n_states, horizon, key)
  qpos = jnp.asarray(np.concatenate([c[1] for c in cases]), jnp.float32)
  qvel = jnp.asarray(np.concatenate([c[2] for c in cases]), jnp.float32)
  actions = jnp.asarray(np.concatenate([c[3] for c in cases]), jnp.float32)
  n = qpos.shape[0]
  m = target.mj_model
  w = jax.random.normal(jax.random.PRNGKey(1), (N_PROJECTIONS, m.nq + m.nv))

  def start(k, q, v):
    state = target.reset(k)
    data = target.data(state).replace(qpos=q, qvel=v)
    return target.with_data(state, physics.forward(target.model, data))

  reset_keys = jax.random.split(key, n)
  states = jax.jit(jax.vmap(start))(reset_keys, qpos, qvel)

  def rollout(state, a):
    def body(s, u):
      s = target.step(s, u)
      return s, target.reward(s)
    s, rewards = jax.lax.scan(body, state, a)
    d = target.data(s)
    return jnp.concatenate([d.qpos, d.qvel]), jnp.sum(rewards)

  def grads(state, a):
    (x, ret), vjp = jax.vjp(lambda a: rollout(state, a), a)
    cot_x = jnp.concatenate([w, jnp.zeros_like(w[:1])])
    cot_r = jnp.concatenate([jnp.zeros(N_PROJECTIONS), jnp.ones(1)])
    g = jax.vmap(lambda cx, cr: vjp((cx, cr))[0])(cot_x, cot_r.astype(ret.dtype))
    return x, g[:N_PROJECTIONS], g[N_PROJECTIONS]

  t = time.perf_counter()
  x, g, g_ret = map(np.asarray, jax.jit(jax.vmap(grads))(states, actions))
  print(f"# {target.name}: {time.perf_counter() - t:.0f} s (incl. compile)",
        file=sys.stderr, flush=True)
  g_phys = None
  if target.physics_step is not None and not (np.isfinite(g).all()
                                              and np.isfinite(g_ret).all()):
    # locate the NaN: the same rollout through the physics alone
    def phys_final(state, a):
      d = jax.lax.scan(lambda d, u: (target.physics_step(d, u), None),
                       target.data(state), a)[0]
      return jnp.concatenate([d.qpos, d.qvel])

    def phys_grads(state, a):
      _, vjp = jax.vjp(lambda a: phys_final(state, a), a)
      return jax.vmap(vjp)(w)[0]

    g_phys = np.asarray(jax.jit(jax.vmap(phys_grads))(states, actions))
  rows, i = [], 0
  for label, cq, _, _ in cases:
    k = cq.shape[0]
    gi, ri, xi = g[i:i + k].reshape(k, -1), g_ret[i:i + k].reshape(k, -1), x[i:i + k]
    bad_x = ~np.isfinite(xi).all(axis=1)
    finite = gi[np.isfinite(gi)]
    phys = ("-" if g_phys is None else
            int((~np.isfinite(g_phys[i:i + k].reshape(k, -1)).all(axis=1) & ~bad_x).sum()))
    rows.append({"task": target.name, "case": label, "n": k, "nan_physics": phys,
                 "nan_grad": int((~np.isfinite(gi).all(axis=1) & ~bad_x).sum()),
                 "nan_reward_grad": int((~np.isfinite(ri).all(axis=1) & ~bad_x).sum()),
                 "nan_state": int(bad_x.sum()),
                 "max_abs": float(np.abs(finite).max()) if finite.size else float("nan")})
    i += k
  return rows


def table(rows: list[dict], horizon: int) -> str:
  lines = [
      f"NaN sweep, float32, reverse-mode gradients w.r.t. the actions of "
      f"{N_PROJECTIONS} random projections of [qpos, qvel] after {horizon} env "
      f"steps (state) and of the summed reward (reward).",
      "",
      "| env | start states | n | non-finite state gradients | non-finite reward "
      "gradients | non-finite state gradients, physics alone | non-finite final "
      "states | max abs state gradient |",
      "|---|---|---:|---:|---:|---:|---:|---:|",
  ]
  for r in rows:
    lines.append(f"| {r['task']} | {r['case']} | {r['n']} | {r['nan_grad']} | "
                 f"{r['nan_reward_grad']} | {r['nan_physics']} | {r['nan_state']} | "
                 f"{r['max_abs']:.3g} |")
  total = sum(r["n"] for r in rows)
  lines += ["", f"Start states with a non-finite state gradient: "
            f"{sum(r['nan_grad'] for r in rows)} of {total}; with a non-finite "
            f"reward gradient: {sum(r['nan_reward_grad'] for r in rows)}; with a "
            f"non-finite final state: {sum(r['nan_state'] for r in rows)}."]
  return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
  parser = common.parser(__doc__)
  parser.add_argument("--tasks", nargs="*", default=None,
                      help="project tasks (default: all; pass none to skip them)")
  parser.add_argument("--playground", nargs="*", default=None,
                      help="Playground DM Control suite envs (default: all, "
                           "when installed)")
  parser.add_argument("--no-playground", action="store_true")
  parser.add_argument("--horizon", type=int, default=32)
  parser.add_argument("--states", type=int, default=16)
  common.add_out(parser)
  args = parser.parse_args(argv)
  names = envs.names() if args.tasks is None else args.tasks
  common.check_tasks(names)
  pg_all = playground_names()
  pg = [] if args.no_playground else (args.playground or pg_all or [])
  if pg and pg_all is None:
    parser.error("--playground needs MuJoCo Playground: pip install -e '.[playground]'")
  unknown = sorted(set(pg) - set(pg_all or []))
  if unknown:
    parser.error(f"unknown Playground env(s) {unknown}; valid: {pg_all}")
  if pg_all is None:
    print("# playground not installed: sweeping project tasks only", file=sys.stderr)

  rows = []

  def add(new):
    rows.extend(new)
    common.write_text(args.out, table(rows, args.horizon))

  for name in names:
    add(sweep(project_target(name), args.states, args.horizon))
  for name in pg:
    with physics.patch_mjx():
      add(sweep(playground_target(name), args.states, args.horizon))
  print(table(rows, args.horizon))


if __name__ == "__main__":
  main(sys.argv[1:])
