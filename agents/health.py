"""Gradient health check: is the reward's gradient with respect to the
actions usable, before an analytic-gradient agent trains on it?

:func:`check_gradients` resets the env in a few random states, rolls out
``horizon`` steps of small random actions and takes, in reverse mode (what
SHAC and APG use), the gradient of the summed reward with respect to the
actions; and the gradient of every reward term the env reports in
``state.metrics`` (``reward/<term>``, this project's and Playground's
convention, or ``reward_<term>``, Brax's), so a NaN can be traced to the
term that produced it. Rewards after an episode's first ``done`` are left
out (training resets there).

Verdicts (:attr:`Report.verdict`):

* ``"ok"``: finite and nonzero in at least one state;
* ``"nonfinite"``: NaN or inf in some state;
* ``"zero"``: exactly zero in every state (the reward is flat in the
  actions: step-shaped, or constant over the horizon).

One program is compiled (``jit(vmap(value_and_grad))`` over the states),
so the cost is one compile plus ``states x horizon`` steps forward and
backward; per-term gradients (one more compile per term) only when the
total is not finite. The compile dominates: on MJX envs it is a large
fraction of the agent's own first compile (docs/envs.md, "Third-party
envs", has measured times).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Report", "check_gradients", "reward_terms"]

_TERM_PREFIXES = ("reward/", "reward_")


def reward_terms(metrics: dict[str, Any]) -> list[str]:
  """The metric keys that are reward terms (``reward/<t>`` or ``reward_<t>``)."""
  return sorted(k for k in metrics if k.startswith(_TERM_PREFIXES))


@dataclasses.dataclass(frozen=True)
class Report:
  """Result of :func:`check_gradients`.

  Attributes:
    env: the env's name.
    verdict: "ok", "zero" or "nonfinite" (module docstring).
    states: random start states checked.
    horizon: env steps per rollout.
    grad_norms: per state, the norm of d(summed reward)/d(actions) (NaN
      where it is not finite).
    reward_finite: whether the rewards themselves were finite.
    terms: per reward term, ``{"finite": bool, "zero": bool, "max_abs":
      float}`` of its gradient over all states; computed only when the
      total is not finite (empty otherwise).
    nonfinite_terms: the terms whose gradient is not finite.
    seconds: wall time of the check, compile included.
  """
  env: str
  verdict: str
  states: int
  horizon: int
  grad_norms: tuple[float, ...]
  reward_finite: bool
  terms: dict[str, dict[str, Any]]
  nonfinite_terms: tuple[str, ...]
  seconds: float

  @property
  def ok(self) -> bool:
    return self.verdict == "ok"

  def message(self) -> str:
    """One line that says what was found and what to do."""
    where = (f"{self.env}: the gradient of the reward with respect to the "
             f"actions ({self.states} random states, {self.horizon}-step "
             f"rollouts)")
    if self.verdict == "ok":
      median = float(np.nanmedian(self.grad_norms))
      return f"{where} is finite and nonzero (median norm {median:.3g})"
    if self.verdict == "zero":
      return (f"{where} is zero in every state: the reward is flat in the "
              f"actions, use PPO (--agent ppo) or a smooth reward")
    if self.nonfinite_terms:
      source = ("reward term(s) " + ", ".join(map(repr, self.nonfinite_terms))
                + " produce(s) it")
    else:
      source = "no reported reward term is non-finite on its own"
    bad = sum(1 for n in self.grad_norms if not math.isfinite(n))
    return (f"{where} is NaN/inf in {bad} of {self.states} states "
            f"({source}); use PPO (--agent ppo) or fix the reward's gradient")

  def to_json(self) -> dict[str, Any]:
    """The report as strict JSON (a non-finite number becomes null)."""
    def plain(v):
      if isinstance(v, float) and not math.isfinite(v):
        return None
      if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
      if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
      return v
    out = plain(dataclasses.asdict(self))
    out["message"] = self.message()
    return out


def check_gradients(env: Any, key: jax.Array, *, states: int = 4,
                    horizon: int = 8, action_scale: float = 0.5,
                    name: str | None = None) -> Report:
  """Checks the reward's gradient with respect to the actions.

  Args:
    env: a Brax env in differentiable mode (unbatched).
    key: PRNG key for the start states and actions.
    states: random start states (``env.reset``).
    horizon: env steps of each rollout.
    action_scale: actions are uniform in ``[-action_scale, action_scale]``.
    name: the env's name in the report (default ``env.name`` or its type).

  Returns:
    A :class:`Report`.
  """
  if states < 1 or horizon < 1:
    raise ValueError(f"states and horizon must be >= 1, got {states}, {horizon}")
  t0 = time.perf_counter()
  name = name or getattr(env, "name", None) or type(env).__name__
  k_reset, k_act = jax.random.split(jax.random.PRNGKey(0) if key is None else key)
  start = jax.jit(jax.vmap(env.reset))(jax.random.split(k_reset, states))
  terms = reward_terms(start.metrics)
  actions = jax.random.uniform(k_act, (states, horizon, env.action_size),
                               minval=-action_scale, maxval=action_scale)

  def returns(state, acts, which):
    """Sum of the reward (``which`` None) or of metric ``which`` over the
    rollout, up to the first done."""
    def body(carry, a):
      s, alive = carry
      s = env.step(s, a)
      value = s.reward if which is None else s.metrics[which]
      out = alive * jnp.asarray(value, jnp.float32)
      alive = alive * (1.0 - jax.lax.stop_gradient(jnp.asarray(s.done, jnp.float32)))
      return (s, alive), out
    (_, _), per_step = jax.lax.scan(body, (state, jnp.float32(1.0)), acts)
    return per_step.sum()

  def gradient(which):
    grad = jax.vmap(jax.value_and_grad(lambda s, a: returns(s, a, which),
                                       argnums=1))
    value, g = jax.jit(grad)(start, actions)
    return np.asarray(value, np.float64), np.asarray(g, np.float64)

  # the total first (one compile); per-term gradients only when it is not
  # finite, to name the term (one compile each)
  value, total = gradient(None)
  total = total.reshape(states, -1)
  finite = np.isfinite(total).all(axis=1)
  norms = tuple(float(np.linalg.norm(g)) if f else math.nan
                for g, f in zip(total, finite))
  term_report = {}
  for t in terms if not finite.all() else ():
    g = gradient(t)[1]
    term_report[t] = {"finite": bool(np.isfinite(g).all()),
                      "zero": bool(np.all(g == 0)),
                      "max_abs": float(np.nanmax(np.abs(g))) if np.isfinite(g).any()
                                 else math.nan}
  if not finite.all():
    verdict = "nonfinite"
  elif np.all(total == 0):
    verdict = "zero"
  else:
    verdict = "ok"
  return Report(env=str(name), verdict=verdict, states=states, horizon=horizon,
                grad_norms=norms, reward_finite=bool(np.isfinite(value).all()),
                terms=term_report,
                nonfinite_terms=tuple(t for t, r in term_report.items()
                                      if not r["finite"]),
                seconds=round(time.perf_counter() - t0, 2))
