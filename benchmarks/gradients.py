"""Gradient fidelity of differentiable mode: AD against finite differences.

    python -m benchmarks.gradients --throughput --tasks ant --settings 3/2 6/3
    python -m benchmarks.gradients --quality [--tasks hopper half_cheetah ant]
        [--horizons 8 16 32 64] [--states 16] [--directions 12]
        [--contact-distances 0 0.02] [--out table.md]
    python -m benchmarks.gradients --fidelity [--tasks half_cheetah ant]
        [--iterations 8 --ls-iterations 4 | --settings 4/2 6/3 8/4] [--horizon 32] [--directions 12]
        [--reset-seeds 2] [--ad grad|jvp] [--out table.md]

For every task (default: ``envs.names()``; third-party names, ``brax/<name>``
and ``playground/<Name>``, work too: their differentiable mode has the same
``config.diff_iterations`` / ``diff_ls_iterations`` fields and
``--settings`` overrides them), in float64:

* start states: ``resting`` (the task's initial pose settled for
  ``--settle-steps`` steps of C MuJoCo at zero control with a converged
  solver, so bodies rest on the floor; default 300, humanoid 600), and ``reset+20 (seed k)`` (a random
  ``env.reset`` followed by 20 env steps of small random actions, simulated
  in C MuJoCo with the differentiable env's own solver settings);
* a ``--horizon``-step rollout of the differentiable env (``env.step``, its own
  solver settings or the ``--iterations/--ls-iterations`` override) with small
  random actions ``a`` (uniform in +-0.2, away from the action clip);
* ``f(a) = w . [qpos_T, qvel_T]`` for a fixed random ``w``;
* the AD gradient ``g = grad f(a)`` (reverse mode, what training uses; or
  ``--ad jvp``, forward mode, which uses the same derivative rule and needs
  one compiled program for AD and FD together instead of two) is compared along ``--directions`` random unit directions
  ``v`` with central finite differences of the *same* forward,
  ``(f(a + eps v) - f(a - eps v)) / (2 eps)``. A direction whose two one-sided
  differences disagree by more than ``JUMP_TOL`` crosses a jump or kink of the
  forward map within +-eps (a soft constraint switching on with nonzero
  approach velocity starts with a nonzero damping force); no derivative can
  match FD there, so it is left out and counted. Where more than a quarter of
  the directions are non-smooth, the check is repeated at ``eps / 100``.

Reported per (task, state): the number of contacts at the start state (C
MuJoCo ``ncon``), the relative error ``|d_ad - d_fd| / |d_fd|`` and the cosine
between the two vectors of directional derivatives. The criterion of issue 10
is cosine >= 0.999 and relative error <= 1e-3.

``--quality`` measures gradient quality (issue 15), float64, with
contacts from distance off and on (``--contact-distances``, the env's
``diff_contact_distance``): from ``--states`` random ``env.reset`` states,
one rollout of ``max(--horizons)`` steps of random actions (uniform in
+-0.5); for each horizon ``H`` the return ``R_H`` (sum of the first ``H``
rewards) and its reverse-mode gradient w.r.t. the actions. Reported per
(task, distance, horizon) over the states: the NaN rate; the median
gradient norm and its growth relative to the shortest horizon; and the
cosine and relative error of the AD directional derivatives along
``--directions`` random unit directions against central differences of the
same forward (which the option does not change), at eps 1e-6 (the local
derivative) and at eps 1e-2. A central difference with step ``h`` is exactly
the directional derivative of the return smoothed with a uniform kernel of
half-width ``h`` along that direction, so eps 1e-2 compares with a smoothed
return, not a sample estimate. No direction is left out here.

``--throughput`` times what a setting costs: float32 forward and
``value_and_grad`` env steps/s of a ``--steps``-step rollout of ``--batch``
envs (as ``benchmarks.envs`` does, with the settings overridden).

The implicit-function derivative that differentiable mode attaches to the
constraint solve is the derivative of the *converged* solve; when the fixed
iteration budget stops short of convergence, it no longer describes the
simulation being run, and this benchmark shows it.
"""

from __future__ import annotations

import os
import sys
import time

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

