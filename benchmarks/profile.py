"""Per-op profile of a rollout gradient on XLA:CPU: where the reverse time goes.

    python -m benchmarks.profile --task hopper --steps 1
    python -m benchmarks.profile --task pendulum_swingup --steps 32 --top 25

Builds ``jit(value_and_grad(R))`` with ``R`` the summed reward of a
``--steps``-step rollout of ``--batch`` envs in differentiable mode (as
``benchmarks.envs`` does), compiles and warms it up, then records
``--repeats`` calls under ``jax.profiler.trace`` and reads the trace back
with ``jax.profiler.ProfileData``. XLA:CPU reports one event per executed
thunk (an HLO instruction: a fusion, a dot, a while loop, a custom call);
nested events (a loop's body inside the loop) are charged to the innermost
one, so the exclusive times add up to the traced time.

Every HLO instruction carries its JAX name stack in the compiled module's
metadata (``op_name``, with ``transpose`` marking the reverse pass; MJX
names its stages, e.g. ``fwd_position``, and ours appear as ``_solve``,
``step``, the env's methods). The report groups the thunks' exclusive time
three ways: per HLO instruction (top ``--top``), per scope (the name stack
without loop/vmap noise: which MJX stage or function of ours), and per
direction (forward pass, reverse pass). Events that are not HLO thunks
(Python, the runtime's waiting) are left out.

The same is printed for the forward rollout alone (``jit(R)``), so the
reverse/forward ratio of each source line can be read off. Times are per
call, in ms. Nothing else may run while this measures (timing rule).
"""

from __future__ import annotations

import collections
import glob
import os
import re
import sys
import tempfile
import time

import jax

import envs
from benchmarks import common
from benchmarks.envs import summed_return

_META = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=.*?metadata=\{([^}]*)\}")
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\d+)')


def hlo_metadata(hlo_text: str) -> dict[str, dict[str, str]]:
  """HLO instruction name -> its metadata fields (op_name, source_file, ...)."""
  out = {}
  for line in hlo_text.splitlines():
    m = _META.match(line)
    if m:
      out[m.group(1)] = {k: v.strip('"') for k, v in _FIELD.findall(m.group(2))}
  return out


def exclusive_times(trace_dir: str) -> tuple[dict[str, float], float]:
  """Exclusive ns per event name over the CPU threads of the trace (nested
  events charged to the innermost), and the total traced ns."""
  from jax.profiler import ProfileData  # pylint: disable=import-outside-toplevel
  files = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
  if not files:
    raise RuntimeError(f"no .xplane.pb under {trace_dir}")
  data = ProfileData.from_file(files[0])
  excl: dict[str, float] = collections.defaultdict(float)
  total = 0.0
  for plane in data.planes:
    if not plane.name.startswith("/host:CPU"):
      continue
    for line in plane.lines:
      events = sorted(((e.start_ns, e.duration_ns, e.name) for e in line.events),
                      key=lambda x: (x[0], -x[1]))
      stack: list[list] = []  # [end_ns, name, child_ns, dur]
      def close(entry):
        excl[entry[1]] += max(entry[3] - entry[2], 0.0)
        if stack:
          stack[-1][2] += entry[3]
      for start, dur, name in events:
        while stack and stack[-1][0] <= start:
          close(stack.pop())
        stack.append([start + dur, name, 0.0, dur])
      while stack:
        close(stack.pop())
  total = sum(excl.values())
  return dict(excl), total


def profile(fn, args, repeats: int) -> tuple[dict[str, float], float]:
  """Per-name exclusive ms per call of ``fn(*args)`` (already compiled)."""
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d):
      for _ in range(repeats):
        jax.block_until_ready(fn(*args))
    excl, total = exclusive_times(d)
  scale = 1e-6 / repeats
  return {k: v * scale for k, v in excl.items()}, total * scale


_NOISE = {"vmap()", "while", "body", "closed_call", "cond", "branch", "checkpoint",
          "remat", "pjit", "custom_jvp_call", "custom_vjp_call"}


def scope(op_name: str, depth: int = 3) -> str:
  """The name stack of an HLO op without loop/vmap/jit noise and without its
  primitive, last ``depth`` components: the MJX stage or our function that
  emitted it (e.g. ``step/forward/fwd_position``)."""
  parts = []
  for tok in op_name.split("/")[:-1]:
    tok = re.sub(r"^(transpose|jvp)\((.*)\)$", r"\2", tok)
    if tok in _NOISE or tok.startswith(("jit(", "vmap(")) or not tok:
      continue
    parts.append(tok)
  return "/".join(parts[-depth:]) or "(top level)"


