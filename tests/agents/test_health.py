"""The gradient health check (agents.health) and train.py's use of it
(trainlib.run.train_run): a flat reward and a NaN reward are caught on toy
envs, the NaN is traced to its reward term, a smooth reward passes, and a
run with a flat reward stops before training with a one-line error naming
the env and the fix (unless ``gradient_check`` is off)."""

from __future__ import annotations

import dataclasses
import json
import threading

import jax
import jax.numpy as jnp
import pytest
from agents_toy_env import ToyPendulum

import agents
import configs
from agents import health, loop
from trainlib import run as trainrun


class ToyTerms(ToyPendulum):
  """ToyPendulum whose reward is the sum of named terms, one of them
  optionally flat (step-shaped) or with a NaN gradient."""

  def __init__(self, kind: str = "smooth", **kwargs):
    super().__init__(**kwargs)
    self.kind = kind
    self.name = f"toy_{kind}"

  def reset(self, rng):
    state = super().reset(rng)
    zero = jnp.zeros(())
    return state.replace(metrics={"reward/upright": zero, "reward/extra": zero})

  def step(self, state, action):
    out = super().step(state, action)
    th = out.pipeline_state[0]
    upright = out.metrics["reward/upright"]
    if self.kind == "flat":  # step-shaped in the state, so flat in the actions
      upright = (jnp.cos(th) > 0).astype(jnp.float32)
      extra = jnp.zeros(())
    elif self.kind == "nan":  # finite value, NaN gradient (0 * inf in reverse mode)
      u = action[0]
      extra = jnp.where(u > 1e9, jnp.log(u - u), 0.0)
    else:
      extra = -0.01 * jnp.sum(jnp.square(action))
    return out.replace(reward=upright + extra,
                       metrics={"reward/upright": upright, "reward/extra": extra})


def _check(kind):
  return health.check_gradients(ToyTerms(kind), jax.random.PRNGKey(0),
                                states=3, horizon=8)


def test_smooth_reward_passes():
  report = _check("smooth")
  assert report.ok and report.verdict == "ok", report.message()
  assert all(n > 0 for n in report.grad_norms)
  assert report.terms == {}  # per-term gradients only when needed
  assert "finite and nonzero" in report.message()


def test_flat_reward_is_caught():
  report = _check("flat")
  assert report.verdict == "zero"
  assert not report.ok
  msg = report.message()
  assert "toy_flat" in msg
  assert "the reward is flat in the actions, use PPO" in msg
  assert "\n" not in msg


def test_nan_reward_is_caught_and_attributed():
  report = _check("nan")
  assert report.reward_finite  # the value is fine, only its gradient is not
  assert report.verdict == "nonfinite"
  assert report.nonfinite_terms == ("reward/extra",)
  assert report.terms["reward/upright"]["finite"]
  msg = report.message()
  assert "toy_nan" in msg and "'reward/extra'" in msg and "NaN" in msg
  saved = json.loads(json.dumps(report.to_json(), allow_nan=False))  # strict JSON
  assert saved["verdict"] == "nonfinite" and saved["nonfinite_terms"] == ["reward/extra"]


def test_brax_style_reward_terms_are_recognised():
  assert health.reward_terms({"reward_forward": 0, "reward/ctrl": 0,
                              "x_position": 0}) == ["reward/ctrl", "reward_forward"]


def _resolved(tmp_path, gradient_check=True):
  resolved = configs.resolve("pendulum_swingup", "apg", backend="cpu")
  return dataclasses.replace(
      resolved, run=dataclasses.replace(resolved.run, gradient_check=gradient_check,
                                        video=False))


def test_train_run_stops_on_a_flat_reward(tmp_path, monkeypatch):
  """train_run checks before training: a flat reward is a ConfigError (one
  line, exit code 2 in train.py) naming the env and the fix, and the result
  is in gradient_check.json. The check runs while APG's first update
  compiles (agents.loop); its failure stops the run before that update: no
  metrics row, no policy."""
  monkeypatch.setattr(trainrun, "_make_env", lambda resolved, differentiable:
                      ToyTerms("flat", differentiable=differentiable))
  resolved = _resolved(tmp_path)
  resolved = dataclasses.replace(resolved, agent_config=dataclasses.replace(
      resolved.agent_config, num_envs=2, horizon=4, num_timesteps=80,
      policy_hidden_sizes=(8,)))
  with pytest.raises(configs.ConfigError) as e:
    trainrun.train_run(resolved, tmp_path / "run", log=lambda _: None)
  msg = str(e.value)
  assert "flat in the actions, use PPO" in msg and "--no-gradient-check" in msg
  assert "\n" not in msg
  saved = json.loads((tmp_path / "run" / "gradient_check.json").read_text())
  assert saved["verdict"] == "zero" and saved["env"] == "pendulum_swingup"
  metrics = tmp_path / "run" / "metrics.csv"
  assert not metrics.exists() or len(metrics.read_text().splitlines()) <= 1
  assert not (tmp_path / "run" / "policy.msgpack").exists()


def test_the_check_runs_while_the_update_compiles():
  """agents.loop runs the preflight on the calling thread while the update
  compiles on another: ``main`` below returns only if the preflight started
  while it ran; a failing preflight stops at once, whatever ``main`` does."""
  started = threading.Event()

  def main():
    assert started.wait(30), "the preflight did not run beside the compile"
    return threading.current_thread().name

  assert loop._beside(main, started.set) == "compile-update"  # pylint: disable=protected-access

  def failing():
    raise ValueError("bad gradient")

  with pytest.raises(ValueError, match="bad gradient"):
    loop._beside(lambda: threading.Event().wait(60), failing)  # pylint: disable=protected-access


def test_no_gradient_check_skips_it(tmp_path, monkeypatch):
  monkeypatch.setattr(trainrun, "_make_env", lambda resolved, differentiable:
                      ToyTerms("flat", differentiable=differentiable))

  class Trained(Exception):
    pass

  def train(env, config, context):
    del env, config
    assert context.preflight is None
    raise Trained

  algo = agents.algorithm("apg")
  monkeypatch.setitem(agents.ALGORITHMS, "apg", dataclasses.replace(algo, train=train))
  with pytest.raises(Trained):
    trainrun.train_run(_resolved(tmp_path, gradient_check=False), tmp_path / "run",
                       log=lambda _: None)
  assert not (tmp_path / "run" / "gradient_check.json").exists()


def test_ppo_refuses_the_field():
  assert "gradient_check" in agents.algorithm("ppo").unused_run_fields
  assert "gradient_check" not in agents.algorithm("shac").unused_run_fields


@pytest.mark.slow
def test_own_task_passes():
  """One of this project's tasks (MJX, differentiable mode) passes the check
  with train.py's settings (about 30-60 s on 2 cores, mostly compile)."""
  import envs  # pylint: disable=import-outside-toplevel
  env = envs.make("cartpole_swingup", differentiable=True)
  report = health.check_gradients(env, jax.random.PRNGKey(0))
  assert report.ok, report.message()