import envs
from benchmarks import common
from benchmarks.envs import bench
from envs import physics

COSINE_MIN = 0.999
REL_ERR_MAX = 1e-3
# one-sided FD slopes further apart than this (relative) mark a jump
JUMP_TOL = 0.1
# at most this fraction of the directions may be left out as jumps
MAX_JUMP_FRACTION = 0.25
_VERBOSE = False  # --verbose: per-direction numbers on stderr


# --------------------------------------------------------------------------
# Start states
# --------------------------------------------------------------------------


def settled_qpos_qvel(env: envs.MjxEnv, steps: int) -> tuple[np.ndarray, np.ndarray, int]:
  """The task's initial pose (``qpos0``) settled at zero control in C MuJoCo.

  The solver is run to convergence (tolerance 1e-12, 100 iterations), so the
  result is the physical resting state, independent of the env's budget.

  Returns:
    ``(qpos, qvel, ncon)`` after ``steps`` steps of ``env.mj_model``'s
    timestep.
  """
  m = _converged_model(env)
  d = mujoco.MjData(m)
  mujoco.mj_resetData(m, d)
  for _ in range(steps):
    mujoco.mj_step(m, d)
  mujoco.mj_forward(m, d)
  return d.qpos.copy(), d.qvel.copy(), int(d.ncon)


def _converged_model(env: envs.MjxEnv) -> mujoco.MjModel:
  m = physics.differentiable_model(env.mj_model, 100, 50)
  m.opt.tolerance = 1e-12
  return m


def count_contacts(env: envs.MjxEnv, data) -> int:
  """C MuJoCo's ``ncon`` at an ``mjx.Data``'s ``qpos`` (and mocap)."""
  m = _converged_model(env)
  d = mujoco.MjData(m)
  d.qpos[:] = np.asarray(data.qpos)
  d.qvel[:] = np.asarray(data.qvel)
  if m.nmocap:
    d.mocap_pos[:] = np.asarray(data.mocap_pos)
    d.mocap_quat[:] = np.asarray(data.mocap_quat)
  mujoco.mj_forward(m, d)
  return int(d.ncon)


# --------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------


# Steps until the zero-control pose is at rest: the humanoid's upper body
# lands on the floor at step 304 (its collision model since 6758fb8), so 300
# steps would be a falling, not a resting, state.
SETTLE_STEPS = {"humanoid": 600}


