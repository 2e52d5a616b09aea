"""fwd_position's Jacobian path against MJX's own reverse pass, in one process.

    python -m benchmarks.jacobian_path --names pendulum_swingup reacher
    python -m benchmarks.jacobian_path --names hopper --max-qpos 6 --steps 8

``envs.physics`` gives small models (``nq <= JACOBIAN_MAX_QPOS``) a
``fwd_position`` whose derivative is a Jacobian built in forward mode
(``envs/physics.py``, ``_jacobian_fwd_position``). This script compiles the
``benchmarks.envs`` program (``[steps, batch]`` rollout of the summed reward)
twice, with the path off (``JACOBIAN_MAX_QPOS = -1``, MJX's reverse) and on
(``--max-qpos``, default the module's value), and times the two programs
call by call, alternating, so that both see the same machine. It also
prints the relative difference of the two gradients (float32). Nothing else
may run while it measures (timing rule).
"""

from __future__ import annotations

import statistics
import time

import jax
import numpy as np

import envs
from benchmarks import common
from benchmarks.envs import summed_return
from envs import physics


def compare(name: str, batch: int, steps: int, repeats: int,
            max_qpos: int) -> dict:
  """Forward and value_and_grad ms per call with the path off and on."""
  env = envs.make(name, differentiable=True)
  state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), batch))
  actions = jax.random.uniform(jax.random.PRNGKey(1), (steps, batch, env.action_size),
                               minval=-1.0, maxval=1.0)
  rollout_return = summed_return(env)
  default = physics.JACOBIAN_MAX_QPOS
  programs, compile_s, grads = {}, {}, {}
  try:
    for path, limit in (("mjx", -1), ("jacobian", max_qpos)):
      physics.JACOBIAN_MAX_QPOS = limit
      for kind, fn in (("forward", rollout_return),
                       ("grad", jax.value_and_grad(rollout_return))):
        program = jax.jit(fn)
        t = time.perf_counter()
        out = jax.block_until_ready(program(actions, state))
        compile_s[path, kind] = time.perf_counter() - t
        programs[path, kind] = program
        if kind == "grad":
          grads[path] = np.asarray(out[1])
  finally:
    physics.JACOBIAN_MAX_QPOS = default
  times = {key: [] for key in programs}
  for _ in range(repeats):
    for key, program in programs.items():
      t = time.perf_counter()
      jax.block_until_ready(program(actions, state))
      times[key].append(time.perf_counter() - t)
  ms = {key: 1e3 * statistics.median(v) for key, v in times.items()}
  diff = (np.linalg.norm(grads["jacobian"] - grads["mjx"])
          / np.linalg.norm(grads["mjx"]))
  return {"name": name, "nq": env.mj_model.nq, "ms": ms, "compile": compile_s,
          "grad_rel_diff": float(diff)}


def table(rows: list[dict]) -> str:
  lines = [
      "| task | nq | path | forward ms | value_and_grad ms | grad / forward "
      "| compile fwd / grad (s) | speed-up of value_and_grad | gradient rel. diff |",
      "|---|---:|---|---:|---:|---:|---:|---:|---:|",
  ]
  for r in rows:
    for path in ("mjx", "jacobian"):
      f, g = r["ms"][path, "forward"], r["ms"][path, "grad"]
      up = r["ms"]["mjx", "grad"] / g
      lines.append(
          f"| {r['name']} | {r['nq']} | {path} | {f:.2f} | {g:.2f} | {g / f:.1f}x "
          f"| {r['compile'][path, 'forward']:.0f} / {r['compile'][path, 'grad']:.0f} "
          f"| {up:.2f}x | {r['grad_rel_diff']:.1e} |")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
  p = common.parser(__doc__)
  p.add_argument("--names", nargs="+", default=["pendulum_swingup", "acrobot_swingup",
                                                 "cartpole_swingup", "cartpole_balance",
                                                 "reacher"])
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--steps", type=int, default=32)
  p.add_argument("--repeats", type=int, default=15)
  p.add_argument("--max-qpos", type=int, default=physics.JACOBIAN_MAX_QPOS,
                 help="JACOBIAN_MAX_QPOS of the 'jacobian' programs")
  common.add_out(p)
  args = p.parse_args(argv)
  common.check_tasks(args.names)
  print(f"load average before: {common.load_average():.2f}", flush=True)
  rows = []
  for name in args.names:
    rows.append(compare(name, args.batch, args.steps, args.repeats, args.max_qpos))
    print(table(rows[-1:]).splitlines()[-2:], flush=True)
  text = (f"B={args.batch}, T={args.steps}, median of {args.repeats} alternating "
          f"calls; load average after: {common.load_average():.2f}\n\n" + table(rows))
  print(text)
  common.write_text(args.out, text + "\n")


if __name__ == "__main__":
  main()
