"""Benchmark: default vs differentiable MJX stepping (envs.physics).

For each model, a batch of B environments is rolled out for T steps under
``jax.vmap`` + ``lax.scan``. Reported per model:

* forward steps/s in default mode (MJX's early-exit while loop) and in
  differentiable mode (tolerance 0, fixed iterations), and their ratio;
* ``value_and_grad`` time of the rollout loss w.r.t. the action sequence,
  divided by the differentiable forward time;
* compile time of the ``value_and_grad`` function;
* peak memory of the ``value_and_grad`` program (XLA's buffer assignment:
  arguments + outputs + temporaries).

A second table puts C MuJoCo beside MJX for the same models, initial states
and controls: ``mj_step`` steps/s through ``mujoco.rollout`` on one thread
and on every core, and ``mjd_transitionFD`` (centred finite-difference
Jacobians of one step) per second on one thread.

Models: ``chain``, ``hopper_like``, ``ant_like`` (envs/assets/physics/) and
``brax_hopper`` (Brax's own hopper.xml, as Brax's ``backend='mjx'`` env
loads it).

Usage::

    python -m benchmarks.physics                 # B=64, T=32, all models
    python -m benchmarks.physics --models brax_hopper --batch 64 --horizon 32
    python -m benchmarks.physics --c-only        # just the C MuJoCo table

Run it on an otherwise idle machine; it prints a Markdown table.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from benchmarks import common
from envs import physics

ASSETS = Path(physics.__file__).parent / "assets" / "physics"
MODELS = ("chain", "hopper_like", "ant_like", "brax_hopper")


def load_model(name: str) -> mujoco.MjModel:
  """A benchmark model by name (see the module docstring)."""
  if name == "brax_hopper":
    import brax  # pylint: disable=import-outside-toplevel
    path = Path(brax.__file__).parent / "envs" / "assets" / "hopper.xml"
  else:
    path = ASSETS / f"{name}.xml"
  return mujoco.MjModel.from_xml_path(str(path))


def _inputs(mj: mujoco.MjModel, batch: int, horizon: int):
  """The initial qvel [B, nv] and controls [B, T, nu] every row uses."""
  k1, k2 = jax.random.split(jax.random.PRNGKey(0))
  qvel = 0.1 * jax.random.normal(k1, (batch, mj.nv))
  ctrl = 0.5 * jax.random.uniform(k2, (batch, horizon, max(mj.nu, 1)),
                                  minval=-1, maxval=1)
  return qvel, ctrl[..., :mj.nu]


def bench_c_mujoco(name: str, batch: int, horizon: int, repeats: int,
                   fd_calls: int = 200) -> dict:
  """C MuJoCo on the same model, initial states and controls as the MJX rows
  (the model's own solver settings, as MJX's default mode)."""
  from mujoco import rollout  # pylint: disable=import-outside-toplevel
  mj = load_model(name)
  qvel, ctrl = (np.asarray(x, np.float64) for x in _inputs(mj, batch, horizon))
  data = mujoco.MjData(mj)
  spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
  init = np.empty((batch, mujoco.mj_stateSize(mj, spec)))
  for b in range(batch):
    mujoco.mj_resetData(mj, data)
    data.qvel[:] = qvel[b]
    mujoco.mj_getState(mj, data, init[b], spec)
  out = {"model": name, "steps": batch * horizon}
  for label, nthread in (("1 thread", 1), ("all cores", os.cpu_count() or 1)):
    with rollout.Rollout(nthread=nthread) as pool:
      datas = [mujoco.MjData(mj) for _ in range(nthread)]
      times = []
      for _ in range(repeats + 1):
        t0 = time.perf_counter()
        pool.rollout(mj, datas, init, ctrl)
        times.append(time.perf_counter() - t0)
    out[label] = batch * horizon / statistics.median(times[1:])
  # one-step Jacobians by centred finite differences, from the first state
  mujoco.mj_setState(mj, data, init[0], spec)
  mujoco.mj_forward(mj, data)
  n = 2 * mj.nv + mj.na
  a, b_ = np.zeros((n, n)), np.zeros((n, mj.nu))
  mujoco.mjd_transitionFD(mj, data, 1e-6, True, a, b_, None, None)  # warm-up
  t0 = time.perf_counter()
  for _ in range(fd_calls):
    mujoco.mjd_transitionFD(mj, data, 1e-6, True, a, b_, None, None)
  out["fd_per_s"] = fd_calls / (time.perf_counter() - t0)
  out["nthread_all"] = os.cpu_count() or 1
  return out


def _rollout_loss(model, data0, ctrl):
  """Sum of squared positions and velocities over a rollout. ctrl: [T, nu]."""

  def body(data, u):
    data = physics.step(model, data.replace(ctrl=u))
    return data, jnp.sum(data.qpos**2) + 0.01 * jnp.sum(data.qvel**2)

  _, costs = jax.lax.scan(body, data0, ctrl)
  return jnp.mean(costs)


def bench_model(name: str, batch: int, horizon: int, iterations: int,
                ls_iterations: int, repeats: int) -> dict:
  mj = load_model(name)
  default = physics.put_model(mj)
  diff = physics.put_model(physics.differentiable_model(
      mj, iterations=iterations, ls_iterations=ls_iterations))

  data = mjx.make_data(default)
  qvel, ctrl = _inputs(mj, batch, horizon)
  data0 = jax.vmap(lambda v: data.replace(qvel=v))(qvel)

  def batch_loss(model):
    return lambda d0, u: jnp.mean(jax.vmap(lambda d, c: _rollout_loss(model, d, c))(d0, u))

  fwd_default = jax.jit(batch_loss(default))
  fwd_diff = jax.jit(batch_loss(diff))
  vg_diff = jax.jit(jax.value_and_grad(batch_loss(diff), argnums=1))

  # compile times (lower + compile, no execution)
  t0 = time.perf_counter()
  compiled_vg = vg_diff.lower(data0, ctrl).compile()
  compile_vg = time.perf_counter() - t0
  t0 = time.perf_counter()
  fwd_diff.lower(data0, ctrl).compile()
  compile_fwd = time.perf_counter() - t0

  mem = compiled_vg.memory_analysis()
  peak_bytes = None
  if mem is not None:
    peak_bytes = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                  + mem.temp_size_in_bytes)

  # median seconds after one warm-up call
  _, t_def = common.time_call(fwd_default, data0, ctrl, repeats=repeats)
  _, t_diff = common.time_call(fwd_diff, data0, ctrl, repeats=repeats)
  _, t_vg = common.time_call(vg_diff, data0, ctrl, repeats=repeats)

  # sanity: both modes simulate the same physics (same iteration cap here only
  # when ls settings agree, so report the gap rather than assert it)
  val_default = float(fwd_default(data0, ctrl))
  val_diff, grad = vg_diff(data0, ctrl)
  if not np.all(np.isfinite(np.asarray(grad))):
    raise RuntimeError(f"{name}: non-finite gradient")

  steps = batch * horizon
  return dict(
      model=name, nv=mj.nv, steps=steps,
      default_sps=steps / t_def, diff_sps=steps / t_diff,
      ratio=t_def / t_diff, vg_over_fwd=t_vg / t_diff,
      compile_vg=compile_vg, compile_fwd=compile_fwd,
      peak_mib=None if peak_bytes is None else peak_bytes / 2**20,
      loss_gap=abs(val_default - float(val_diff)) / max(abs(val_default), 1e-9),
  )


def main() -> None:
  p = common.parser(__doc__)
  p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--horizon", type=int, default=32)
  p.add_argument("--iterations", type=int, default=4)
  p.add_argument("--ls-iterations", type=int, default=4)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--c-only", action="store_true",
                 help="only the C MuJoCo table")
  args = p.parse_args()

  print(f"# envs.physics benchmark: B={args.batch}, T={args.horizon}, "
        f"differentiable iterations={args.iterations}, "
        f"ls_iterations={args.ls_iterations}")
  print(f"# jax {jax.__version__}, mujoco-mjx {importlib.metadata.version('mujoco-mjx')}, "
        f"{jax.devices()[0].platform}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}")
  if not args.c_only:
    _mjx_table(args)
  print()
  print(f"# C MuJoCo {mujoco.__version__}, same models, initial states and "
        f"controls (B={args.batch} rollouts of T={args.horizon} steps)")
  print("| model | mj_step steps/s, 1 thread | mj_step steps/s, all cores | "
        "mjd_transitionFD Jacobians/s, 1 thread |")
  print("|---|---:|---:|---:|")
  for name in args.models:
    r = bench_c_mujoco(name, args.batch, args.horizon, args.repeats)
    print(f"| {name} | {r['1 thread']:,.0f} | {r['all cores']:,.0f} "
          f"({r['nthread_all']} threads) | {r['fd_per_s']:,.0f} |", flush=True)


def _mjx_table(args) -> None:
  header = ("| model | default steps/s | diff steps/s | diff/default | "
            "value_and_grad / fwd | grad compile s | fwd compile s | "
            "grad peak MiB | loss gap |")
  print(header)
  print("|" + "---|" * (header.count("|") - 1))
  for name in args.models:
    r = bench_model(name, args.batch, args.horizon, args.iterations,
                    args.ls_iterations, args.repeats)
    peak = "n/a" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
    print(f"| {r['model']} | {r['default_sps']:.0f} | {r['diff_sps']:.0f} | "
          f"{r['ratio']:.2f}x | {r['vg_over_fwd']:.2f}x | {r['compile_vg']:.1f} | "
          f"{r['compile_fwd']:.1f} | {peak} | {r['loss_gap']:.1e} |", flush=True)


if __name__ == "__main__":
  main()