class Checker:
  """Compiled rollout, AD and FD functions for one env (one solver setting)."""

  def __init__(self, env: envs.MjxEnv, horizon: int, ad: str, key: jax.Array,
               verbose: bool = False):
    self.env = env
    self.verbose = verbose
    self.horizon = horizon
    nq, nv = env.mj_model.nq, env.mj_model.nv
    self.w = jax.random.normal(key, (nq + nv,), dtype=jnp.float64)
    self.template = jax.jit(env.reset)(jax.random.PRNGKey(0))

    def f(data, actions):
      """``w . [qpos_T, qvel_T]`` after ``len(actions)`` env steps from ``data``."""
      state = self.template.replace(pipeline_state=data)

      def body(s, a):
        return env.step(s, a), None

      state, _ = jax.lax.scan(body, state, actions)
      final = state.pipeline_state
      return jnp.dot(self.w, jnp.concatenate([final.qpos, final.qvel]))

    def grad_directional(data, actions, directions):
      g = jax.grad(f, argnums=1)(data, actions)
      return jnp.tensordot(directions, g, axes=g.ndim)

    def jvp_points(data, points, directions):
      """(f, directional derivative) at each point, in one forward-mode pass."""
      return jax.vmap(lambda a, v: jax.jvp(lambda a: f(data, a), (a,), (v,)))(
          points, directions)

    self.ad = ad
    self.grad_directional = jax.jit(grad_directional)
    self.batched_f = jax.jit(jax.vmap(f, in_axes=(None, 0)))
    self.jvp_points = jax.jit(jvp_points)

  def directional(self, data, actions, v, eps) -> dict[str, np.ndarray]:
    """AD, central-FD and one-sided FD directional derivatives along each row
    of ``v``.

    With ``ad == 'jvp'`` one compiled program gives all of them: the primal
    outputs of forward mode at ``a`` and ``a +- eps v`` are the FD samples.
    """
    k = v.shape[0]
    if self.ad == "grad":
      d_ad = np.asarray(self.grad_directional(data, actions, v))
      plus = np.asarray(self.batched_f(data, actions[None] + eps * v))
      minus = np.asarray(self.batched_f(data, actions[None] - eps * v))
      center = np.asarray(self.batched_f(data, actions[None]))[0]
    else:
      points = jnp.concatenate([actions[None] + eps * v, actions[None] - eps * v,
                                jnp.broadcast_to(actions, v.shape)])
      values, tangents = map(np.asarray, self.jvp_points(
          data, points, jnp.concatenate([v, v, v])))
      plus, minus, d_ad = values[:k], values[k:2 * k], tangents[2 * k:]
      center = values[2 * k]
    return {"ad": d_ad, "fd": (plus - minus) / (2 * eps),
            "fd_plus": (plus - center) / eps, "fd_minus": (center - minus) / eps}

  def start_state(self, which: str, settle_steps: int | None, seed: int):
    """``mjx.Data`` for ``resting`` or ``reset+20`` (seeded).

    ``reset+20`` steps C MuJoCo with the env's own solver settings (tolerance
    0, the same fixed budget: the simulation the env runs) to avoid one more
    XLA compile, and keeps its warm start.
    """
    env = self.env
    key = jax.random.PRNGKey(1000 + seed)
    data = jax.jit(env.reset)(key).pipeline_state
    if which == "resting":
      if settle_steps is None:
        settle_steps = SETTLE_STEPS.get(env.name, 300)
      qpos, qvel, _ = settled_qpos_qvel(env, settle_steps)
      data = data.replace(qpos=jnp.asarray(qpos), qvel=jnp.asarray(qvel))
      return jax.jit(physics.forward)(env.sys, data)
    m = env.mj_model
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:] = np.asarray(data.qpos), np.asarray(data.qvel)
    if m.nmocap:
      d.mocap_pos[:], d.mocap_quat[:] = np.asarray(data.mocap_pos), np.asarray(data.mocap_quat)
    rng = np.random.default_rng(seed)
    for _ in range(20):
      d.ctrl[:] = rng.uniform(-0.2, 0.2, m.nu)
      for _ in range(getattr(env, "n_frames", None) or env.config.n_frames):
        mujoco.mj_step(m, d)
    data = data.replace(qpos=jnp.asarray(d.qpos), qvel=jnp.asarray(d.qvel),
                        qacc_warmstart=jnp.asarray(d.qacc_warmstart),
                        time=jnp.asarray(d.time, dtype=data.time.dtype))
    return jax.jit(physics.forward)(env.sys, data)

  def check(self, data, key: jax.Array, n_directions: int, eps: float) -> dict:
    env = self.env
    k1, k2 = jax.random.split(key)
    actions = jax.random.uniform(k1, (self.horizon, env.action_size),
                                 minval=-0.2, maxval=0.2, dtype=jnp.float64)
    v = jax.random.normal(k2, (n_directions, self.horizon, env.action_size),
                          dtype=jnp.float64)
    v = v / jnp.linalg.norm(v.reshape(n_directions, -1), axis=1)[:, None, None]
    # A direction whose two one-sided differences disagree crosses a jump or a
    # kink of the forward map within +-eps (a constraint switching on with
    # nonzero approach velocity starts with a nonzero damping force; friction
    # and active sets switch): no derivative describes it, so it is left out
    # and counted. If more than MAX_JUMP_FRACTION of the directions are such,
    # eps is too coarse for this state and the check is repeated at eps/100.
    for e in (eps, eps / 100):
      d = self.directional(data, actions, v, e)
      smooth = (np.abs(d["fd_plus"] - d["fd_minus"])
                <= JUMP_TOL * (np.abs(d["fd_plus"]) + np.abs(d["fd_minus"])) + 1e-12)
      if (~smooth).sum() <= MAX_JUMP_FRACTION * n_directions:
        break
    d_ad, d_fd = d["ad"][smooth], d["fd"][smooth]
    fd_norm = np.linalg.norm(d_fd)
    rel = float(np.linalg.norm(d_ad - d_fd) / max(fd_norm, 1e-300))
    cos = float(d_ad @ d_fd / max(np.linalg.norm(d_ad) * fd_norm, 1e-300))
    if self.verbose:
      for i in range(n_directions):
        print(f"#   eps {e:g} v{i}: ad {d['ad'][i]: .6e} fd {d['fd'][i]: .6e} "
              f"fd+ {d['fd_plus'][i]: .6e} fd- {d['fd_minus'][i]: .6e}"
              f"{'' if smooth[i] else '  (non-smooth)'}", file=sys.stderr)
    return {"rel_err": rel, "cosine": cos, "finite": bool(np.isfinite(d["ad"]).all()),
            "jumps": int((~smooth).sum()), "directions": n_directions, "eps": e}


