"""Env steps per second for every task, both modes, forward and value_and_grad.

    python -m benchmarks.envs [--batch 64] [--steps 16] [--names hopper ant]
                              [--out table.md]
    python -m benchmarks.envs --diff-settings   # how the diff_* settings were chosen

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

import os
import platform
import sys

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

import envs
from benchmarks import common
from envs import physics

LOCOMOTION = ["hopper", "half_cheetah", "ant", "humanoid"]


def summed_return(env):
  """``R(actions [T, B, nu], state) -> scalar``: the batch's summed reward
  over a ``lax.scan`` of ``vmap(env.step)`` (what these benchmarks time and
  differentiate)."""
  step = jax.vmap(env.step)

  def rollout_return(actions, state):
    def body(s, a):
      s = step(s, a)
      return s, s.reward

    _, rewards = jax.lax.scan(body, state, actions)
    return jnp.sum(rewards)

  return rollout_return


def bench(name: str, differentiable: bool, batch: int, steps: int, repeats: int,
          env=None) -> dict:
  """Env steps/s of a jitted ``[steps, batch]`` rollout and of its
  ``value_and_grad`` w.r.t. the actions (median of ``repeats`` runs after
  the first); ``env`` overrides ``envs.make(name, differentiable)``."""
  env = env if env is not None else envs.make(name, differentiable=differentiable)
  keys = jax.random.split(jax.random.PRNGKey(0), batch)
  state = jax.jit(jax.vmap(env.reset))(keys)
  actions = jax.random.uniform(jax.random.PRNGKey(1), (steps, batch, env.action_size),
                               minval=-1.0, maxval=1.0)
  rollout_return = summed_return(env)
  row = {"name": name, "mode": "differentiable" if differentiable else "default"}
  forward = jax.jit(rollout_return)
  compile_s, run_s = common.time_call(forward, actions, state, repeats=repeats)
  row["forward_sps"] = batch * steps / run_s
  row["forward_compile_s"] = compile_s

  try:
    vg = jax.jit(jax.value_and_grad(rollout_return))
    compile_s, run_s = common.time_call(vg, actions, state, repeats=repeats)
    value, grad = vg(actions, state)
    finite = bool(np.isfinite(np.asarray(grad)).all())
    row["grad_sps"] = batch * steps / run_s
    row["grad_compile_s"] = compile_s
    row["grad_finite"] = finite
  except Exception as err:  # reverse mode through MJX's while loop
    row["grad_sps"] = None
    row["grad_error"] = type(err).__name__
  return row


# --------------------------------------------------------------------------
# How differentiable mode's per-task settings were chosen (MuJoCo C, no JAX)
# --------------------------------------------------------------------------


def _host_model(name: str, iterations: int, ls_iterations: int, tolerance: float,
                solref: tuple[float, float] | None) -> tuple[mujoco.MjModel, int]:
  config = envs.default_config(name)
  m = mujoco.MjModel.from_xml_path(os.path.join(envs.base.ASSET_DIR,
                                                envs.env_class(name).xml_file))
  m.opt.timestep = config.timestep
  if solref is not None:
    m.geom_solref[:] = solref
  m.opt.iterations, m.opt.ls_iterations, m.opt.tolerance = iterations, ls_iterations, tolerance
  return m, config.n_frames


def solver_sweep(name: str, solref=None, seed: int = 0) -> dict[tuple[int, int], float]:
  """95th-percentile relative error of ``qacc`` with a fixed solver budget.

  States come from random-action rollouts (only states with contacts). Each
  is solved cold (no warm start: the worst case) with ``tolerance = 0`` and
  ``(iterations, ls_iterations)``, against a converged reference solve.
  """
  rng = np.random.default_rng(seed)
  ref, n_frames = _host_model(name, 200, 50, 1e-12, solref)
  d = mujoco.MjData(ref)
  states = []
  for _ in range(4):
    mujoco.mj_resetData(ref, d)
    for t in range(150 * n_frames):
      if t % n_frames == 0:
        d.ctrl[:] = rng.uniform(-1, 1, ref.nu)
      mujoco.mj_step(ref, d)
      if t % 10 == 0 and d.ncon > 0:
        states.append(mujoco.MjData(ref))
        mujoco.mj_copyData(states[-1], ref, d)
  out = {}
  for it in (1, 2, 3, 4, 6, 8):
    for ls in (2, 4, 8):
      m, _ = _host_model(name, it, ls, 0.0, solref)
      errs = []
      for s in states:
        d1, d2 = mujoco.MjData(ref), mujoco.MjData(m)
        for dd, mm in ((d1, ref), (d2, m)):
          mujoco.mj_copyData(dd, mm, s)
          dd.qacc_warmstart[:] = 0
          mujoco.mj_forward(mm, dd)
        errs.append(np.linalg.norm(d2.qacc - d1.qacc) / (np.linalg.norm(d1.qacc) + 1e-9))
      out[(it, ls)] = float(np.percentile(errs, 95))
  return out


def return_roughness(name: str, solref=None, horizon: int = 32, seeds: int = 6) -> float:
  """Median std of finite-difference slopes of a ``horizon``-step forward-velocity
  return along a random action direction (41 points in +-0.02): how rough the
  landscape that gradients see is. Lower is smoother.
  """
  config = envs.default_config(name)
  m, n_frames = _host_model(name, config.diff_iterations, config.diff_ls_iterations, 0.0, solref)
  d = mujoco.MjData(m)
  dt = m.opt.timestep * n_frames
  stds = []
  for seed in range(seeds):
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (horizon, m.nu))
    direction = rng.normal(size=(horizon, m.nu))
    direction /= np.linalg.norm(direction)

    def ret(delta):
      mujoco.mj_resetData(m, d)
      for _ in range(20 * n_frames):  # settle onto the floor
        mujoco.mj_step(m, d)
      total = 0.0
      for t in range(horizon):
        d.ctrl[:] = np.clip(actions[t] + delta * direction[t], -1, 1)
        x0 = d.qpos[0]
        for _ in range(n_frames):
          mujoco.mj_step(m, d)
        total += (d.qpos[0] - x0) / dt
      return total

    deltas = np.linspace(-0.02, 0.02, 41)
    returns = np.array([ret(x) for x in deltas])
    stds.append(np.std(np.diff(returns) / np.diff(deltas)))
  return float(np.median(stds))


def diff_settings_report() -> str:
  lines = ["95th-percentile relative qacc error, cold solve, tolerance 0 "
           "(iterations/ls_iterations: error):", ""]
  for name in LOCOMOTION:
    for solref in (None, (0.04, 1.0)):
      sweep = solver_sweep(name, solref)
      cells = " ".join(f"{k[0]}/{k[1]}:{v:.0e}" for k, v in sweep.items())
      lines.append(f"- {name} solref={solref or 'model'}: {cells}")
  lines += ["", "Return roughness (std of FD slopes, lower is smoother):", ""]
  for name in LOCOMOTION:
    cells = ", ".join(f"solref={s or 'model'}: {return_roughness(name, s):.2f}"
                      for s in (None, (0.04, 1.0)))
    lines.append(f"- {name}: {cells}")
  return "\n".join(lines) + "\n"


def constraint_free(name: str) -> bool:
  """True if the task's model can never create a constraint row: then both
  modes compile the same program (``envs.physics.has_constraint_rows``)."""
  return not physics.has_constraint_rows(envs.make(name).sys)


def table(rows: list[dict], batch: int, steps: int) -> str:
  lines = [
      f"Env steps/s, B={batch}, {steps}-step jitted scans, median of repeats, "
      f"after compilation. Machine: {platform.machine()} CPU, "
      f"{jax.device_count()} JAX device(s) ({jax.devices()[0].platform}), "
      f"jax {jax.__version__}. Load average when written: "
      f"{common.load_average():.1f} on {os.cpu_count()} cores (a shared machine "
      f"inflates times).",
      "",
      "| task | mode | forward steps/s | value_and_grad steps/s | grad / forward | compile fwd / grad (s) |",
      "|---|---|---:|---:|---:|---:|",
  ]
  for r in rows:
    ratio = (None if r.get("grad_sps") is None
             else r["forward_sps"] / r["grad_sps"])
    grad = common.fmt(r.get("grad_sps"))
    if r.get("grad_sps") is None:
      grad = "n/a (while loop)"
    elif not r.get("grad_finite", True):
      grad += " (non-finite!)"
    lines.append(
        f"| {r['name']} | {r['mode']} | {common.fmt(r['forward_sps'])} | {grad} | "
        f"{common.fmt(ratio, '{:.1f}x slower')} | {r['forward_compile_s']:.0f} / "
        f"{common.fmt(r.get('grad_compile_s'), '{:.0f}')} |")
  return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
  parser = common.parser(__doc__)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--names", nargs="*", default=None)
  parser.add_argument("--modes", nargs="*", default=["default", "differentiable"],
                      choices=["default", "differentiable"])
  common.add_out(parser)
  parser.add_argument("--skip-identical", action="store_true",
                      help="measure constraint-free tasks in differentiable mode only")
  parser.add_argument("--diff-settings", action="store_true",
                      help="print the measurements behind the diff_* settings and exit")
  args = parser.parse_args(argv)
  if args.diff_settings:
    print(diff_settings_report())
    return
  names = args.names or envs.names()
  common.check_tasks(names)
  rows = []
  for name in names:
    for mode in args.modes:
      if (args.skip_identical and mode == "default" and "differentiable" in args.modes
          and constraint_free(name)):
        continue
      row = bench(name, mode == "differentiable", args.batch, args.steps, args.repeats)
      rows.append(row)
      print(row, flush=True)
      # rewrite after every row so a cut-short run keeps its results
      common.write_text(args.out, table(rows, args.batch, args.steps))
  print(table(rows, args.batch, args.steps))


if __name__ == "__main__":
  main(sys.argv[1:])
