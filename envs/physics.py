"""Differentiable MJX physics: a fixed-iteration constraint solver at tolerance 0.

MJX runs the outer loop of its constraint solver as a ``jax.lax.while_loop``,
which JAX cannot reverse-differentiate, so ``jax.grad`` through ``mjx.step``
fails for every model with ``opt.iterations > 1``. MuJoCo's way of saying "run
exactly ``opt.iterations`` iterations" is ``opt.tolerance = 0``. This module
honours it:

* ``tolerance == 0``: the solver runs as a ``lax.scan`` of exactly
  ``opt.iterations`` steps, which supports ``jax.grad``, ``vjp``,
  ``jacrev``, ``jacfwd``, ``jit`` and ``vmap``. Its results equal
  ``mjx.step``'s.
* anything else: MJX's own early-exit while loop runs, untouched.

Derivatives of the solve are those of the solver's optimum (implicit function
theorem, one Newton-Hessian solve per step) attached with ``jax.custom_jvp``;
the iterations themselves are never unrolled by AD.

The choice is made in Python at trace time, never with ``lax.cond`` (under
``jax.grad`` both branches of a ``cond`` are transposed, and the while-loop
branch cannot be). For the choice to survive a model that is itself a traced
argument (passed into ``jit``, or ``vmap``-ped over a batch of randomised
models), build the model with :func:`put_model`: it stores ``opt.tolerance`` as
static pytree metadata, the way MJX already stores ``opt.iterations``.

Public API:
  step(model, data) -> mjx.Data
  forward(model, data) -> mjx.Data
  differentiable_model(mj_model, iterations=4, ls_iterations=4) -> MjModel
  put_model(mj_model) -> mjx.Model      (static tolerance)
  static_tolerance(model) -> mjx.Model  (same, for an existing mjx.Model)
  is_differentiable(model) -> bool
  contacts_from_distance(model, distance) -> mjx.Model  (backward-only contacts)
  contact_distance(model) -> float
  patch_mjx()                            (context manager)

See docs/differentiable_mode.md for the contract.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib.metadata
import threading
import warnings
from collections.abc import Iterator

import jax
import jax.extend.core as _jex_core
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx
from mujoco.mjx._src import constraint as _mjx_constraint
from mujoco.mjx._src import forward as _mjx_forward
from mujoco.mjx._src import math as _mjx_math
from mujoco.mjx._src import solver as _mjx_solver
from mujoco.mjx._src import support as _mjx_support
from mujoco.mjx._src import types as _mjx_types

__all__ = [
    "TESTED_MJX_VERSIONS",
    "StaticToleranceOption",
    "contact_distance",
    "contacts_from_distance",
    "differentiable_model",
    "forward",
    "is_differentiable",
    "patch_mjx",
    "put_model",
    "static_tolerance",
    "step",
]

# MJX versions whose solver internals this module was tested against.
TESTED_MJX_VERSIONS = ("3.17.0",)

# The MJX solver helpers the fixed-iteration loop calls (module-level functions
# of mujoco.mjx._src.solver). If a future MJX renames them we fail loudly.
_REQUIRED = ("Context", "_linesearch", "_update_constraint", "_update_gradient",
             "_rescale", "solve")


def _check_mjx_version() -> None:
  missing = [n for n in _REQUIRED if not hasattr(_mjx_solver, n)]
  if not hasattr(_mjx_constraint, "make_constraint"):
    missing.append("constraint.make_constraint")
  if missing:
    raise ImportError(
        f"envs.physics needs mujoco.mjx._src.solver.{missing}, which this "
        f"mujoco-mjx does not have. Install a tested version: "
        f"pip install 'mujoco-mjx=={TESTED_MJX_VERSIONS[-1]}'.")
  try:
    version = importlib.metadata.version("mujoco-mjx")
  except importlib.metadata.PackageNotFoundError:
    version = "unknown"
  if version not in TESTED_MJX_VERSIONS:
    warnings.warn(
        f"envs.physics was tested with mujoco-mjx {TESTED_MJX_VERSIONS}, but "
        f"{version} is installed. The differentiable solver reuses MJX's solver "
        f"helpers and may be wrong on this version; run tests/envs/"
        f"test_physics.py or pin mujoco-mjx=={TESTED_MJX_VERSIONS[-1]}.",
        RuntimeWarning, stacklevel=3)


_check_mjx_version()

# MJX's own solver, captured before anyone patches the module.
_MJX_SOLVE = _mjx_solver.solve
_MJX_PUT_MODEL = mjx.put_model


# --------------------------------------------------------------------------
# Static tolerance
# --------------------------------------------------------------------------


class StaticToleranceOption(_mjx_types.Option):
  """``mjx.Option`` whose ``tolerance`` is static pytree metadata.

  Identical to ``mjx.Option`` except that ``tolerance`` is a Python float kept
  in the pytree's aux data (like ``iterations``), so it stays known at trace
  time when the model is a ``jit`` argument or ``vmap``-ped. Changing the
  tolerance therefore recompiles, as changing ``iterations`` does.

  ``diff_contact_distance`` (static too, 0 = off) is set by
  :func:`contacts_from_distance`; it changes derivatives only, never values.
  """

  tolerance: float
  diff_contact_distance: float = 0.0


def static_tolerance(model: mjx.Model) -> mjx.Model:
  """Returns ``model`` with ``opt.tolerance`` stored as static metadata.

  Args:
    model: an ``mjx.Model`` (or Brax ``System``) with a concrete tolerance.

  Raises:
    TypeError: if ``model.opt.tolerance`` is a tracer (call this outside
      ``jit``/``vmap``, where the model is built).
  """
  opt = model.opt
  if isinstance(opt, StaticToleranceOption):
    return model
  if isinstance(opt.tolerance, jax.core.Tracer):
    raise TypeError(
        "static_tolerance() needs a concrete opt.tolerance, but it is traced. "
        "Call envs.physics.put_model / static_tolerance where the model is "
        "built, outside jit and vmap.")
  fields = {f.name: getattr(opt, f.name) for f in dataclasses.fields(opt)}
  fields["tolerance"] = float(np.asarray(opt.tolerance))
  return model.replace(opt=StaticToleranceOption(**fields))


def put_model(mj_model: mujoco.MjModel, **kwargs) -> mjx.Model:
  """``mjx.put_model`` with a static ``opt.tolerance`` (see module docstring).

  Args:
    mj_model: host model.
    **kwargs: passed to ``mjx.put_model`` (e.g. ``impl``).
  """
  return static_tolerance(_MJX_PUT_MODEL(mj_model, **kwargs))


def _tolerance(model: mjx.Model) -> float | None:
  """The tolerance as a Python float, or None if it is only known at run time."""
  tol = model.opt.tolerance
  if isinstance(tol, jax.core.Tracer):
    return None
  return float(np.asarray(tol))


def is_differentiable(model: mjx.Model | mujoco.MjModel) -> bool:
  """True if :func:`step` on this model runs the reverse-differentiable loop.

  That is when ``opt.tolerance == 0`` and the tolerance is known at trace time
  (a host ``MjModel``, a model from :func:`put_model`, or a concrete one).
  """
  if isinstance(model, mujoco.MjModel):
    return float(model.opt.tolerance) == 0.0
  return _tolerance(model) == 0.0


def has_constraint_rows(model: mjx.Model) -> bool:
  """True if the model can create constraint rows (contacts, joint limits,
  equalities, friction loss), i.e. MJX's ``forward`` calls the constraint
  solver. MJX sizes the rows from the model alone, so a model without rows
  runs the same program in default and differentiable mode."""
  return mjx.make_data(model)._impl.efc_J.shape[0] > 0


# --------------------------------------------------------------------------
# Contacts from distance (backward only)
# --------------------------------------------------------------------------


def contacts_from_distance(model: mjx.Model, distance: float) -> mjx.Model:
  """Returns ``model`` whose gradients see contacts from ``distance`` away.

  Forward values are unchanged, bit for bit: the constraint solve is the same.
  Only the derivative attached to the solve (differentiable mode, tolerance
  0) changes: it is taken as if every contact whose distance lies within
  ``distance`` beyond its margin were already active, with an impedance that
  rises smoothly from almost nothing at ``distance`` to the contact's own
  ``solimp`` ``dmax`` at the margin (a "ghost" contact). Inside that band the
  gradient of the state with respect to positions, velocities and controls is
  no longer zero before touch. Contacts already active, and every other
  constraint, keep their exact derivative, though the ghost rows enter the
  Hessian they are solved with. See docs/differentiable_mode.md (contacts).

  Args:
    model: an ``mjx.Model`` (or Brax ``System``) with a concrete tolerance;
      it is made static-tolerance (:func:`static_tolerance`) if it is not.
      Only the tolerance-0 solve reads the setting.
    distance: the band in metres (model length units); 0 turns it off.

  Raises:
    ValueError: if ``distance`` is negative or not finite.
    TypeError: as :func:`static_tolerance`.
  """
  distance = float(distance)
  if not np.isfinite(distance) or distance < 0:
    raise ValueError(f"distance must be finite and >= 0, got {distance!r}.")
  model = static_tolerance(model)
  return model.replace(opt=model.opt.replace(diff_contact_distance=distance))


def contact_distance(model: mjx.Model) -> float:
  """The backward-only contact distance of ``model`` (0.0 when off)."""
  return float(getattr(model.opt, "diff_contact_distance", 0.0))


def _ghost_constraints(m: mjx.Model, d: mjx.Data, distance: float) -> mjx.Data:
  """``d`` with constraint rows rebuilt so that contacts within ``distance``
  beyond their margin are active ("ghost" rows).

  A contact inactive in the real problem (``dist >= includemargin``) gets its
  margin widened by ``distance`` and an impedance ``solimp = (1e-4, dmax,
  distance, 0.5, 2)``: about zero force at the outer edge of the band, the
  contact's ``dmax`` at its real margin. Active contacts keep their rows.
  """
  c = d._impl.contact
  if c.dist.shape[0] == 0:
    return d
  ghost = c.dist >= c.includemargin
  solimp = c.solimp.at[:, 0].set(jnp.where(ghost, mujoco.mjMINIMP, c.solimp[:, 0]))
  solimp = solimp.at[:, 2].set(jnp.where(ghost, distance, solimp[:, 2]))
  c = c.replace(includemargin=c.includemargin + jnp.where(ghost, distance, 0.0),
                solimp=solimp)
  return _mjx_constraint.make_constraint(m, d.tree_replace({"_impl.contact": c}))


# --------------------------------------------------------------------------
# The fixed-iteration solver
# --------------------------------------------------------------------------


def _run_iterations(m: mjx.Model, d: mjx.Data):
  """MuJoCo's solver with a fixed trip count; returns the final solver context.

  Same algorithm and exit test as MuJoCo (Newton or CG with a zoom line
  search, optional warm start), written as a ``lax.scan`` of
  ``m.opt.iterations`` steps. Once MuJoCo's exit test fires, the remaining
  iterations leave the solution unchanged, so the result equals MJX's while
  loop.
  """
  s = _mjx_solver
  tolerance = m.opt.tolerance

  # warm start: begin from the previous step's acceleration when it is cheaper
  qacc = d.qacc_smooth
  if not m.opt.disableflags & mjx.DisableBit.WARMSTART:
    cost_warm = s.Context.create(m, d.replace(qacc=d.qacc_warmstart), grad=False).cost
    cost_smooth = s.Context.create(m, d.replace(qacc=d.qacc_smooth), grad=False).cost
    qacc = jnp.where(cost_warm < cost_smooth, d.qacc_warmstart, d.qacc_smooth)
  d = d.replace(qacc=qacc)

  def converged(ctx):
    improvement = s._rescale(m, d, ctx.prev_cost - ctx.cost)
    gradient = s._rescale(m, d, _mjx_math.norm(ctx.grad))
    return (improvement < tolerance) | (gradient < tolerance)

  def iterate(ctx):
    ctx = s._linesearch(m, d, ctx)
    grad_old, mgrad_old = ctx.grad, ctx.Mgrad
    ctx = s._update_constraint(m, d, ctx)
    ctx = s._update_gradient(m, d, ctx)
    if m.opt.solver == mjx.SolverType.NEWTON:
      search = -ctx.Mgrad
    else:  # conjugate gradient, Polak-Ribiere with restart
      num = jnp.dot(ctx.grad, ctx.Mgrad - mgrad_old)
      den = jnp.maximum(jnp.dot(grad_old, mgrad_old), mujoco.mjMINVAL)
      search = -ctx.Mgrad + jnp.maximum(num / den, 0.0) * ctx.search
    return ctx.replace(search=search, solver_niter=ctx.solver_niter + 1)

  def scan_body(carry, _):
    ctx, done = carry
    done = done | converged(ctx)
    new = iterate(ctx)
    ctx = jax.tree_util.tree_map(lambda old, nxt: jnp.where(done, old, nxt), ctx, new)
    return (ctx, done), None

  ctx = s.Context.create(m, d)
  (ctx, _), _ = jax.lax.scan(
      scan_body, (ctx, jnp.array(False)), None, length=m.opt.iterations)
  return ctx


def _newton_model(m: mjx.Model) -> mjx.Model:
  if m.opt.solver == mjx.SolverType.NEWTON:
    return m
  return m.replace(opt=m.opt.replace(solver=mjx.SolverType.NEWTON))


def _solution_map(m: mjx.Model, d: mjx.Data, qacc: jax.Array):
  """One exact Newton step from ``qacc``, and the constraint forces there.

  At the solver's optimum ``qacc*`` the map ``x - H(x)^-1 g(x)`` is the
  identity in value, and its derivative with respect to the model and data
  (with ``x`` held fixed) is ``-H^-1 dg``: the implicit-function derivative
  of the optimum. ``g`` is the gradient of MuJoCo's constraint cost and ``H``
  its (Gauss-Newton) Hessian ``M + J' D J`` on the active set.
  """
  s = _mjx_solver
  mn = _newton_model(m)
  ctx = s.Context.create(mn, d.replace(qacc=qacc), grad=True)
  qacc_next = qacc - ctx.Mgrad
  forces = s.Context.create(mn, d.replace(qacc=qacc_next), grad=False)
  return qacc_next, forces.qfrc_constraint, forces.efc_force


@jax.custom_jvp
def _solve_arrays(m: mjx.Model, d: mjx.Data):
  """(qacc, qfrc_constraint, efc_force) of the fixed-iteration solve."""
  ctx = _run_iterations(m, d)
  return ctx.qacc, ctx.qfrc_constraint, ctx.efc_force


@_solve_arrays.defjvp
def _solve_arrays_jvp(primals, tangents):
  # The iterations are not differentiated. Tangents come from the implicit
  # function theorem at the returned solution (see _solution_map), which is
  # what the unrolled Newton iterations converge to, at the cost of a single
  # linear solve instead of a backward pass through every iteration and line
  # search.
  m, d = primals
  out = _solve_arrays(m, d)
  qacc_star = jax.lax.stop_gradient(out[0])
  distance = contact_distance(m)
  if distance > 0 and d._impl.contact.dist.shape[0]:
    # Contacts from distance: the tangent is the implicit derivative of the
    # problem with ghost rows (see _ghost_constraints), at that problem's own
    # optimum, found from the real solution with the model's iteration
    # budget. Values stay those of the real solve.
    ghost = lambda m, d: _ghost_constraints(m, d, distance)
    d_ghost = jax.lax.stop_gradient(ghost(m, d).replace(qacc_warmstart=qacc_star))
    x = jax.lax.stop_gradient(_run_iterations(m, d_ghost).qacc)
    _, out_dot = jax.jvp(lambda m, d: _solution_map(m, ghost(m, d), x),
                         (m, d), tangents)
    return out, out_dot
  _, out_dot = jax.jvp(lambda m, d: _solution_map(m, d, qacc_star),
                       (m, d), tangents)
  return out, out_dot


def _fixed_iteration_solve(m: mjx.Model, d: mjx.Data) -> mjx.Data:
  """Constraint solve with exactly ``m.opt.iterations`` iterations.

  Values equal MJX's while loop. Derivatives (forward and reverse mode) are
  those of the solver's optimum, by the implicit function theorem.
  """
  qacc, qfrc_constraint, efc_force = _solve_arrays(m, d)
  return d.tree_replace({
      "qacc": qacc,
      "qfrc_constraint": qfrc_constraint,
      "_impl.efc_force": efc_force,
  })


def _solve(m: mjx.Model, d: mjx.Data) -> mjx.Data:
  """Solver dispatch, decided in Python at trace time.

  Tolerance 0 always takes the fixed-iteration loop, also for
  ``iterations == 1``: MJX's single-iteration path differentiates through its
  line search and gave NaN gradients on a ball resting on a plane.
  """
  tol = _tolerance(m)
  if tol == 0.0:
    return _fixed_iteration_solve(m, d)
  if m.opt.iterations > 1:
    if tol is None:
      warnings.warn(
          "envs.physics: model.opt.tolerance is a traced value, so the solver "
          "loop cannot be chosen at trace time and MJX's while loop (not "
          "reverse-differentiable) is used. Build the model with "
          "envs.physics.put_model(...) or static_tolerance(...) to keep "
          "tolerance static under jit/vmap.", RuntimeWarning, stacklevel=2)
  return _MJX_SOLVE(m, d)


# --------------------------------------------------------------------------
# fwd_position's reverse pass as a forward-mode Jacobian (small models)
# --------------------------------------------------------------------------

_MJX_FWD_POSITION = _mjx_forward.fwd_position

# Models with at most this many ``qpos`` entries take the Jacobian path of
# ``_jacobian_fwd_position``. Measured (docs/benchmarks.md, "fwd_position's
# reverse pass as a forward-mode Jacobian"): faster at nq = 1 and 2, slower
# at nq = 6 (hopper); nq = 3 to 5 was not measured.
JACOBIAN_MAX_QPOS = 2


def _dependencies(jaxpr) -> list[int]:
  """For each outvar of ``jaxpr``, a bitmask of the invars it depends on
  (conservatively: an equation's outputs depend on all of its inputs)."""
  deps = {v: 1 << i for i, v in enumerate(jaxpr.invars)}

  def of(atom):
    return deps.get(atom, 0) if isinstance(atom, _jex_core.Var) else 0

  for eqn in jaxpr.eqns:
    mask = 0
    for atom in eqn.invars:
      mask |= of(atom)
    for v in eqn.outvars:
      deps[v] = mask
  return [of(v) for v in jaxpr.outvars]


@dataclasses.dataclass(frozen=True)
class _PositionPlan:
  """Which leaves of ``mjx.Data`` MJX's ``fwd_position`` writes and reads."""
  passthrough: dict[int, int]  # output leaf -> the input leaf it returns
  written: tuple[int, ...]     # output leaves it computes
  inputs: tuple[int, ...]      # float input leaves those depend on
  reads: tuple[tuple[int, ...], ...]  # per written leaf: positions in inputs
  out_treedef: object          # of its output


def _position_plan(m: mjx.Model, d: mjx.Data) -> _PositionPlan:
  closed, shapes = jax.make_jaxpr(lambda d: _MJX_FWD_POSITION(m, d),
                                  return_shape=True)(d)
  jaxpr = closed.jaxpr
  index = {v: i for i, v in enumerate(jaxpr.invars)}
  passthrough, written = {}, []
  for j, v in enumerate(jaxpr.outvars):
    if isinstance(v, _jex_core.Var) and v in index:
      passthrough[j] = index[v]
    else:
      written.append(j)
  masks = _dependencies(jaxpr)
  needed = 0
  for j in written:
    needed |= masks[j]
  leaves = jax.tree.leaves(d)
  inputs = tuple(i for i, leaf in enumerate(leaves)
                 if needed >> i & 1 and jnp.issubdtype(leaf.dtype, jnp.inexact))
  reads = tuple(tuple(k for k, i in enumerate(inputs) if masks[j] >> i & 1)
                for j in written)
  return _PositionPlan(passthrough, tuple(written), inputs, reads,
                       jax.tree.structure(shapes))


def _jacobian_fwd_position(m: mjx.Model, d: mjx.Data) -> mjx.Data:
  """MJX's ``fwd_position`` with the same values, whose reverse pass
  contracts the cotangents with a Jacobian built in forward mode.

  MJX's kinematics reverse into many small fan-in sums and pads, several
  times the forward's cost (docs/benchmarks.md, "Per-op profile"). For a
  model with few degrees of freedom, ``vmap`` of ``jvp`` over the basis
  directions of each input it reads (``qpos``, ``qvel``, mocap poses: found
  in the traced program, so nothing it reads is left out) is cheaper: one
  widened forward pass per input. A ``custom_jvp`` returns ``J t``; reverse
  mode transposes that into ``J^T ct``, forward mode (``jvp``, ``jacfwd``)
  uses it as is. The derivative is the same linear map, so gradients agree
  with MJX's to float rounding. Models in default mode,
  or with more than ``JACOBIAN_MAX_QPOS`` position coordinates, take MJX's
  own function.
  """
  if _tolerance(m) != 0.0 or d.qpos.shape[-1] > JACOBIAN_MAX_QPOS:
    return _MJX_FWD_POSITION(m, d)
  plan = _position_plan(m, d)
  if not plan.written:
    return _MJX_FWD_POSITION(m, d)
  leaves, treedef = jax.tree.flatten(d)

  def written(m, xs, leaves):
    leaves = list(leaves)
    for i, x in zip(plan.inputs, xs):
      leaves[i] = x
    out = jax.tree.leaves(_MJX_FWD_POSITION(m, jax.tree.unflatten(treedef, leaves)))
    return tuple(out[j] for j in plan.written)

  def jacobian(m, xs, leaves, k):
    """Tangents of the written leaves along every basis direction of input
    ``k``, stacked on a leading axis."""
    x = xs[k]

    def along(t):
      f = lambda xk: written(m, xs[:k] + (xk,) + xs[k + 1:], leaves)
      return jax.jvp(f, (x,), (t.reshape(x.shape),))[1]

    return jax.vmap(along)(jnp.eye(x.size, dtype=x.dtype))

  def is_zero(t):
    return isinstance(t, jax.custom_derivatives.SymbolicZero)

  @jax.custom_jvp
  def position_outputs(m, xs, leaves):
    return written(m, xs, leaves)

  def position_outputs_jvp(primals, tangents):
    # J t, with J evaluated at the primal point: linear in the tangents, so
    # reverse mode transposes it into J^T ct and never reverses MJX's code
    m, xs, leaves = primals
    t_m, t_xs, _ = tangents  # the substituted inputs are not read from leaves
    out = written(m, xs, leaves)
    active = [k for k, t in enumerate(t_xs) if not is_zero(t)]
    jacs = {k: jacobian(m, xs, leaves, k) for k in active}
    t_out = []
    for n, y in enumerate(out):
      if not jnp.issubdtype(y.dtype, jnp.inexact):
        t_out.append(np.zeros(y.shape, jax.dtypes.float0))
        continue
      # only the inputs this leaf depends on: a leaf that depends on none
      # (a constant of the model) keeps an unbatched zero tangent under vmap
      t = jnp.zeros(y.shape, y.dtype)
      for k in plan.reads[n]:
        if k in jacs:
          t = t + jnp.tensordot(t_xs[k].reshape(-1).astype(y.dtype), jacs[k][n],
                                axes=1)
      t_out.append(t)
    if not all(is_zero(t) for t in jax.tree.leaves(t_m, is_leaf=is_zero)):
      # differentiated w.r.t. the model too (e.g. system identification):
      # that part in plain forward mode
      t_m = jax.tree.map(
          lambda t: jnp.zeros(t.shape, t.dtype) if is_zero(t) else t, t_m,
          is_leaf=is_zero)
      _, by_model = jax.jvp(lambda m: written(m, xs, leaves), (m,), (t_m,))
      t_out = [t + u if jnp.issubdtype(y.dtype, jnp.inexact) else t
               for t, u, y in zip(t_out, by_model, out)]
    return out, tuple(t_out)

  position_outputs.defjvp(position_outputs_jvp, symbolic_zeros=True)
  computed = position_outputs(m, tuple(leaves[i] for i in plan.inputs), tuple(leaves))
  out = [None] * (len(plan.passthrough) + len(plan.written))
  for j, i in plan.passthrough.items():
    out[j] = leaves[i]
  for j, x in zip(plan.written, computed):
    out[j] = x
  return jax.tree.unflatten(plan.out_treedef, out)


# --------------------------------------------------------------------------
# Swapping the solver into MJX
# --------------------------------------------------------------------------

_lock = threading.RLock()
_patch_depth = 0


@contextlib.contextmanager
def _solver_installed() -> Iterator[None]:
  """Routes MJX's ``forward`` through ``_solve`` while tracing inside the block.

  MJX's ``forward`` looks up ``solver.solve`` at trace time, so swapping the
  module attribute is enough. ``_solve`` matches MJX's results for every model
  (it delegates to MJX whenever tolerance != 0), so the swap never changes
  values, only which loop is traced.
  """
  with _lock:
    previous = _mjx_solver.solve, _mjx_forward.fwd_position
    _mjx_solver.solve = _solve
    _mjx_forward.fwd_position = _jacobian_fwd_position
    try:
      yield
    finally:
      _mjx_solver.solve, _mjx_forward.fwd_position = previous


def step(model: mjx.Model, data: mjx.Data) -> mjx.Data:
  """Advances the simulation by one timestep, like ``mjx.step``.

  When ``model.opt.tolerance == 0`` the constraint solver runs exactly ``opt.iterations`` iterations in a loop that supports
  reverse mode. Any other model runs MJX's early-exit loop unchanged.

  Args:
    model: an ``mjx.Model``; prefer :func:`put_model` so the tolerance stays
      static when the model is traced.
    data: the ``mjx.Data`` to advance.

  Returns:
    The next ``mjx.Data``; equal to ``mjx.step(model, data)``.
  """
  with _solver_installed():
    return mjx.step(model, data)


def forward(model: mjx.Model, data: mjx.Data) -> mjx.Data:
  """``mjx.forward`` with the same solver choice as :func:`step`."""
  with _solver_installed():
    return mjx.forward(model, data)


@contextlib.contextmanager
def patch_mjx() -> Iterator[None]:
  """Makes unmodified third-party ``mjx.step``/``mjx.forward`` honour tolerance 0.

  Inside the block, MJX's solver dispatches as in :func:`step`, and
  ``mjx.put_model`` returns models with a static tolerance (see
  :func:`put_model`), so Brax ``backend='mjx'`` and MuJoCo Playground envs
  built inside the block keep the choice under ``jit`` and ``vmap``.

  Everything is restored on exit. Functions traced inside the block keep the
  loop they were traced with (JAX caches the trace); functions traced after
  the block behave exactly as upstream MJX. Re-entrant.

  Example::

      with physics.patch_mjx():
        env = brax.envs.get_environment("hopper", backend="mjx")
        env.sys = env.sys.tree_replace({"opt.tolerance": 0.0})
        g = jax.grad(loss)(actions)
  """
  global _patch_depth
  with _lock:
    if _patch_depth == 0:
      _mjx_solver.solve = _solve
      mjx.put_model = put_model
    _patch_depth += 1
  try:
    yield
  finally:
    with _lock:
      _patch_depth -= 1
      if _patch_depth == 0:
        _mjx_solver.solve = _MJX_SOLVE
        mjx.put_model = _MJX_PUT_MODEL


# --------------------------------------------------------------------------
# Host-side configuration
# --------------------------------------------------------------------------


def differentiable_model(
    mj_model: mujoco.MjModel,
    iterations: int = 4,
    ls_iterations: int = 4,
) -> mujoco.MjModel:
  """Returns a copy of ``mj_model`` configured for differentiable stepping.

  The copy has ``opt.tolerance = 0`` (run exactly ``iterations`` solver
  iterations) and the given line-search budget. The input is not modified.

  Args:
    mj_model: host model.
    iterations: solver iterations per step (>= 1). See
      docs/differentiable_mode.md for how to choose.
    ls_iterations: line-search iterations per solver iteration (>= 1). Under
      ``vmap`` every one of them runs, so this is the main cost knob.

  Raises:
    ValueError: if an iteration count is not a positive integer.
  """
  for name, value in (("iterations", iterations), ("ls_iterations", ls_iterations)):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
      raise ValueError(f"{name} must be a positive integer, got {value!r}.")
  model = copy.deepcopy(mj_model)
  model.opt.tolerance = 0.0
  model.opt.iterations = int(iterations)
  model.opt.ls_iterations = int(ls_iterations)
  return model