def fidelity(names: list[str], settings: list[tuple[int | None, int | None]],
             horizon: int, n_directions: int, reset_seeds: int, settle_steps: int | None,
             eps: float, ad: str, out: str | None) -> list[dict]:
  rows = []
  for name in names:
    for iterations, ls_iterations in settings:
      rows += _fidelity_one(name, iterations, ls_iterations, horizon, n_directions,
                            reset_seeds, settle_steps, eps, ad, out, rows)
  return rows


def _fidelity_one(name, iterations, ls_iterations, horizon, n_directions,
                  reset_seeds, settle_steps, eps, ad, out, previous) -> list[dict]:
  rows = []
  env = _diff_env(name, iterations, ls_iterations)
  checker = Checker(env, horizon, ad, jax.random.PRNGKey(42), verbose=_VERBOSE)
  states = [("resting", 0)] + [("reset+20", s) for s in range(reset_seeds)]
  for which, seed in states:
    t = time.perf_counter()
    data = checker.start_state(which, settle_steps, seed)
    res = checker.check(data, jax.random.PRNGKey(7 + seed), n_directions, eps)
    label = which if which == "resting" else f"{which} (seed {seed})"
    row = {"task": name, "state": label,
           "setting": f"{env.config.diff_iterations} / {env.config.diff_ls_iterations}",
           "ncon": count_contacts(env, data), **res}
    row["pass"] = (res["finite"] and res["cosine"] >= COSINE_MIN
                   and res["rel_err"] <= REL_ERR_MAX
                   and res["jumps"] <= MAX_JUMP_FRACTION * res["directions"])
    rows.append(row)
    print(f"# {name} {label}: {time.perf_counter() - t:.0f} s (incl. compile)",
          file=sys.stderr, flush=True)
    print(_row_line(row), flush=True)
    common.write_text(out, table(previous + rows, horizon, n_directions, eps, ad))
  return rows


def _row_line(r: dict) -> str:
  return (f"| {r['task']} | {r['state']} | {r['setting']} | {r['ncon']} | "
          f"{r['rel_err']:.1e} | {r['cosine']:.6f} | {r['jumps']} | {r['eps']:g} | "
          f"{'yes' if r['pass'] else 'NO'} |")


def table(rows: list[dict], horizon: int, n_directions: int, eps: float, ad: str) -> str:
  lines = [
      f"Gradient fidelity, float64, {horizon}-step rollout, AD ({ad}) vs central "
      f"FD (eps {eps:g}, or {eps / 100:g} where more than "
      f"{MAX_JUMP_FRACTION:.0%} of the directions are non-smooth at {eps:g}) "
      f"along {n_directions} random directions; pass = cosine >= {COSINE_MIN} "
      f"and relative error <= {REL_ERR_MAX:g} over the smooth directions, "
      f"non-smooth = one-sided FD slopes more than {JUMP_TOL:g} apart "
      f"(relative), at most {MAX_JUMP_FRACTION:.0%} of them.",
      "",
      "| task | state | iterations / ls_iterations | contacts | relative error | cosine | non-smooth dirs | eps | pass |",
      "|---|---|---|---:|---:|---:|---:|---:|---|",
  ]
  lines += [_row_line(r) for r in rows]
  return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# What a setting costs (float32, training precision)
