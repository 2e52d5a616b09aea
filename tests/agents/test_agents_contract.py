"""The agent contract (agents/contract.py), walked over the whole table:
every config field an agent accepts is one it uses, a run setting it does
not use is refused with its reason, and ``should_stop`` ends a run."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import jax
import pytest

import agents
import configs
from agents import apg
from agents_toy_env import ToyPendulum
from configs import ConfigError, RunConfig
from trainlib import cli

ROOT = Path(__file__).resolve().parents[2]
# RunConfig fields an agent receives through its RunContext; the others
# (video, portable_determinism) are applied by trainlib for every agent.
CONTEXT_FIELDS = {f.name for f in dataclasses.fields(RunConfig)} & {
    f.name for f in dataclasses.fields(agents.RunContext)}
# also used by the final evaluation (trainlib/run.py) of every agent
FINAL_EVALUATION = {"eval_episodes"}
# applied by trainlib/run.py before training, only for the agents whose row
# is differentiable (the gradient health check); the others must refuse it
DIFFERENTIABLE_ONLY = {"gradient_check"}


def _sources(algo: agents.Algorithm) -> str:
  """The source of the modules that implement ``algo``."""
  if algo.differentiable:
    paths = [*(ROOT / "agents" / algo.name).glob("*.py"),
             *(ROOT / "agents" / f for f in ("loop.py", "config.py", "optim.py",
                                              "networks.py", "rollout.py"))]
  else:
    paths = [ROOT / "agents" / f"{algo.name}.py"]
  return "\n".join(p.read_text() for p in paths)


@pytest.mark.parametrize("name", list(agents.ALGORITHMS))
def test_every_config_field_is_read(name):
  algo = agents.algorithm(name)
  text = _sources(algo)
  unread = [f.name for f in dataclasses.fields(algo.config_class)
            if not re.search(rf"\.{f.name}\b", text)]
  assert unread == [], f"{name} never reads {unread}"


@pytest.mark.parametrize("name", list(agents.ALGORITHMS))
def test_run_fields_are_used_or_refused(name):
  algo = agents.algorithm(name)
  assert set(algo.unused_run_fields) <= CONTEXT_FIELDS | DIFFERENTIABLE_ONLY
  for field in DIFFERENTIABLE_ONLY:
    assert (field in algo.unused_run_fields) != algo.differentiable, (
        f"{name}: {field} must be refused exactly when the agent is not "
        f"differentiable")
  text = _sources(algo)
  for field in sorted(CONTEXT_FIELDS - set(algo.unused_run_fields)):
    assert (re.search(rf"context\.{field}\b", text)
            or field in FINAL_EVALUATION), f"{name} ignores {field}"
  for field in sorted(CONTEXT_FIELDS - FINAL_EVALUATION):
    if field in algo.unused_run_fields:
      assert not re.search(rf"context\.{field}\b", text), (
          f"{name} reads {field} but calls it unused")


@pytest.mark.parametrize("name", [n for n, a in agents.ALGORITHMS.items()
                                  if a.unused_run_fields])
def test_an_unused_run_field_is_an_error_naming_agent_and_reason(name, write_preset):
  algo = agents.algorithm(name)
  for field, reason in algo.unused_run_fields.items():
    flag = "--" + field.replace("_", "-")
    with pytest.raises(ConfigError) as e:
      cli.parse_train(["pendulum_swingup", "--agent", name, flag, "5"],
                      backend="cpu")
    assert f"--agent {name} does not use {flag}" in str(e.value)
    assert reason in str(e.value)
    path = write_preset(f"default_agent: {name}\n{name}: {{{field}: 5}}\n")
    with pytest.raises(ConfigError, match=f"{name} does not use '{field}'"):
      configs.resolve("pendulum_swingup", backend="cpu", path=path)
    # nor is it written into a run's config.yaml
    resolved = configs.resolve("pendulum_swingup", name, backend="cpu")
    assert field not in configs.as_data(resolved)[name]


def test_multi_process_is_declared_per_agent():
  assert {n: a.multi_process for n, a in agents.ALGORITHMS.items()} == {
      "shac": True, "apg": True, "sapo": True, "ppo": False}


def test_should_stop_ends_training_after_that_update():
  env = ToyPendulum(episode_length=20)
  config = apg.Config(num_timesteps=6 * 8 * 8, num_envs=8, horizon=8,
                      policy_hidden_sizes=(16,), log_every=4)
  steps, saved = [], []
  _, metrics = apg.train(env, config, jax.random.PRNGKey(0),
                         progress_fn=lambda s, m: steps.append(s),
                         checkpoint_fn=lambda ts, carry: saved.append(ts),
                         checkpoint_every=100,
                         should_stop=lambda ts: int(ts.iteration) >= 2)
  assert steps == [64, 128]  # the first update, then the stop is logged
  assert [int(s.iteration) for s in saved] == [2]  # the final checkpoint
  assert metrics["train/iteration"] == 2


def test_the_benchmarks_drive_every_differentiable_agent_through_the_table():
  from benchmarks import common  # pylint: disable=import-outside-toplevel
  for name, algo in agents.ALGORITHMS.items():
    assert (algo.init is not None) == algo.differentiable, name
    assert (algo.train_loop is not None) == algo.differentiable, name
  env = ToyPendulum(episode_length=20)
  for name in ("shac", "apg", "sapo"):
    config = agents.algorithm(name).config_class(
        num_timesteps=64, num_envs=8, horizon=8, policy_hidden_sizes=(4,))
    state = common.init_state(name, env, config, seed=0)
    assert common.policy_params(env, config, state) is not None
  with pytest.raises(ValueError, match=r"'ppo' has no training loop of ours.*'shac'"):
    common.init_state("ppo", env, None, seed=0)