def report(title: str, excl: dict[str, float], meta: dict, top: int, wall_ms: float
           ) -> tuple[list[str], float]:
  """Markdown tables of the HLO thunks' exclusive time; returns them and the
  thunks' total ms per call."""
  hlo = {k: v for k, v in excl.items() if k in meta}
  total = sum(hlo.values())
  lines = [f"### {title}", "",
           f"{wall_ms:.2f} ms per call (wall, median); the HLO thunks' exclusive "
           f"times add up to {total:.2f} ms per call (summed over XLA:CPU's "
           f"threads).", "",
           "| HLO instruction | ms | % | direction | scope | JAX op (end of name stack) |",
           "|---|---:|---:|---|---|---|"]
  for name, ms in sorted(hlo.items(), key=lambda kv: -kv[1])[:top]:
    op = meta[name].get("op_name", "")
    lines.append(f"| `{name}` | {ms:.3f} | {100 * ms / total:.1f} | "
                 f"{'reverse' if 'transpose' in op else 'forward'} | "
                 f"{scope(op)} | `{op[-60:]}` |")
  by_scope: dict[tuple[str, str], float] = collections.defaultdict(float)
  by_dir: dict[str, float] = collections.defaultdict(float)
  for name, ms in hlo.items():
    op = meta[name].get("op_name", "")
    direction = "reverse" if "transpose" in op else "forward"
    by_scope[(scope(op), direction)] += ms
    by_dir[direction] += ms
  lines += ["", "| scope | direction | ms | % |", "|---|---|---:|---:|"]
  for (sc, d), ms in sorted(by_scope.items(), key=lambda kv: -kv[1])[:top]:
    lines.append(f"| {sc} | {d} | {ms:.3f} | {100 * ms / total:.1f} |")
  lines += ["", "| direction | ms | % |", "|---|---:|---:|"]
  for d, ms in sorted(by_dir.items(), key=lambda kv: -kv[1]):
    lines.append(f"| {d} | {ms:.3f} | {100 * ms / total:.1f} |")
  return lines + [""], total


def main(argv=None) -> int:
  p = common.parser(__doc__)
  p.add_argument("--task", default="hopper")
  p.add_argument("--steps", type=int, default=1, help="rollout length")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--top", type=int, default=20)
  common.add_out(p)
  args = p.parse_args(argv)
  common.check_tasks([args.task])
  load0 = common.load_average()
  env = envs.make(args.task, differentiable=True)
  state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), args.batch))
  actions = jax.random.uniform(jax.random.PRNGKey(1), (args.steps, args.batch, env.action_size),
                               minval=-1.0, maxval=1.0)
  rollout_return = summed_return(env)

  out = [f"## Profile: {args.task}, {args.steps}-step rollout x {args.batch} envs "
         f"(`python -m benchmarks.profile --task {args.task} --steps {args.steps} "
         f"--batch {args.batch}`)", "",
         f"{common.backend_line()}; jax {jax.__version__}; {args.repeats} calls traced "
         f"after 2 warm-up calls.", ""]
  walls = {}
  for label, fn in (("forward", jax.jit(rollout_return)),
                    ("value_and_grad", jax.jit(jax.value_and_grad(rollout_return)))):
    t = time.perf_counter()
    compiled = fn.lower(actions, state).compile()
    compile_s = time.perf_counter() - t
    meta = hlo_metadata(compiled.as_text())
    _, wall = common.time_call(compiled, actions, state, repeats=args.repeats)
    walls[label] = wall * 1e3
    excl, _ = profile(compiled, (actions, state), args.repeats)
    lines, total = report(f"{label} (compile {compile_s:.1f} s)", excl, meta, args.top,
                          walls[label])
    out += lines
    print(f"# {label}: {walls[label]:.2f} ms per call (thunks {total:.2f}), "
          f"compile {compile_s:.1f} s", file=sys.stderr, flush=True)
  out.insert(4, f"value_and_grad / forward = {walls['value_and_grad'] / walls['forward']:.2f} "
                f"(wall per call); load {load0:.2f} before, "
                f"{common.load_average():.2f} after.\n")
  text = "\n".join(out) + "\n"
  print(text)
  common.write_text(args.out, text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