# --------------------------------------------------------------------------


def _diff_env(name: str, iterations: int | None, ls_iterations: int | None):
  """The task's differentiable env, with its solver budget overridden where given."""
  overrides = {}
  if iterations is not None:
    overrides["diff_iterations"] = iterations
  if ls_iterations is not None:
    overrides["diff_ls_iterations"] = ls_iterations
  return envs.make(name, differentiable=True, **overrides)


def throughput(name: str, iterations: int | None, ls_iterations: int | None,
               batch: int, steps: int, repeats: int) -> dict:
  """Env steps/s of the forward rollout and of ``value_and_grad`` of its
  summed return w.r.t. the ``[steps, batch, nu]`` actions (median of
  ``repeats`` runs after compilation): ``benchmarks.envs.bench`` on
  the env with this solver budget.
  """
  env = _diff_env(name, iterations, ls_iterations)
  row = {"task": name, "setting": f"{env.config.diff_iterations} / "
                                  f"{env.config.diff_ls_iterations}",
         "load_before": common.load_average()}
  row.update(bench(name, True, batch, steps, repeats, env=env))
  row["load_after"] = common.load_average()
  return row


def throughput_table(rows: list[dict], batch: int, steps: int) -> str:
  lines = [
      f"Differentiable mode, float32, B={batch}, {steps}-step jitted scans, "
      f"median of repeats after compilation; {os.cpu_count()} CPU cores; load "
      f"average (1 min) before/after each row.",
      "",
      "| task | iterations / ls_iterations | forward steps/s | value_and_grad steps/s | compile fwd / grad (s) | load |",
      "|---|---|---:|---:|---:|---|",
  ]
  for r in rows:
    lines.append(
        f"| {r['task']} | {r['setting']} | {r['forward_sps']:,.0f} | "
        f"{r['grad_sps']:,.0f} | {r['forward_compile_s']:.0f} / "
        f"{r['grad_compile_s']:.0f} | {r['load_before']:.1f} / {r['load_after']:.1f} |")
  return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Gradient quality over horizons, contacts from distance off / on (issue 15)
# --------------------------------------------------------------------------

QUALITY_EPS = (1e-6, 1e-2)


def quality_task(name: str, horizons: list[int], n_states: int, n_directions: int,
                 distances: list[float], seed: int = 0) -> list[dict]:
  """Rows (one per distance and horizon) of the ``--quality`` table for a task."""
  horizons = sorted(horizons)
  T = horizons[-1]
  idx = jnp.asarray([h - 1 for h in horizons])
  base = envs.make(name, differentiable=True)
  nu = base.action_size
  k_reset, k_act, k_dir = jax.random.split(jax.random.PRNGKey(seed), 3)
  states = jax.jit(jax.vmap(base.reset))(jax.random.split(k_reset, n_states))
  actions = jax.random.uniform(k_act, (n_states, T, nu), minval=-0.5, maxval=0.5,
                               dtype=jnp.float64)
  v = jax.random.normal(k_dir, (n_states, n_directions, T, nu), dtype=jnp.float64)
  v = v / jnp.linalg.norm(v.reshape(n_states, n_directions, -1), axis=-1)[..., None, None]

  def returns(env, state, a):
    """``[R_H for H in horizons]`` of one rollout, in float64.

    ``env.step`` casts its reward to float32 (training precision), too
    coarse for finite differences, so the reward is recomputed in float64
    from the task's own terms, as ``env.step`` computes it.
    """
    def body(s, u):
      nxt = env.step(s, u)
      terms = env._reward_terms(s.pipeline_state, nxt.pipeline_state,
                                jnp.clip(u, -1.0, 1.0))
      return nxt, env._combine(terms)
    _, rewards = jax.lax.scan(body, state, a)
    return jnp.cumsum(rewards)[idx]

  # finite differences: the forward is the same for every distance
  t = time.perf_counter()

  def fd_one(state, a, dirs, eps):
    pts = jnp.concatenate([a[None] + eps * dirs, a[None] - eps * dirs, a[None]])
    r = jax.vmap(lambda p: returns(base, state, p))(pts)
    k = dirs.shape[0]
    return (r[:k] - r[k:2 * k]) / (2 * eps), r[-1]

  fd_fn = jax.jit(jax.vmap(fd_one, in_axes=(0, 0, 0, None)))
  fd = {}
  for eps in QUALITY_EPS:
    fd[eps], center = map(np.asarray, fd_fn(states, actions, v, eps))
  print(f"# {name} FD: {time.perf_counter() - t:.0f} s (incl. compile)", file=sys.stderr,
        flush=True)
  rows = []
  for dist in distances:
    env = base if dist == 0 else envs.make(name, differentiable=True,
                                           diff_contact_distance=dist)
    t = time.perf_counter()

    def grads(state, a, env=env):
      r, vjp = jax.vjp(lambda a: returns(env, state, a), a)
      return r, jax.vmap(vjp)(jnp.eye(len(horizons), dtype=r.dtype))[0]

    r, g = map(np.asarray, jax.jit(jax.vmap(grads))(states, actions))  # g [S, nH, T, nu]
    print(f"# {name} distance {dist:g}: {time.perf_counter() - t:.0f} s (incl. compile)",
          file=sys.stderr, flush=True)
    gap = float(np.max(np.abs(r - center) / np.maximum(np.abs(center), 1e-12)))
    print(f"# {name} distance {dist:g}: returns of the AD and FD programs differ "
          f"by {gap:.1e} (relative, max)", file=sys.stderr, flush=True)
    d_ad = np.einsum("shtu,sktu->skh", g, np.asarray(v))  # [S, K, nH]
    norms = np.linalg.norm(g.reshape(n_states, len(horizons), -1), axis=-1)  # [S, nH]
    for j, h in enumerate(horizons):
      finite = np.isfinite(g[:, j]).reshape(n_states, -1).all(axis=1)
      row = {"task": name, "distance": dist, "horizon": h, "states": n_states,
             "nan_rate": float(1 - finite.mean()),
             "norm": float(np.median(norms[finite, j])) if finite.any() else float("nan"),
             "growth": float(np.median(norms[finite, j] / norms[finite, 0]))
                       if finite.any() else float("nan")}
      for eps in QUALITY_EPS:
        a_, f_ = d_ad[finite, :, j], fd[eps][finite, :, j]
        cos = np.sum(a_ * f_, 1) / np.maximum(
            np.linalg.norm(a_, axis=1) * np.linalg.norm(f_, axis=1), 1e-300)
        rel = np.linalg.norm(a_ - f_, axis=1) / np.maximum(np.linalg.norm(f_, axis=1), 1e-300)
        row[f"cos_{eps:g}"] = (float(np.median(cos)), float(np.min(cos)))
        row[f"rel_{eps:g}"] = float(np.median(rel))
      rows.append(row)
      print(_quality_line(row), flush=True)
  return rows


def _quality_line(r: dict) -> str:
  cells = [r["task"], f"{r['distance']:g}", str(r["horizon"]), f"{r['nan_rate']:.0%}",
           f"{r['norm']:.3g}", f"{r['growth']:.3g}"]
  for eps in QUALITY_EPS:
    med, low = r[f"cos_{eps:g}"]
    cells += [f"{med:.4f} ({low:.3f})", f"{r[f'rel_{eps:g}']:.2g}"]
  return "| " + " | ".join(cells) + " |"


def quality_table(rows: list[dict], n_states: int, n_directions: int) -> str:
  e0, e1 = QUALITY_EPS
  lines = [
      f"Gradient quality, float64, AD (reverse mode) of the H-step return w.r.t. "
      f"the actions, {n_states} random reset states, random actions in +-0.5, "
      f"{n_directions} random directions; medians over the states (cosine: "
      f"median (minimum)); norm growth = median of |g_H| / |g_{min(r['horizon'] for r in rows)}|.",
      "",
      f"| task | contact distance (m) | H | NaN rate | median norm | norm growth | "
      f"cosine vs FD {e0:g} | rel. error vs FD {e0:g} | cosine vs FD {e1:g} "
      f"(smoothed) | rel. error vs FD {e1:g} |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ]
  lines += [_quality_line(r) for r in rows]
  return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
  parser = common.parser(__doc__)
  parser.add_argument("--fidelity", action="store_true",
                      help="run the AD-vs-FD fidelity table (float64)")
  parser.add_argument("--throughput", action="store_true",
                      help="time forward and value_and_grad per setting (float32)")
  parser.add_argument("--quality", action="store_true",
                      help="gradient quality over horizons, contacts from distance "
                           "off/on (float64)")
  parser.add_argument("--horizons", type=int, nargs="*", default=[8, 16, 32, 64],
                      help="--quality horizons")
  parser.add_argument("--states", type=int, default=16, help="--quality reset states")
  parser.add_argument("--contact-distances", type=float, nargs="*", default=[0.0, 0.02],
                      help="--quality diff_contact_distance values (0 = off)")
  parser.add_argument("--batch", type=int, default=16, help="--throughput batch")
  parser.add_argument("--steps", type=int, default=16, help="--throughput scan length")
  parser.add_argument("--repeats", type=int, default=3, help="--throughput repeats")
  parser.add_argument("--tasks", nargs="*", default=None,
                      help="task names, also brax/<name> and playground/<Name> "
                           "(default: every registered task)")
  parser.add_argument("--iterations", type=int, default=None,
                      help="override every task's diff_iterations")
  parser.add_argument("--ls-iterations", type=int, default=None,
                      help="override every task's diff_ls_iterations")
  parser.add_argument("--settings", nargs="*", default=None, metavar="IT/LS",
                      help="several overrides in one run, e.g. 4/2 6/3 8/4")
  parser.add_argument("--horizon", type=int, default=32)
  parser.add_argument("--directions", type=int, default=12)
  parser.add_argument("--reset-seeds", type=int, default=2,
                      help="number of random reset+20 states per task")
  parser.add_argument("--settle-steps", type=int, default=None,
                      help="C MuJoCo steps to settle the resting state "
                           "(default: 300, humanoid 600)")
  parser.add_argument("--eps", type=float, default=1e-6)
  parser.add_argument("--ad", choices=["grad", "jvp"], default="grad",
                      help="reverse mode (what training uses) or forward mode "
                           "(same derivative rule, one program for AD and FD)")
  common.add_out(parser)
  parser.add_argument("--verbose", action="store_true",
                      help="print every direction's AD and FD numbers to stderr")
  args = parser.parse_args(argv)
  global _VERBOSE
  _VERBOSE = args.verbose
  if args.fidelity + args.throughput + args.quality != 1:
    parser.error("pass one of --fidelity, --throughput or --quality")
  names = args.tasks or (["hopper", "half_cheetah", "ant"] if args.quality
                         else envs.names())
  common.check_tasks(names)
  if args.quality:
    jax.config.update("jax_enable_x64", True)
    rows = []
    for name in names:
      rows += quality_task(name, args.horizons, args.states, args.directions,
                           args.contact_distances)
      common.write_text(args.out, quality_table(rows, args.states, args.directions))
    print()
    print(quality_table(rows, args.states, args.directions))
    return
  settings = [(args.iterations, args.ls_iterations)]
  if args.settings:
    settings = [tuple(int(x) for x in text.split("/")) for text in args.settings]
  if args.throughput:
    rows = []
    for name in names:
      for it, ls in settings:
        rows.append(throughput(name, it, ls, args.batch, args.steps, args.repeats))
        print(rows[-1], flush=True)
        common.write_text(args.out, throughput_table(rows, args.batch, args.steps))
    print(throughput_table(rows, args.batch, args.steps))
    return
  jax.config.update("jax_enable_x64", True)  # before any model or array is built
  rows = fidelity(names, settings, args.horizon,
                  args.directions, args.reset_seeds, args.settle_steps, args.eps,
                  args.ad, args.out)
  print()
  print(table(rows, args.horizon, args.directions, args.eps, args.ad))
  failed = [f"{r['task']} {r['state']}" for r in rows if not r["pass"]]
  print(f"{len(rows) - len(failed)}/{len(rows)} pass" +
        (f"; failing: {', '.join(failed)}" if failed else ""))


if __name__ == "__main__":
  main(sys.argv[1:])
